import numpy as np
import pytest
import pandas as pd

from genie.detect import (ASSIGNMENT_COLUMNS, CPU_PASS_BYTES, EVENT_COLUMNS, DetectSettings, WindowStore,
                          find_peaks, grid_likelihood, locate_and_associate, suppress, windows_per_pass)
from genie.features import PickTable


def test_suppress_keeps_the_strongest_of_close_sources():
    times = np.array([0.0, 1.0, 10.0, 0.5])
    xyz = np.array([[0.0, 0, 5], [3.0, 0, 5], [0.0, 0, 5], [40.0, 0, 5]])
    assert suppress(times, xyz, merge_s=4.0, merge_km=16.0).tolist() == [True, False, True, True]


def test_suppress_equals_the_greedy_loop():
    """The round-by-round decisions give exactly sequential greedy suppression (chains where a
    dropped source no longer suppresses the next one included)."""
    rng = np.random.default_rng(1)
    times = np.sort(rng.uniform(0, 200, 400))[rng.permutation(400)]
    xyz = np.column_stack([rng.uniform(0, 60, 400), rng.uniform(0, 60, 400), np.full(400, 5.0)])
    keep = np.ones(400, dtype=bool)
    for i in range(400):
        if keep[i]:
            close = (np.abs(times - times[i]) < 4.0) & (np.linalg.norm(xyz[:, :2] - xyz[i, :2], axis=1) < 16.0)
            close[: i + 1] = False
            keep &= ~close
    assert np.array_equal(suppress(times, xyz, 4.0, 16.0), keep) and 0 < keep.sum() < 400


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


def test_default_merging_keeps_peaks_the_grid_resolves(tiny_model):
    """Two grid peaks 3 s and 8-16 km apart are separate maxima (each the largest within a label
    width of it): the default merge distances (one label width in space, half a window step in
    time) keep both, where the two label widths used before issue 14's eighth round kept only the
    stronger."""
    from genie.detect import _merge_distances

    m = tiny_model
    xyz = m.source_xyz.numpy()
    d = np.linalg.norm(xyz[:, None, :2] - xyz[None, :, :2], axis=-1)
    a, b = (int(i[0]) for i in np.nonzero((d > 10.0) & (d < 14.0)))
    t = np.arange(20)[:, None] * m.config.offset_step_s
    likelihood = np.zeros((20, m.n_sources), dtype=np.float32)
    for j, node, peak in ((5, a, 0.9), (7, b, 0.6)):
        bump = peak * np.exp(-0.5 * (d[node] / 3.0) ** 2)[None] * np.exp(-0.5 * ((t - t[j]) / 1.0) ** 2)
        likelihood = np.maximum(likelihood, bump.astype(np.float32))
    merge_km, merge_s = _merge_distances(m, DetectSettings())
    assert (merge_km, merge_s) == (m.config.label_sigma_km, m.config.offset_step_s / 2)
    t_idx, nodes = find_peaks(m, likelihood, 0.3, merge_km, merge_s)
    assert t_idx.tolist() == [5, 7] and nodes.tolist() == [a, b]
    assert find_peaks(m, likelihood, 0.3, 2 * merge_km, 2 * m.config.label_sigma_s)[0].tolist() == [5]


def test_default_merging_keeps_sources_the_refinement_separates(tiny_model):
    """Refined sources at one place: two window steps apart in origin time (the benchmark's M 6
    mainshock and an aftershock source 3.6 s later, 3.59 s steps) both stay, where merging
    within a label width (4.8 s there) kept only the stronger; closer than half a step (the
    refinement lattice's spacing) they are one event found twice."""
    from genie.detect import _merge_distances

    c = tiny_model.config
    merge_km, merge_s = _merge_distances(tiny_model, DetectSettings())
    times = np.array([10.0, 10.0 + c.offset_step_s, 10.0 + 0.4 * c.offset_step_s])
    xyz = np.zeros((3, 3))
    assert suppress(times, xyz, merge_s, merge_km).tolist() == [True, True, False]
    assert suppress(times, xyz, c.label_sigma_s, merge_km).tolist() == [True, False, False]
    # An explicit setting wins.
    assert _merge_distances(tiny_model, DetectSettings(merge_s=3.0, merge_km=1.0)) == (1.0, 3.0)


