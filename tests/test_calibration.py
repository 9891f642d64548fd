import json

import numpy as np
import pandas as pd
import pytest

from calibration.metrics import compare_selections, inertia, moran_weights, morans_i, selection_metrics
from calibration.objective import Objective, magnitude_bins, stratified_sample
from calibration.optimize import (
    CalibrationSettings,
    calibrate,
    fit_background,
    fit_pdist,
    fit_station_detection,
)
from calibration.reference import ReferenceEvents, label_picks
from catalogs.schema import InputError
from generator.detection import sample_selections
from generator.events import gutenberg_richter
from generator.params import GeneratorParams
from generator.synthesize import generate
from test_generator import grid_network


def rook_weights(n):
    idx = np.arange(n * n).reshape(n, n)
    w = np.zeros((n * n, n * n))
    for a, b in ((idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :])):
        w[a.ravel(), b.ravel()] = w[b.ravel(), a.ravel()] = 1.0
    return w


def test_morans_i_known_values():
    n = 6
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    checker = ((i + j) % 2).ravel()[None].astype(bool)
    half = (j >= n // 2).ravel()[None]
    w = rook_weights(n)
    assert morans_i(checker, w)[0] == pytest.approx(-1.0)
    assert morans_i(half, w)[0] == pytest.approx(0.8)  # 36/120 * 24/9
    xy = np.column_stack([j.ravel(), i.ravel()]) * 10.0
    w_exp = moran_weights(xy, 5.0)  # exp(-d/l): diagonal neighbours (same colour) soften the checkerboard
    assert morans_i(checker, w_exp)[0] == pytest.approx(-0.385, abs=0.001)
    assert morans_i(half, w_exp)[0] == pytest.approx(0.675, abs=0.001)
    assert np.isnan(morans_i(np.ones((1, n * n), bool), w)[0])


def test_inertia_and_set_comparison():
    xy = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [10.0, 10.0]])
    sel = np.array([[True, True, True, False], [False, False, False, True], [False] * 4])
    total, mean = inertia(sel, xy)
    # centroid (2/3, 2/3): squared distances 8/9 + 20/9 + 20/9 = 48/9
    assert total == pytest.approx([48 / 9, 0.0, 0.0]) and mean == pytest.approx([16 / 9, 0.0, 0.0])
    inter, sym = compare_selections(sel[:1], sel[:1], sel[1:2], sel[:1]).iloc[0][["intersection_p", "symdiff_p"]]
    assert (inter, sym) == (0, 4)
    m = selection_metrics(sel, sel, xy, moran_weights(xy, 5.0))
    assert m["n_p"].tolist() == [3, 1, 0] and m["n_ps"].tolist() == [3, 1, 0]


def planted_reference(net, truth, n=800, seed=123):
    rng = np.random.default_rng(seed)
    src = np.column_stack([rng.uniform(-40, 40, n), rng.uniform(-40, 40, n), rng.uniform(2, 15, n)])
    mag = gutenberg_richter(n, 0.6, 0.5, 3.5, rng)
    sel = sample_selections(net, src, mag, truth, rng)
    lat, lon = net.projection.to_latlon(src[:, 0], src[:, 1])
    events = pd.DataFrame({"event_id": np.arange(n).astype(str),
                           "time": pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 100.0, unit="s"),
                           "latitude": lat, "longitude": lon, "depth_km": src[:, 2], "magnitude": mag,
                           "x_km": src[:, 0], "y_km": src[:, 1]})
    empty = pd.DataFrame({"pick_index": [], "event_id": [], "phase": [], "residual_s": [], "score": []})
    seen = (sel.p | sel.s).sum(1) >= 3
    ref = ReferenceEvents(events, sel.p, sel.s, np.full((n, len(net), 2), np.nan), empty, {"min_stations": 3})
    return ref.subset(np.flatnonzero(seen))


