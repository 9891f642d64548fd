import numpy as np
import pytest

from generator.traveltimes import TravelTimes, layered_first_arrivals, taup_first_arrivals
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


def test_table_interpolation_between_grid_nodes(layered_tt):
    # Off-grid points, shallow sources included (the time curves most there), against rays
    # traced to each point itself.
    rng = np.random.default_rng(0)
    n = 25
    depth = np.concatenate([rng.uniform(0, 1, 5), rng.uniform(0, 20, n - 5)])
    dist = rng.uniform(0, 60, n)
    pred = layered_tt(np.column_stack([dist, np.zeros(n), depth]), np.zeros((1, 3)))[:, 0, :]
    truth = np.array([layered_first_arrivals(layered_tt.model, [z], [d])[:, 0, 0] for z, d in zip(depth, dist)])
    assert np.abs(pred - truth).max() < 0.05


# A Northern-California-like crust: 9 layers to 32 km, the Moho at 32 km (Pn at 7.83 km/s).
NCAL_VP = (3.2, 4.5, 4.8, 5.51, 6.21, 6.89, 6.95, 7.1, 7.83)
NCAL = VelocityModel((0.0, 1.0, 3.0, 4.0, 6.0, 9.0, 14.0, 25.0, 32.0), NCAL_VP, tuple(v / 1.75 for v in NCAL_VP),
                     name="ncal9")


@pytest.mark.parametrize("model", [NCAL, VelocityModel.hadley_kanamori()], ids=["ncal9", "hadley_kanamori"])
def test_ray_sweep_matches_taup_to_400_km(model):
    # Random grid points of a 400 km x 40 km table, a third of them beyond the Pn crossover
    # (about 130-190 km here), against direct TauP calls.
    rng = np.random.default_rng(3)
    depths = np.sort(rng.choice(41, 4, replace=False)).astype(float)
    distances = np.sort(np.concatenate([rng.choice(150, 8, replace=False), 150 + rng.choice(251, 8, replace=False)]))
    ours = layered_first_arrivals(model, depths, distances.astype(float))
    taup = taup_first_arrivals(model, depths, distances.astype(float))
    assert np.abs(ours - taup).max() < 0.05
    # The far points are Pn/Sn: TauP's times there grow at the mantle slowness.
    far = distances > 250
    slope = np.diff(taup[0][:, far], axis=1) / np.diff(distances[far])
    assert np.allclose(slope, 1 / 7.83 if model is NCAL else 1 / 7.8, atol=1e-3)


def test_ray_sweep_with_a_low_velocity_zone_is_never_later_than_taup():
    # A fast lid (7.0 km/s, 14-25 km) over a slower layer: rays guided in the lid are first
    # arrivals that TauP's phases leave out; every TauP arrival is one of ours.
    vp = (5.5, 6.2, 7.0, 6.4, 7.9)
    model = VelocityModel((0.0, 5.0, 14.0, 25.0, 32.0), vp, tuple(v / 1.75 for v in vp), name="lvz")
    depths, distances = np.array([2.0, 12.0, 20.0, 30.0]), np.array([0.0, 30.0, 90.0, 170.0, 260.0, 380.0])
    ours = layered_first_arrivals(model, depths, distances)
    taup = taup_first_arrivals(model, depths, distances)
    assert (ours <= taup + 1e-3).all()
    assert np.abs(ours - taup)[:, :2].max() < 0.05  # sources above the lid: the same rays


def test_tables_share_one_build(tmp_path):
    model = VelocityModel.hadley_kanamori()
    first = TravelTimes.build(model, 80.0, 20.0, spacing_km=2.0, cache_dir=tmp_path)
    second = TravelTimes.build(model, 60.0, 30.0, spacing_km=2.0, cache_dir=tmp_path)  # deeper, shorter
    assert len(list(tmp_path.glob("*.npz"))) == 1  # the first build reached 60 km depth
    assert first.times.shape == (2, 11, 41) and second.times.shape == (2, 16, 31)
    direct = layered_first_arrivals(model, np.arange(16) * 2.0, np.arange(31) * 2.0)
    np.testing.assert_array_equal(second.times, direct)
    TravelTimes.build(model, 100.0, 20.0, spacing_km=2.0, cache_dir=tmp_path)  # farther: a new table
    assert len(list(tmp_path.glob("*.npz"))) == 2


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


def test_paired_times_are_the_entries_of_the_full_product(layered_tt):
    rng = np.random.default_rng(4)
    src = np.c_[rng.uniform(-60, 60, (30, 2)), rng.uniform(0, 25, 30)]
    sta = np.c_[rng.uniform(-60, 60, (7, 2)), rng.uniform(-1.5, 0, 7)]
    full = layered_tt(src, sta)
    i, j, k = rng.integers(0, 30, 200), rng.integers(0, 7, 200), rng.integers(0, 2, 200)
    assert np.allclose(layered_tt.paired(src[i], sta[j], k), full[i, j, k], atol=1e-12, rtol=0)
    # Broadcast pairing, as a grid search uses it: 5 sources x 6 candidates against 4 picks each.
    cand, picked = src[:30].reshape(5, 6, 3), j[:20].reshape(5, 4)
    grid = layered_tt.paired(cand[:, :, None, :], sta[picked][:, None], k[:20].reshape(5, 4)[:, None])
    assert grid.shape == (5, 6, 4)
    d, c, q = np.meshgrid(np.arange(5), np.arange(6), np.arange(4), indexing="ij")
    assert np.allclose(grid, full[d * 6 + c, picked[d, q], k[:20].reshape(5, 4)[d, q]], atol=1e-12, rtol=0)


def test_table_is_cached(tmp_path):
    model = VelocityModel.homogeneous(5.0)
    first = TravelTimes.build(model, 6.0, 4.0, spacing_km=2.0, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    second = TravelTimes.build(model, 6.0, 4.0, spacing_km=2.0, cache_dir=tmp_path)
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


def test_grid_times_are_the_paired_times_of_the_product(layered_tt):
    """paired_grid is paired on every (epicentre, depth) combination, to the last bit: the
    distance and depth terms computed apart are the same numbers."""
    rng = np.random.default_rng(5)
    xy, depth = rng.uniform(-60, 60, (3, 10, 2)), rng.uniform(-1, 25, (3, 4))  # a depth above 0 is clamped
    sta = np.c_[rng.uniform(-60, 60, (7, 2)), rng.uniform(-1.5, 0, 7)]
    picked, phase = rng.integers(0, 7, (3, 5)), rng.integers(0, 2, (3, 5))
    grid = layered_tt.paired_grid(xy, depth, sta[picked], phase)
    assert grid.shape == (3, 10, 4, 5)
    d, h, z, q = np.meshgrid(*(np.arange(n) for n in grid.shape), indexing="ij")
    src = np.concatenate([xy[d, h], depth[d, z][..., None]], -1)
    assert np.array_equal(grid, layered_tt.paired(src, sta[picked[d, q]], phase[d, q]))
