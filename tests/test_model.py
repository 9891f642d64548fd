import json

import numpy as np
import pytest
import torch

from catalogs.schema import InputError
from genie.features import PickTable
from genie.model import GenieModel, ModelConfig
from tests.conftest import TINY
from tests.test_generator import grid_network


def test_graph_sizes(tiny_model):
    m = tiny_model
    assert m.n_stations == 16 and m.n_sources == 30
    assert m.pairs.shape == (16 * 30, 2)
    assert m.station_edges.shape == (2, 30 * 16 * 3)  # S edges copied into every source
    assert m.source_edges.shape == (2, 16 * 30 * 5)  # X edges copied into every station
    # Product travel times are those of the (station, source) pair.
    p = 77
    s, x = m.pairs[p].tolist()
    expected = m.travel_times(m.source_xyz[x:x + 1].double().numpy(), m.station_xyz[s:s + 1].double().numpy())[0, 0]
    assert m.pair_tt[p].numpy() == pytest.approx(expected, rel=1e-5)


def test_sparse_product_keeps_pairs_in_range(homogeneous_tt):
    config = ModelConfig(**{**TINY, "max_distance_km": 25.0})
    m = GenieModel.build(config, grid_network(4, 10.0), homogeneous_tt)
    d = np.linalg.norm((m.station_xyz[m.pairs[:, 0]] - m.source_xyz[m.pairs[:, 1]])[:, :2].numpy(), axis=1)
    assert 0 < len(d) < 16 * 30 and d.max() <= 25.0


def test_forward_shapes(tiny_model):
    m = tiny_model
    picks = PickTable([0, 3, 5], [10.0, 11.0, 12.5], [0, 1, 0], m.n_stations)
    centres = torch.tensor([10.0, 40.0], dtype=torch.float64)
    origins = m.window_times(centres)
    assert origins.shape == (2, 3) and origins[0].tolist() == [8.5, 10.0, 11.5]
    features = m.features(picks, origins.reshape(-1))
    assert features.shape == (16 * 30, 6, 5)
    grid, z = m(features, 2)
    assert grid.shape == (2, 30) and z.shape == (30, 2, 3, 6)
    positions = torch.zeros(2, 7, 3)
    assert m.query_logits(z, positions, torch.zeros(2, 7)).shape == (2, 7)
    emb = m.query_embedding(z, positions, torch.zeros(2, 7))
    index, valid, station_attr, pick_attr, residual = m.candidates(picks, positions, centres[:, None].expand(2, 7))
    assert index.shape == valid.shape == (2, 7, 16, 4)
    assert station_attr.shape == (2, 7, 16, 5) and pick_attr.shape == (2, 7, 16, 4, 6)
    assert residual.shape == (2, 7, 16, 4, 2)
    assert m.association_logits(emb, station_attr, pick_attr, valid).shape == (2, 7, 16, 5, 2)


def test_candidates_for_a_planted_source(tiny_model):
    m = tiny_model
    source = torch.tensor([[0.0, 0.0, 5.0]])
    tt = m.travel_times(source.double().numpy(), m.station_xyz.double().numpy())[0]  # [16, 2]
    origin = 100.0
    # Station 2: its P (0.2 s late), its S, and a pick far outside the window. Slots: the two
    # picks nearest the predicted P, then the two nearest the predicted S (assoc_candidates 4).
    assert tt[2, 1] - tt[2, 0] > TINY["assoc_window_s"]
    picks = PickTable([2, 2, 2, 7], [origin + tt[2, 0] + 0.2, origin + tt[2, 1], origin + 60.0, origin + tt[7, 0]],
                      [0, 1, 0, 0], m.n_stations)
    index, valid, _, pick_attr, residual = m.candidates(picks, source, torch.tensor([origin], dtype=torch.float64))
    assert valid[0, 2].tolist() == [True, False, True, False]
    assert index[0, 2, 0].item() == 0 and index[0, 2, 2].item() == 1
    assert residual[0, 2, 0, 0].item() == pytest.approx(0.2, abs=1e-6)
    assert residual[0, 2, 2, 1].item() == pytest.approx(0.0, abs=1e-6)
    assert pick_attr[0, 2, 0, 2].item() == pytest.approx(np.exp(-0.5 * 0.2**2), rel=1e-5)  # P kernel, width 1 s
    assert valid[0, 7, 0] and index[0, 7, 0] == 3
    inactive = torch.ones(1, 16, dtype=torch.bool)
    inactive[0, 2] = False
    _, valid_off, attr_off, _, _ = m.candidates(picks, source, torch.tensor([origin], dtype=torch.float64), inactive)
    assert not valid_off[0, 2].any() and attr_off[0, 2, 4] == 0


def test_candidates_nearest_the_arrivals_in_a_swarm(tiny_model):
    """Many picks between P and S: the true S is still a candidate, and a pick near both the
    predicted P and S arrivals is offered once."""
    m = tiny_model
    source = torch.tensor([[0.0, 0.0, 5.0]])
    tt = m.travel_times(source.double().numpy(), m.station_xyz.double().numpy())[0]
    origin = 100.0
    s = 2
    crowd = np.linspace(origin + tt[s, 0] + 0.5, origin + tt[s, 1] - 2.5, 12)
    times = np.r_[origin + tt[s, 0], crowd, origin + tt[s, 1]]
    picks = PickTable(np.full(len(times), s), times, np.r_[0, np.zeros(12, int), 1], m.n_stations)
    index, valid, _, _, _ = m.candidates(picks, source, torch.tensor([origin], dtype=torch.float64))
    assert 0 in index[0, s][valid[0, s]].tolist() and len(times) - 1 in index[0, s][valid[0, s]].tolist()
    # Nearest station: P and S arrivals less than the window apart share their picks.
    near = int(np.argmin(tt[:, 1] - tt[:, 0]))
    assert tt[near, 1] - tt[near, 0] < TINY["assoc_window_s"]
    picks = PickTable([near], [origin + tt[near, 0]], [0], m.n_stations)
    index, valid, _, _, _ = m.candidates(picks, source, torch.tensor([origin], dtype=torch.float64))
    assert valid[0, near].sum().item() == 1