def test_objective_is_deterministic_smooth_and_stratified():
    net = grid_network(6, 12.0)
    ref = planted_reference(net, GeneratorParams())
    edges = magnitude_bins(ref.magnitudes, 0.5)
    rows = stratified_sample(ref.magnitudes, edges, 20, np.random.default_rng(0))
    counts = np.histogram(ref.magnitudes[rows], edges)[0]
    assert counts.max() <= 20 and np.histogram(ref.magnitudes, edges)[0].min() >= 5
    obj = Objective.from_reference(net, ref, per_bin=50, replicates=4)
    p = GeneratorParams()
    assert obj(p) == obj(p)  # common random numbers
    values = [obj(p.replace(radial_factor_p=f)) for f in (0.9, 0.95, 1.0, 1.05, 1.1)]
    assert np.abs(np.diff(values)).max() < 0.2
    assert obj(p.replace(radial_factor_p=2.5)) > obj(p) + 0.3
    value, table = obj.evaluate(p)
    assert set(table["metric"]) >= {"n_p", "moran_s", "inertia_union", "symdiff_union"}
    assert value == pytest.approx(table[table.metric != "symdiff_union"].groupby("metric")["term"].mean().sum())


def test_closed_loop_recovery():
    net = grid_network(6, 12.0)
    truth = GeneratorParams(radial_factor_p=1.4, radial_factor_s=0.9, miss_pick_rate=0.15, p_exp=2.5,
                            lambda_noise=0.3, sigma_noise=25.0)
    ref = planted_reference(net, truth)
    obj = Objective.from_reference(net, ref, per_bin=100, replicates=5, seed=0)
    weak = ["pdist_log10_km_at_m0", "pdist_per_magnitude", "radial_perturb_factor", "angle_perturb",
            "axis_perturb_factor", "ps_noise_correlation"]
    settings = CalibrationSettings(n_calls=150, timing_calls=0, fixed={k: getattr(truth, k) for k in weak})
    best, report = calibrate(net, ref, None, settings=settings, objective=obj, progress=False)
    assert report["objective_calibrated"] <= 1.1 * obj(truth)
    assert report["objective_calibrated"] < 0.3 * report["objective_default"]
    assert best.radial_factor_p == pytest.approx(1.4, rel=0.1)
    assert best.radial_factor_s == pytest.approx(0.9, rel=0.1)
    assert best.miss_pick_rate == pytest.approx(0.15, abs=0.05)
    assert best.p_exp == pytest.approx(2.5, abs=0.5)
    assert len(report["rounds"]["round1"]["y"]) + len(report["rounds"]["round2"]["y"]) == 151


def test_checkpoint_resume(tmp_path):
    net = grid_network(5, 12.0)
    ref = planted_reference(net, GeneratorParams(), n=300)
    obj = Objective.from_reference(net, ref, per_bin=30, replicates=2)
    settings = CalibrationSettings(n_calls=12, timing_calls=0, spatial_bounds={"radial_factor_p": (0.5, 2.0)},
                                   fixed={})
    settings.spatial_bounds = {"radial_factor_p": (0.5, 2.0), "miss_pick_rate": (0.0, 0.5)}
    path = tmp_path / "checkpoint.json"
    best1, rep1 = calibrate(net, ref, None, settings=settings, objective=obj, checkpoint_path=path, progress=False)
    saved = json.loads(path.read_text())
    assert len(saved["rounds"]["round1"]) == 7
    calls = []
    counting = Objective.from_reference(net, ref, per_bin=30, replicates=2)
    original = counting.evaluate

    def spy(params):
        calls.append(params)
        return original(params)

    counting.evaluate = spy
    best2, rep2 = calibrate(net, ref, None, settings=settings, objective=counting, checkpoint_path=path, progress=False)
    assert len(calls) == 2  # only the before/after evaluations: every search call came from the checkpoint
    assert best2 == best1