def _planted_picks(model, origin_s=20.0, node=0):
    stations = model.station_xyz.numpy().astype("float64")
    source = model.source_xyz.numpy()[node].astype("float64")
    arrivals = origin_s + model.travel_times(source[None], stations)[0]  # [S, 2]
    n = model.n_stations
    return PickTable(np.tile(np.arange(n), 2), arrivals.T.reshape(-1), np.repeat([0, 1], n), n)


def _store(model, picks):
    return WindowStore(model, picks, 0.0, 60)


def test_event_counts_match_the_assignments(tiny_model):
    picks = _planted_picks(tiny_model)
    settings = DetectSettings(assoc_threshold=0.0, min_picks=0, min_stations=0, max_residual_s=100.0, source_cost=0.0)
    events, assignments = locate_and_associate(tiny_model, picks, _store(tiny_model, picks), np.array([19.5]),
                                               np.array([0]), settings)
    assert list(events.columns) == EVENT_COLUMNS and list(assignments.columns) == ASSIGNMENT_COLUMNS
    assert len(events) == 1 and len(assignments) > 0
    rows = assignments[assignments["event_index"] == 0]
    assert events.loc[0, "n_p"] == (rows["phase"] == "P").sum() and events.loc[0, "n_s"] == (rows["phase"] == "S").sum()
    assert events.loc[0, "n_stations"] == rows["station"].nunique()
    assert (rows["pick_index"].to_numpy() % tiny_model.n_stations == rows["station"].to_numpy()).all()


def test_no_event_survives_a_zero_residual_gate(tiny_model):
    settings = DetectSettings(assoc_threshold=0.0, max_residual_s=-1.0)
    picks = _planted_picks(tiny_model)
    events, assignments = locate_and_associate(tiny_model, picks, _store(tiny_model, picks), np.array([19.5]),
                                               np.array([0]), settings)
    assert len(events) == 0 and len(assignments) == 0
    assert list(events.columns) == EVENT_COLUMNS and list(assignments.columns) == ASSIGNMENT_COLUMNS


def _brute_force_screen(model, picks, centres, settings):
    """The screen of :func:`coincident_windows` with exact intervals, pair by pair."""
    from genie.detect import residual_gate

    tt = model.pair_tt.numpy().astype("float64")
    tau = model.cell_tolerance_s() + model.config.offset_step_s / 2 + residual_gate(settings, model.config.kernel_s, tt)
    station, source = model.pairs[:, 0].numpy(), model.pairs[:, 1].numpy()
    keep = []
    for c in centres:
        has = np.zeros((len(station), 2), dtype=bool)
        for p in range(len(station)):
            times = picks.time_s[picks.station == station[p]]
            for k in range(2):
                has[p, k] = (np.abs(times - (c + tt[p, k])) <= tau[p, k]).any()
        ok = False
        for x in range(model.n_sources):
            h = has[source == x]
            ok |= (h.any(1).sum() >= settings.min_stations and h[:, 0].sum() >= settings.min_p_picks
                   and h.all(1).sum() >= settings.min_p_and_s_stations and h.sum() >= settings.min_picks)
        keep.append(ok)
    return np.array(keep)


def test_coincidence_screen_keeps_the_planted_event_and_matches_brute_force(tiny_model):
    """The screen keeps the centres near a planted event's origin, drops most others (the
    scattered noise picks line up now and then on this coarse 30-node graph), and never drops
    a centre that the exact computation, pair by pair, keeps."""
    from genie.detect import coincident_windows

    m = tiny_model
    rng = np.random.default_rng(3)
    event = _planted_picks(m, origin_s=40.0, node=5)
    n_noise = 30
    station = np.r_[event.station, rng.integers(0, m.n_stations, n_noise)]
    times = np.r_[event.time_s, rng.uniform(0, 400, n_noise)]
    picks = PickTable(station, times, np.r_[np.repeat([0, 1], m.n_stations), rng.integers(0, 2, n_noise)], m.n_stations)
    settings = DetectSettings(min_picks=6, min_stations=4, min_p_picks=3, min_p_and_s_stations=2,
                              max_residual_s=0.5, residual_fraction=0.03)
    step = m.config.offset_step_s
    n = int(400 / step)
    keep = coincident_windows(m, picks, 0.0, n, settings)
    centres = np.arange(n) * step
    assert keep[np.abs(centres - 40.0) <= 3].all() and 0 < keep.sum() < n / 4
    sample = np.r_[np.flatnonzero(keep)[::2], np.flatnonzero(~keep)[::8]]
    exact = _brute_force_screen(m, picks, centres[sample], settings)
    assert not (exact & ~keep[sample]).any()
    # The cells widen each interval by less than one cell (0.1 s): the two mostly agree.
    assert (exact == keep[sample]).mean() > 0.9