def test_cell_tolerance_bounds_the_arrival_change_to_the_nearest_node(tiny_model):
    """Every point of the location domain has its arrivals within the tolerance of its nearest
    source node's (the guarantee the coincidence screen relies on), and the bound is not loose
    by more than the half-diagonal term."""
    m = tiny_model
    src, sta = m.source_xyz.numpy().astype("float64"), m.station_xyz.numpy().astype("float64")
    tolerance = m.cell_tolerance_s()  # [P, 2]
    rng = np.random.default_rng(5)
    hi_depth = float(m.travel_times.max_depth_km) - 1.0
    points = np.column_stack([rng.uniform(src[:, 0].min(), src[:, 0].max(), 3000),
                              rng.uniform(src[:, 1].min(), src[:, 1].max(), 3000), rng.uniform(0.0, hi_depth, 3000)])
    nearest = np.argmin(((points[:, None, :] - src[None]) ** 2).sum(-1), axis=1)
    change = np.abs(m.travel_times(points, sta) - m.travel_times(src, sta)[nearest])  # [N, S, 2]
    per_pair = np.full((m.n_sources, m.n_stations, 2), np.nan)
    pairs = m.pairs.numpy()
    per_pair[pairs[:, 1], pairs[:, 0]] = tolerance
    bound = per_pair[nearest]
    assert (change <= bound + 1e-12).all()
    assert np.nanmax(change, axis=0).max() > 0.3 * np.nanmax(tolerance)  # sampled changes reach the bound's scale


def test_save_load_reproduces_outputs_exactly(tiny_model, tmp_path):
    m = tiny_model
    m.save(tmp_path / "model")
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["config"]["n_sources"] == 30 and len(meta["station_ids"]) == 16
    loaded = GenieModel.load(tmp_path / "model")
    picks = PickTable(np.arange(16), 20.0 + np.arange(16) * 0.3, np.zeros(16, int), 16)
    origins = torch.tensor([15.0, 16.5, 18.0], dtype=torch.float64)
    with torch.no_grad():
        a, za = m(m.features(picks, origins), 1)
        b, zb = loaded(loaded.features(picks, origins), 1)
    assert torch.equal(a, b) and torch.equal(za, zb)
    assert torch.equal(loaded.source_xyz, m.source_xyz) and torch.equal(loaded.pair_tt, m.pair_tt)


def test_cell_tolerances_travel_with_the_saved_model(tiny_model, tmp_path):
    """save writes the cell tolerances into model.pt; load restores them without recomputing;
    a model.pt without them (written before they were saved) still loads and computes the same."""
    m = tiny_model
    expected = m.cell_tolerance_s().copy()
    m.save(tmp_path / "model")
    loaded = GenieModel.load(tmp_path / "model")
    assert loaded._cell_tolerance is not None and np.array_equal(loaded._cell_tolerance, expected)
    state = torch.load(tmp_path / "model" / "model.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "cell_tolerance_s"}, tmp_path / "model" / "model.pt")
    older = GenieModel.load(tmp_path / "model")
    assert older._cell_tolerance is None and np.array_equal(older.cell_tolerance_s(), expected)
    torch.save({**state, "cell_tolerance_s": torch.zeros(3, 2)}, tmp_path / "model" / "model.pt")
    with pytest.raises(InputError, match="model.json: its weights file holds cell tolerances of shape"):
        GenieModel.load(tmp_path / "model")


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="model.json"):
        GenieModel.load(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(InputError, match="not valid JSON"):
        GenieModel.load(tmp_path)


def test_config_validation():
    with pytest.raises(InputError, match="n_offsets"):
        ModelConfig.from_dict({"n_offsets": 2})
    with pytest.raises(InputError, match="unknown model setting"):
        ModelConfig.from_dict({"hiden": 3})


def test_table_too_small_is_an_input_error(homogeneous_tt):
    with pytest.raises(InputError, match="travel-time table"):
        GenieModel.build(ModelConfig(**{**TINY, "padding_km": 80.0}), grid_network(4, 10.0), homogeneous_tt)


@pytest.mark.gpu
def test_cuda_outputs_match_cpu(tiny_model, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    tiny_model.save(tmp_path / "model")
    gpu = GenieModel.load(tmp_path / "model").to("cuda")
    stations, times = np.arange(16), 20.0 + np.arange(16) * 0.3
    origins = torch.tensor([15.0, 16.5, 18.0], dtype=torch.float64)
    with torch.no_grad():
        a, za = tiny_model(tiny_model.features(PickTable(stations, times, np.zeros(16, int), 16), origins), 1)
        b, zb = gpu(gpu.features(PickTable(stations, times, np.zeros(16, int), 16, device="cuda"), origins), 1)
    assert b.device.type == "cuda"
    torch.testing.assert_close(b.cpu(), a, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(zb.cpu(), za, atol=1e-4, rtol=1e-4)