def test_calibration_config_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"spatial_bounds": {"p_exp": [1, 2]}, "fixed": {"sigma_noise": 50}, "zoom": 0.1}))
    s = CalibrationSettings.from_json(path, n_calls=30)
    assert s.spatial_bounds["p_exp"] == (1.0, 2.0) and s.fixed == {"sigma_noise": 50} and s.zoom == 0.1
    assert s.n_calls == 30 and "radial_factor_p" in s.spatial_bounds
    path.write_text(json.dumps({"spatial_bounds": {"p_exp": [3, 2]}}))
    with pytest.raises(InputError, match="invalid bounds"):
        CalibrationSettings.from_json(path)


def test_labelling_recovers_planted_events_and_fits(homogeneous_tt):
    net = grid_network(6, 12.0)
    params = GeneratorParams(event_rate_per_day=150, burst_rate_per_day=0.0, background_rate_per_hour=5.0,
                             coda_pick_rate=0.0, spike_rate_per_day=0.0, phase_flip_rate=0.0,
                             station_detection={"XX.S07": [0.0, 0.0]})
    picks, events = generate(net, homogeneous_tt, params, 86400.0, 5)
    contract = picks[["station_id", "time", "phase", "score", "amplitude"]]
    ref = label_picks(events, contract, net, homogeneous_tt, min_stations=3)
    truth = picks["event_id"].to_numpy()
    labelled = ref.assignments
    event_of = labelled["event_id"].astype(int).to_numpy()
    correct = truth[labelled["pick_index"].to_numpy()] == event_of
    assert correct.mean() > 0.97
    true_picks = truth >= 0
    recall = len(labelled) / true_picks.sum()
    assert recall > 0.9
    assert ref.summary["events_kept"] == ((events["n_p"] + events["n_s"]) > 0).sum() - \
        (((events["n_p"] + events["n_s"]) > 0) & ~np.isin(events["event_id"], ref.events["event_id"])).sum()
    # Residual std ~ the generator's timing error (after station corrections).
    assert np.nanstd(ref.residuals[..., 0]) < 0.3
    # Dead station found; background rate of the unlabelled picks ~ 5 per station-hour.
    factors = fit_station_detection(ref, net)
    assert factors["XX.S07"] == [0.02, 0.02]
    bg = fit_background(contract, ref, net)
    assert bg["background_rate_per_hour"] == pytest.approx(5.0 * np.exp(0.5**2 / 2) * 1.0, rel=0.35)
    pd_fit = fit_pdist(ref, net, factors)
    assert pd_fit["ok"] and pd_fit["pdist_per_magnitude"] > 0.1


def test_reference_from_associated_quakeml(tmp_path, homogeneous_tt):
    from calibration.reference import from_associations
    from catalogs.events import read_associations, write_catalog

    net = grid_network(6, 12.0)
    params = GeneratorParams(event_rate_per_day=100, burst_rate_per_day=0.0, background_rate_per_hour=2.0)
    picks, events = generate(net, homogeneous_tt, params, 6 * 3600.0, 3)
    true = picks[picks["event_id"] >= 0]
    assignments = pd.DataFrame({"pick_index": true.index.to_numpy(), "event_id": true["event_id"].astype(str),
                                "phase": true["true_phase"], "residual_s": np.nan, "score": 1.0})
    path = tmp_path / "assoc.xml"
    write_catalog(events, assignments, picks[["station_id", "time", "phase", "score", "amplitude"]], path)
    ev, asg, pk = read_associations(path)
    ref = from_associations(ev, asg, pk, net, homogeneous_tt, min_stations=3)
    kept = events.set_index("event_id").loc[ref.events["event_id"]]
    stations_per_event = true.groupby("event_id")["station_id"].nunique()
    assert len(ref) == (stations_per_event >= 3).sum() > 10
    assert ref.selected_p.sum(1).tolist() == kept["n_p"].tolist()
    assert ref.selected_s.sum(1).tolist() == kept["n_s"].tolist()
    assert np.nanmax(np.abs(ref.residuals)) < 1.5  # computed from travel times: timing errors only