def test_screen_counts_only_centres_with_enough_picks_nearby(tiny_model, monkeypatch):
    """Two events 300 s apart in a long quiet stretch: the per-pair counts run only on the
    centres around them (a few blocks of the 4,000), and the screen keeps exactly the centres
    it keeps when every centre is counted."""
    import genie.detect as detect

    m = tiny_model
    first, second = _planted_picks(m, origin_s=40.0, node=5), _planted_picks(m, origin_s=340.0, node=20)
    picks = PickTable(np.r_[first.station, second.station, 3], np.r_[first.time_s, second.time_s, 5000.0],
                      np.r_[np.repeat([0, 1], m.n_stations), np.repeat([0, 1], m.n_stations), 0], m.n_stations)
    settings = DetectSettings(min_picks=6, min_stations=4, min_p_picks=3, min_p_and_s_stations=2,
                              max_residual_s=0.5, residual_fraction=0.03)
    n = int(6000 / m.config.offset_step_s)
    counted = []
    runs = detect._runs
    monkeypatch.setattr(detect, "_runs", lambda *a: counted.extend(runs(*a)) or runs(*a))
    keep = detect.coincident_windows(m, picks, 0.0, n, settings)
    spans = sum(j1 - j0 for j0, j1 in counted)
    assert len(counted) == 2 and spans < 200
    centres = np.arange(n) * m.config.offset_step_s
    assert keep[np.abs(centres - 40.0) <= 3].all() and keep[np.abs(centres - 340.0) <= 3].all()
    monkeypatch.setattr(detect, "_pick_count_floor", lambda settings: 0)
    counted.clear()
    assert np.array_equal(detect.coincident_windows(m, picks, 0.0, n, settings), keep)
    assert sum(j1 - j0 for j0, j1 in counted) == n


def test_runs_split_at_gaps_and_at_the_block_grid():
    from genie.detect import _runs

    mask = np.zeros(40, dtype=bool)
    mask[[2, 3, 5, 14, 15, 30, 39]] = True
    assert _runs(mask, 16, 4) == [(2, 6), (14, 16), (30, 31), (39, 40)]
    assert _runs(mask, 16, 20) == [(2, 16), (30, 31), (39, 40)]  # 15 | 30 on the grid of 16
    assert _runs(mask, 100, 10) == [(2, 16), (30, 40)]
    assert _runs(np.zeros(5, dtype=bool), 16, 4) == []


def test_pick_count_floor_counts_stations_and_both_phases_of_a_pick():
    from genie.detect import _pick_count_floor

    assert _pick_count_floor(DetectSettings(min_picks=6, min_stations=4, min_p_picks=3)) == 4
    assert _pick_count_floor(DetectSettings(min_picks=9, min_stations=3, min_p_picks=0)) == 5
    assert _pick_count_floor(DetectSettings(min_picks=0, min_stations=0, min_p_picks=0)) == 1


def test_residual_gate_follows_the_generator_timing_errors():
    """Unset gate terms come from the generator (3 x timing_fraction, S x s_timing_factor); the
    gate then keeps about 98.6 % of the generator's Laplace arrival errors at every travel time,
    S included, where a fixed 3 % of the travel time keeps far fewer of the distant S picks."""
    from generator.network import Network
    from generator.params import GeneratorParams
    from generator.timing import arrival_errors
    from genie.detect import residual_gate

    params = GeneratorParams().replace(timing_distribution="laplace", timing_fraction=0.02, s_timing_factor=1.5,
                                       timing_floor_s=0.05, event_bias_s=0.0, timing_corr_s=0.0)
    settings = DetectSettings(max_residual_s=0.5, residual_fraction=None, s_residual_factor=None).for_generator(params)
    assert np.isclose(settings.residual_fraction, 0.06) and settings.s_residual_factor == 1.5
    # Explicit values stay as given.
    fixed = DetectSettings(residual_fraction=0.03, s_residual_factor=1.0).for_generator(params)
    assert (fixed.residual_fraction, fixed.s_residual_factor) == (0.03, 1.0)

    tt = np.array([[5.0, 10.0], [40.0, 70.0]])
    assert np.allclose(residual_gate(settings, 1.5, tt), [[0.5, 0.9], [2.4, 6.3]])
    assert np.allclose(residual_gate(settings, 1.5, tt[:, 1], phase=np.array([1, 1])), [0.9, 6.3])
    assert np.allclose(residual_gate(DetectSettings(max_residual_s=None), 1.5, tt), 1.5)  # kernel floor, no scaling

    stations = pd.DataFrame({"station_id": ["A", "B"], "latitude": [33.0, 33.5], "longitude": [-116.0, -116.0],
                             "elevation_m": [0.0, 0.0]})
    network = Network.from_stations(stations)
    travel = np.broadcast_to(np.array([[[40.0 / 1.75, 40.0]]]), (20000, 2, 2)).copy()  # 40 s S: a distant station
    errors = arrival_errors(travel, network, params, np.random.default_rng(0))
    kept = np.abs(errors) <= residual_gate(settings, 1.5, travel)
    assert 0.98 < kept[..., 0].mean() < 0.99 and 0.98 < kept[..., 1].mean() < 0.99
    old = np.abs(errors) <= residual_gate(DetectSettings(max_residual_s=0.5, residual_fraction=0.03), 1.5, travel)
    assert old[..., 1].mean() < 0.8


