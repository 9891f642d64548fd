import numpy as np
import pytest

from generator.traveltimes import TravelTimes, taup_first_arrivals
from generator.velocity import VelocityModel, load_velocity_model
from catalogs.schema import InputError


def test_homogeneous_model_matches_straight_rays(homogeneous_tt):
    src = np.array([[0.0, 0.0, 5.0], [10.0, -3.0, 12.0]])
    sta = np.array([[3.0, 4.0, 0.0], [-20.0, 7.0, -0.5]])
    t = homogeneous_tt(src, sta)
    dist = np.sqrt(((src[:, None, :2] - sta[None, :, :2]) ** 2).sum(-1) + src[:, None, 2] ** 2)
    np.testing.assert_allclose(t[..., 0], dist / 6.0 - sta[None, :, 2] / 6.0, atol=0.01)
    np.testing.assert_allclose(t[..., 1], dist / (6.0 / 1.75) - sta[None, :, 2] / (6.0 / 1.75), atol=0.02)
    assert t[0, 1, 0] > (np.hypot(np.hypot(20, 7), 5) / 6.0)  # 500 m elevation adds time


def test_layered_table_accuracy_against_taup(layered_tt):
    rng = np.random.default_rng(0)
    n = 25
    depth = np.concatenate([rng.uniform(0, 1, 5), rng.uniform(0, 20, n - 5)])
    dist = rng.uniform(0, 60, n)
    pred = layered_tt(np.column_stack([dist, np.zeros(n), depth]), np.zeros((1, 3)))[:, 0, :]
    truth = np.array([taup_first_arrivals(layered_tt.model, [z], [d])[:, 0, 0] for z, d in zip(depth, dist)])
    assert np.abs(pred - truth).max() < 0.05


def test_head_wave_is_first_arrival(layered_tt):
    # Surface source at 60 km in Hadley-Kanamori: the head wave along the 5.5 km interface
    # (6.3 km/s) beats the direct wave (5.5 km/s): t = x/6.3 + 2 h cos(ic)/5.5.
    t = layered_tt(np.array([[60.0, 0.0, 0.0]]), np.zeros((1, 3)))[0, 0, 0]
    head = 60.0 / 6.3 + 2 * 5.5 * np.sqrt(1 - (5.5 / 6.3) ** 2) / 5.5
    assert t == pytest.approx(head, abs=0.05) and t < 60.0 / 5.5


def test_torch_path_matches_numpy(layered_tt):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    src = np.column_stack([rng.uniform(-30, 30, (50, 2)), rng.uniform(0, 20, 50)])
    sta = np.column_stack([rng.uniform(-30, 30, (7, 2)), rng.uniform(-1, 0, 7)])
    a = layered_tt(src, sta)
    b = layered_tt.torch(torch.tensor(src), torch.tensor(sta)).numpy()
    np.testing.assert_allclose(a, b, atol=1e-9)
    b32 = layered_tt.torch(torch.tensor(src, dtype=torch.float32), torch.tensor(sta, dtype=torch.float32))
    assert b32.dtype == torch.float32 and np.abs(b32.numpy() - a).max() < 1e-3


def test_table_is_cached(tmp_path):
    model = VelocityModel.homogeneous(5.0)
    first = TravelTimes.build(model, 6.0, 4.0, spacing_km=2.0, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    second = TravelTimes.build(model, 6.0, 4.0, spacing_km=2.0, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(first.times, second.times)


def test_velocity_model_files(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("depth_km,vp,vs\n0,5.5,3.2\n5.5,6.3,3.6\n")
    m = load_velocity_model(path)
    assert m.depth_km == (0.0, 5.5) and m.velocity_at([1.0, 10.0], "P").tolist() == [5.5, 6.3]
    path.write_text("depth_km,vp\n0,5.5\n0,6.3\n")
    with pytest.raises(InputError, match="must start at 0 km and increase"):
        load_velocity_model(path)
    with pytest.raises(InputError, match="not found"):
        load_velocity_model(tmp_path / "nope.csv")
    assert load_velocity_model("homogeneous:6:3.5").vs == (3.5,)
