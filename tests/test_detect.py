import numpy as np

from genie.detect import find_peaks, suppress


def test_suppress_keeps_the_strongest_of_close_sources():
    times = np.array([0.0, 1.0, 10.0, 0.5])
    xyz = np.array([[0.0, 0, 5], [3.0, 0, 5], [0.0, 0, 5], [40.0, 0, 5]])
    assert suppress(times, xyz, merge_s=4.0, merge_km=16.0).tolist() == [True, False, True, True]


def test_find_peaks_recovers_planted_bumps(tiny_model):
    m = tiny_model
    xyz = m.source_xyz.numpy()
    t = np.arange(40)[:, None] * m.config.offset_step_s
    likelihood = np.zeros((40, m.n_sources), dtype=np.float32)
    far = int(np.argmax(np.linalg.norm(xyz[:, :2] - xyz[3, :2], axis=1)))
    for j, node, peak in ((5, 3, 0.9), (25, far, 0.6)):
        d = np.linalg.norm(xyz[:, :2] - xyz[node, :2], axis=1)
        bump = peak * np.exp(-0.5 * (d / 8.0) ** 2)[None] * np.exp(-0.5 * ((t - t[j]) / 2.0) ** 2)
        likelihood = np.maximum(likelihood, bump.astype(np.float32))
    t_idx, nodes = find_peaks(m, likelihood, threshold=0.3, merge_km=16.0, merge_s=4.0)
    assert t_idx.tolist() == [5, 25] and nodes.tolist() == [3, far]
    t_idx, _ = find_peaks(m, likelihood, threshold=0.7, merge_km=16.0, merge_s=4.0)
    assert t_idx.tolist() == [5]
    assert len(find_peaks(m, np.zeros_like(likelihood), 0.3, 16.0, 4.0)[0]) == 0