def test_pick_sigma_is_the_generator_timing_error_spread():
    """The a priori pick errors of the location uncertainties, filled from the generator: their
    standard deviation matches that of the generator's arrival errors (independent floor and
    fraction, correlated station field, S factor; the per-event bias apart, which goes to the
    origin time) within 20 % near and far (one floor for the independent and correlated parts
    overstates it by up to 15 % where the fraction reaches the independent floor); explicit
    settings stay; without a generator the floor is DEFAULT_PICK_SIGMA_S and no bias is added."""
    from generator.network import Network
    from generator.params import GeneratorParams
    from generator.timing import arrival_errors
    from genie.detect import DEFAULT_PICK_SIGMA_S, pick_sigma

    params = GeneratorParams().replace(timing_distribution="laplace", timing_fraction=0.02, s_timing_factor=1.5,
                                       timing_floor_s=0.06, event_bias_s=0.0, timing_corr_s=0.08)
    settings = DetectSettings(residual_fraction=None, s_residual_factor=None).for_generator(params)
    assert settings.pick_sigma_floor_s == pytest.approx(0.1) and settings.origin_bias_s == 0.0
    stations = pd.DataFrame({"station_id": ["A", "B"], "latitude": [33.0, 33.5], "longitude": [-116.0, -116.0],
                             "elevation_m": [0.0, 0.0]})
    network = Network.from_stations(stations)
    for p_s in (2.0, 20.0):
        travel = np.broadcast_to(np.array([[[p_s, 1.75 * p_s]]]), (20000, 2, 2)).copy()
        spread = arrival_errors(travel, network, params, np.random.default_rng(1)).std(axis=0)  # [2 stations, 2]
        assert np.allclose(spread, pick_sigma(settings, travel[0]), rtol=0.2)
    kept = DetectSettings(pick_sigma_floor_s=0.3, origin_bias_s=0.2).for_generator(params.replace(event_bias_s=0.05))
    assert (kept.pick_sigma_floor_s, kept.origin_bias_s) == (0.3, 0.2)
    bare = DetectSettings(residual_fraction=0.0)
    assert np.allclose(pick_sigma(bare, np.array([[5.0, 9.0]])), DEFAULT_PICK_SIGMA_S)
    assert bare.origin_bias_s is None


