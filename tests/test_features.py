import numpy as np
import pytest
import torch

from genie.features import PickTable, window_features


def test_nearest_pick_per_group():
    # station 0: P at 10 s, S at 14 s; station 1: P at 30 s
    table = PickTable([0, 0, 1], [10.0, 14.0, 30.0], [0, 1, 0], n_stations=2)
    d = table.distance(torch.tensor([0, 0, 1, 1]), torch.tensor([11.0, 13.0, 0.0, 29.0], dtype=torch.float64))
    assert d.tolist() == [1.0, 1.0, 30.0, 1.0]
    labelled_s0 = 2 + 0 * 2 + 1  # n_stations + 2 * station + phase
    assert table.distance(torch.tensor([labelled_s0]), torch.tensor([10.0], dtype=torch.float64)).item() == 4.0
    labelled_s1_s = 2 + 1 * 2 + 1
    assert np.isinf(table.distance(torch.tensor([labelled_s1_s]), torch.tensor([30.0], dtype=torch.float64)).item())


def test_features_for_a_planted_pick():
    kernel = 2.0
    tt = torch.tensor([[3.0, 5.0], [6.0, 10.0]])  # two product nodes on stations 0 and 1
    origin = 100.0
    table = PickTable([0], [origin + 3.0 + 1.0], [0], n_stations=2)  # P pick 1 s late on station 0
    f = window_features(table, torch.tensor([0, 1]), tt, torch.tensor([origin], dtype=torch.float64), kernel)
    assert f.shape == (1, 2, 5) and f.dtype == torch.float32
    k1 = np.exp(-0.5 * (1.0 / kernel) ** 2)
    k_s = np.exp(-0.5 * ((origin + 4.0 - (origin + 5.0)) / kernel) ** 2)  # same pick vs the S arrival
    np.testing.assert_allclose(f[0, 0].numpy(), [k1, k_s, k1, 0.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(f[0, 1].numpy(), [0, 0, 0, 0, 1.0], atol=1e-12)
    masked = window_features(table, torch.tensor([0, 1]), tt, torch.tensor([origin], dtype=torch.float64), kernel,
                             station_active=torch.tensor([[False, True]]))
    assert masked[0, 0].tolist() == [0, 0, 0, 0, 0]


def test_features_batch_of_windows_vectorised():
    rng = np.random.default_rng(0)
    n = 5000
    table = PickTable(rng.integers(0, 16, n), rng.uniform(0, 86400, n), rng.integers(0, 2, n), 16)
    pair_station = torch.as_tensor(np.repeat(np.arange(16), 50))
    tt = torch.as_tensor(rng.uniform(1, 20, (800, 2)))
    f = window_features(table, pair_station, tt, torch.linspace(0, 86400, 32, dtype=torch.float64), 1.0)
    assert f.shape == (32, 800, 5) and torch.isfinite(f).all() and f[..., :4].max() <= 1.0


@pytest.mark.gpu
def test_features_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    table = PickTable([0], [104.0], [0], n_stations=2, device="cuda")
    f = window_features(table, torch.tensor([0, 1]), torch.tensor([[3.0, 5.0], [6.0, 10.0]]),
                        torch.tensor([100.0], dtype=torch.float64), 2.0)
    assert f.device.type == "cuda" and abs(f[0, 0, 0].item() - np.exp(-0.125)) < 1e-6


def test_nearest_k_picks_to_a_target_time():
    # station 1 picks at 10, 12, 12.5, 30 s; station 0 one pick at 11 s
    table = PickTable([1, 0, 1, 1, 1], [10.0, 11.0, 12.0, 30.0, 12.5], [0, 0, 1, 0, 0], n_stations=2)
    index, times, phase, valid = table.nearest_k(torch.tensor([1, 0]), torch.tensor([12.4, 20.0], dtype=torch.float64),
                                                 3, max_offset_s=5.0)
    assert valid.tolist() == [[True, True, True], [False, False, False]]  # station 0's pick is 9 s off
    assert index[0].tolist() == [4, 2, 0]  # rows of the input arrays, nearest first
    assert times[0].tolist() == [12.5, 12.0, 10.0] and phase[0].tolist() == [0, 1, 0]
    # A far target sees only picks within max_offset_s, whatever the order in time.
    index, _, _, valid = table.nearest_k(torch.tensor([1]), torch.tensor([29.0], dtype=torch.float64), 2, 2.0)
    assert valid.tolist() == [[True, False]] and index[0, 0].item() == 3


def test_far_kernels_are_exactly_zero_not_denormal():
    """Kernels are lowered by 1e-30, their value at kernel_reach_s, so that they are 0 beyond it:
    float32 denormals would slow every later product on a CPU."""
    offsets = np.array([0.0, 5.0, 11.0, 12.0, 40.0, 1e5])  # s from the P arrival, kernel 1 s
    table = PickTable(np.arange(6), 10.0 + 3.0 + offsets, np.zeros(6), n_stations=7)  # station 6: no picks
    f = window_features(table, torch.arange(7), torch.tensor([[3.0, 500.0]] * 7), torch.tensor([10.0], dtype=torch.float64),
                        1.0)[0, :, 0]
    expected = np.maximum(np.exp(-0.5 * np.r_[offsets, np.inf] ** 2) - 1e-30, 0.0)
    np.testing.assert_allclose(f.numpy(), expected, rtol=1e-6, atol=0)
    assert f[0] == 1.0  # a pick on the arrival still gives exactly 1: near kernels keep their float32 value
    assert f[2] > 0 and f[3] == 0 and (f[4:] == 0).all()  # exp(-60.5) = 5e-27 stays, exp(-72) does not
    assert not ((f > 0) & (f < torch.finfo(torch.float32).tiny)).any()


def test_two_kernel_widths():
    table = PickTable([0], [14.0], [0], n_stations=1)
    f = window_features(table, torch.tensor([0]), torch.tensor([[3.0, 5.0]]), torch.tensor([10.0], dtype=torch.float64),
                        (1.0, 3.0))
    assert f.shape == (1, 1, 9)
    assert f[0, 0, 0].item() == pytest.approx(np.exp(-0.5), rel=1e-5)  # 1 s late, width 1 s
    assert f[0, 0, 4].item() == pytest.approx(np.exp(-0.5 / 9), rel=1e-5)  # width 3 s
    assert f[0, 0, 8] == 1.0