def test_cpu_pass_size_follows_the_product_graph(tiny_model):
    m = tiny_model
    per_window = m.pairs.shape[0] * max(m.config.hidden, m.config.latent) * 4  # float32 activation bytes
    assert windows_per_pass(m) == max(CPU_PASS_BYTES // per_window, 1)
    assert windows_per_pass(m, 5) == 5 and windows_per_pass(m, 0) == 1
    assert WindowStore(m, _planted_picks(m), 0.0, 60).batch == windows_per_pass(m)


def test_grid_does_not_depend_on_the_pass_size(tiny_model):
    """Passes of 1, 7 and 64 windows give the same likelihood grid (up to float rounding) and
    keep the same windows for the later queries."""
    picks = _planted_picks(tiny_model, origin_s=30.0)
    need = np.ones(50, dtype=bool)
    need[10:14] = False
    grids, kept = [], []
    for size in (1, 7, 64):
        store = WindowStore(tiny_model, picks, 0.0, 52, batch_windows=size)
        grids.append(grid_likelihood(tiny_model, store, need, keep_above=0.0))
        kept.append(np.flatnonzero(store.slot >= 0))
    assert grids[0].max() > 0 and (grids[0][10:14] == 0).all()
    for grid, windows in zip(grids[1:], kept[1:]):
        np.testing.assert_allclose(grid, grids[0], atol=1e-5)
        assert np.array_equal(windows, kept[0])


def test_later_passes_see_only_the_unassigned_picks(tiny_model, monkeypatch):
    """Pass 1 assigns picks 0-2 (event at 50 s), pass 2 sees the other four picks and assigns
    two of them (event at 20 s), pass 3 finds nothing: one catalog in origin order, each pick of
    the user's table assigned once, rows mapped back through the subsets."""
    import genie.detect as det

    times = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0])
    picks = PickTable(np.arange(7) % 3, times, np.zeros(7, int), tiny_model.n_stations)
    seen = []

    def fake_pass(model, table, start_s, end_s, settings, progress, activity, timings, removed=None):
        seen.append(table.time_s.tolist())
        n = len(seen)
        if n == 3:
            return (pd.DataFrame({c: pd.Series(dtype="float64") for c in EVENT_COLUMNS}),
                    pd.DataFrame({c: pd.Series(dtype="float64") for c in ASSIGNMENT_COLUMNS}))
        events = pd.DataFrame({c: [0.0] for c in EVENT_COLUMNS}).assign(origin_s=[50.0 if n == 1 else 20.0])
        rows = [0, 1, 2] if n == 1 else [1, 3]  # rows of this pass's table
        assignments = pd.DataFrame({"pick_index": rows, "event_index": 0, "phase": "P", "probability": 0.9,
                                    "residual_s": 0.0, "station": table.station[rows]})
        return events, assignments

    monkeypatch.setattr(det, "_detect_pass", fake_pass)
    events, assignments = det.detect(tiny_model, picks, 0.0, 100.0, DetectSettings(passes=3))
    assert seen == [times.tolist(), [13.0, 14.0, 15.0, 16.0], [13.0, 15.0]]
    assert events["origin_s"].tolist() == [20.0, 50.0]
    assert assignments[["pick_index", "event_index"]].values.tolist() == [[4, 0], [6, 0], [0, 1], [1, 1], [2, 1]]
    monkeypatch.setattr(det, "_detect_pass", lambda *a: (seen.clear(), fake_pass(*a))[1])
    one, _ = det.detect(tiny_model, picks, 0.0, 100.0, DetectSettings(passes=1))
    assert one["origin_s"].tolist() == [50.0] and len(seen) == 1


def test_windows_outside_the_changed_ones_keep_their_features(tiny_model):
    """Removing picks changes the features of the windows changed_windows names at most:
    every window it leaves out has the same features before and after (to float rounding: the
    pick table's epoch moves with its first pick), and some it names change."""
    import torch

    from genie.detect import changed_windows

    m = tiny_model
    rng = np.random.default_rng(7)
    n = 400
    station, time_s, phase = rng.integers(0, m.n_stations, n), rng.uniform(0, 3000, n), rng.integers(0, 2, n)
    removed = rng.choice(n, 12, replace=False)
    removed = removed[time_s[removed] < 1500]  # the second half of the day keeps all its picks
    keep = np.setdiff1d(np.arange(n), removed)
    step = m.config.offset_step_s
    first, count = -200.0, int(3400 / step)
    origins = torch.as_tensor(first + np.arange(count) * step)
    before = m.features(PickTable(station, time_s, phase, m.n_stations), origins)
    after = m.features(PickTable(station[keep], time_s[keep], phase[keep], m.n_stations), origins)
    changed = changed_windows(m, first, count, station[removed], time_s[removed])
    differs = ((before - after).abs() > 1e-5).transpose(0, 1).reshape(count, -1).any(1).numpy()
    assert differs.any() and not (differs & ~changed).any()
    assert not changed[first + np.arange(count) * step > time_s[removed].max() + 200].any()


def test_passes_must_be_a_whole_number_of_at_least_one():
    import pytest

    from catalogs.schema import InputError

    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(InputError, match="passes"):
            DetectSettings(passes=bad)
    assert DetectSettings(passes=np.int64(3)).passes == 3


def _kinematic_entries(window_s):
    """A stand-in for the association head: every pick within ``window_s`` of its phase's
    predicted arrival, with probability falling linearly to 0 at ``window_s``."""
    import torch

    def entries(model, picks, xyz, origin, embedding, threshold, per_phase, activity):
        tt = model.arrival_times(torch.as_tensor(xyz)).numpy()  # [D, S, 2]
        residual = picks.time_s[None] - origin[:, None] - tt[:, picks.station, picks.label]  # [D, N]
        d, j = np.nonzero(np.abs(residual) < window_s)
        return pd.DataFrame({"source": d, "station": picks.station[j], "phase": picks.label[j], "pick_index": j,
                             "probability": 1.0 - np.abs(residual[d, j]) / window_s,
                             "tt_s": tt[d, picks.station[j], picks.label[j]]})
    return entries


def test_relocation_rounds_follow_the_picks_to_the_event_and_stop_once_settled(tiny_model, monkeypatch):
    """A source started 25 km and 1.5 s from a planted event holds 2 of its 32 picks (those
    within 1 s of the predicted arrivals, a kinematic stand-in for the association head);
    relocated on them it holds more, and after a few rounds all 32 at the event, where the
    rounds stop before the limit. One round leaves it short of them."""
    import genie.detect as detect

    m = tiny_model
    event = m.source_xyz.numpy()[0].astype("float64")
    picks = _planted_picks(m, origin_s=20.0, node=0)
    stand_in = _kinematic_entries(1.0)
    monkeypatch.setattr(detect, "_entries", stand_in)
    located = []
    locate = detect.locate
    monkeypatch.setattr(detect, "locate", lambda *a, **k: located.append(len(a[3])) or locate(*a, **k))
    start = event + np.array([25.0, 0.0, 0.0])
    gate = lambda tt_s, phase: detect.residual_gate(DetectSettings(), m.config.kernel_s, tt_s, phase)  # noqa: E731

    def run(rounds):
        located.clear()
        store = _store(m, picks)
        embedding = detect._embeddings(m, store, np.array([18.5]), start[None, None])[:, 0]
        xyz, origin, _, _ = detect._relocation_rounds(m, picks, store, start[None].copy(), np.array([18.5]),
                                                      np.array([0.9]), embedding,
                                                      DetectSettings(relocation_rounds=rounds), None, gate)
        return xyz[0], origin[0], len(stand_in(m, picks, xyz, origin, None, 0.5, 1, None))

    held_at_start = len(stand_in(m, picks, start[None], np.array([18.5]), None, 0.5, 1, None))
    xyz, origin, held = run(10)
    assert held_at_start == 2 and held == 32
    assert np.linalg.norm(xyz[:2] - event[:2]) < 2.0 and abs(origin - 20.0) < 0.3
    assert 2 <= len(located) < 10
    assert run(1)[2] < 32 and len(located) == 1


def test_entries_scored_in_chunks_equal_all_at_once(tiny_model, monkeypatch):
    """The association head scores sources in chunks of candidate slots (memory stays bounded on
    long dense stretches): chunks of one source give the entries of one pass over all of them,
    row for row, with the sources numbered as given."""
    import torch

    import genie.detect as detect

    m = tiny_model
    picks = _planted_picks(m, origin_s=20.0, node=0)
    xyz = m.source_xyz.numpy()[:7].astype("float64")
    origin = 20.0 + 0.1 * np.arange(7)
    embedding = torch.randn(7, m.config.latent, generator=torch.Generator().manual_seed(1))
    assert detect.ENTRY_CHUNK_SLOTS // (m.n_stations * m.config.assoc_candidates) >= 7  # one chunk
    whole = detect._entries(m, picks, xyz, origin, embedding, 0.0, 2, None)
    monkeypatch.setattr(detect, "ENTRY_CHUNK_SLOTS", 1)
    chunked = detect._entries(m, picks, xyz, origin, embedding, 0.0, 2, None)
    assert set(whole["source"]) == set(range(7)) and len(whole) > 7 * m.n_stations
    pd.testing.assert_frame_equal(chunked, whole)
    empty = detect._entries(m, picks, xyz[:0], origin[:0], embedding[:0], 0.0, 2, None)
    assert len(empty) == 0 and list(empty.columns) == list(whole.columns)


def test_pick_set_signature_depends_on_the_set_only():
    from genie.detect import _pick_set_signature

    a = _pick_set_signature(np.array([0, 0, 0, 2, 2]), np.array([5, 9, 11, 9, 5]), 4)
    b = _pick_set_signature(np.array([2, 0, 2, 0, 0]), np.array([5, 11, 9, 9, 5]), 4)
    assert np.array_equal(a, b) and a[1] == a[3] == 0 and a[0] != a[2] != 0
    assert _pick_set_signature(np.array([0, 0]), np.array([5, 10]), 1)[0] != a[0]
