"""The benchmark's own pick generator (scripts/bench_scenarios.py): what it promises holds."""

import numpy as np
import pandas as pd
import pytest

from generator.velocity import VelocityModel
from scripts.bench_scenarios import (DETECTION_OFFSET, DETECTION_SLOPE, Scenario, completeness, generate,
                                     grid_stations, scenarios, write)


@pytest.fixture(scope="module")
def velocity():
    return VelocityModel.hadley_kanamori()


def test_scenario_list_covers_the_issue():
    names = [s.name for s in scenarios()]
    grid = [(s.rate_per_day, s.false_ratio) for s in scenarios()
            if s.network == "grid" and s.velocity_scale == 1 and not s.aftershocks]
    assert len(grid) == 10 and {r for r, _ in grid} == {50, 500, 2000, 5000} and (5000, 2.0) in grid
    assert {s.velocity_scale for s in scenarios()} == {0.95, 1.0, 1.05}
    assert any(s.aftershocks == 5000 for s in scenarios()) and any(s.network == "salton" for s in scenarios())
    assert len(set(names)) == len(names) and len({s.seed for s in scenarios()}) == len(names)


def test_false_ratio_timing_and_detection(velocity, tmp_path):
    sc = Scenario("t", "grid", rate_per_day=2000, false_ratio=2.0, hours=3.0, seed=5)
    network, events, picks = generate(sc, velocity, grid_stations(), cache_dir=tmp_path)
    true = picks["event"].to_numpy() >= 0
    assert (~true).sum() == round(2.0 * true.sum())
    # Same seed, same picks.
    again = generate(sc, velocity, grid_stations(), cache_dir=tmp_path)[2]
    pd.testing.assert_frame_equal(picks, again)
    # Residuals against the true travel time: Gaussian with std 0.1 s (P) and 0.2 s (S).
    from generator.traveltimes import TravelTimes

    tt = TravelTimes.build(velocity, 400, 40, cache_dir=tmp_path)
    p = picks[true]
    e, s, k = p["event"].to_numpy(), p["station"].to_numpy(), p["phase"].to_numpy()
    xyz = events[["x_km", "y_km", "depth_km"]].to_numpy()
    res = p["time_s"].to_numpy() - events["time_s"].to_numpy()[e] - tt.paired(xyz[e], network.xyz[s], k)
    assert np.std(res[k == 0]) == pytest.approx(0.1, rel=0.1) and np.std(res[k == 1]) == pytest.approx(0.2, rel=0.1)
    # P detection: about half the station-event pairs at the 50 % magnitude are picked.
    r = np.linalg.norm(xyz[:, None] - network.xyz[None], axis=-1)
    near_m50 = np.abs(events["magnitude"].to_numpy()[:, None] - (DETECTION_SLOPE * np.log10(r) + DETECTION_OFFSET)) < 0.05
    picked = np.zeros(r.shape, bool)
    picked[e[k == 0], s[k == 0]] = True
    assert picked[near_m50].mean() == pytest.approx(0.5, abs=0.1)
    # Amplitudes are peak ground velocities (m/s) in GaMMA's law: inverted they give back the
    # event magnitude, scattered by the log-normal 0.3 (0.3 / ln 10 / 0.93 = 0.14 units).
    from catalogs.magnitude import MagnitudeScale

    error = MagnitudeScale().pick_magnitudes(p["amplitude"].to_numpy(), r[e, s]) - events["magnitude"].to_numpy()[e]
    assert abs(np.median(error)) < 0.02 and np.std(error) == pytest.approx(0.14, rel=0.1)


def test_aftershocks_follow_omori(velocity, tmp_path):
    sc = Scenario("a", "grid", rate_per_day=0, false_ratio=0.0, hours=24.0, aftershocks=5000, seed=1)
    network, events, picks = generate(sc, velocity, grid_stations(), cache_dir=tmp_path)
    assert len(events) == 5001 and events["magnitude"].max() == 6.0
    t = events["time_s"].to_numpy() - 3600.0
    # Omori-Utsu with c = 60 s, p = 1.1: more events in the first hour than in the other 22 together.
    assert ((t > 0) & (t < 3600)).sum() > (t > 3600).sum()


def test_completeness_and_files(velocity, tmp_path):
    events = pd.DataFrame({"magnitude": [0.55, 0.61, 1.05, 1.12, 1.5]})
    picks = pd.DataFrame({"event": np.r_[np.zeros(3), np.full(9, 1), np.full(9, 2), np.full(8, 3), np.full(10, 4)].astype(int)})
    # Bin 0.5's only event has 3 picks; every bin from 0.6 on has its events on >= 8 picks.
    assert completeness(events, picks, share=0.9, min_picks=8) == 0.6
    sc = Scenario("f", "grid", rate_per_day=500, false_ratio=1.0, hours=1.0, seed=2)
    summary = write(sc, velocity, grid_stations(), tmp_path / "f", cache_dir=tmp_path)
    picks = pd.read_csv(tmp_path / "f" / "picks.csv")
    assert list(picks.columns) == ["station_id", "time", "phase", "score", "amplitude"]
    truth = pd.read_csv(tmp_path / "f" / "pick_truth.csv")
    assert len(truth) == len(picks) == summary["picks"] and (truth["event_id"] >= 0).sum() == summary["true_picks"]
    catalog = pd.read_csv(tmp_path / "f" / "catalog.csv")
    assert (catalog["magnitude"] >= summary["completeness_magnitude"]).all()


@pytest.mark.parametrize("argv", [["--associators", "genie,pyocta"], ["--networks", "grid,mars"],
                                  ["--config", "no_such_recipe.json"]])
def test_benchmark_rejects_bad_options_before_touching_its_output(tmp_path, argv, capsys):
    from scripts import benchmark

    out = tmp_path / "bench"
    out.mkdir()
    (out / "runs.json").write_text("{}")  # an earlier run's record, which a plain run would clear
    with pytest.raises(SystemExit) as stop:
        benchmark.main(["--out", str(out), *argv])
    assert stop.value.code == 2
    assert argv[1].split(",")[-1] in capsys.readouterr().err
    assert (out / "runs.json").read_text() == "{}"


def test_scenario_errors_reports_the_scenario_and_rejects_a_bad_one(trained_model_dir, synthetic_day, tmp_path,
                                                                    capsys):
    """The trained test model on two synthetic hours written as a benchmark scenario: the script
    scores it (recall of the counted events as the association tests find) and lists each false
    and missed event once; a directory without the scenario files exits 2."""
    import re

    from scripts import scenario_errors

    picks, truth, stations = synthetic_day
    d = tmp_path / "scenario"
    d.mkdir()
    picks[["station_id", "time", "phase", "score", "amplitude"]].to_csv(d / "picks.csv", index=False)
    picks[["event_id", "true_phase"]].to_csv(d / "pick_truth.csv", index=False)
    stations.to_csv(d / "stations.csv", index=False)
    ids = picks["event_id"].to_numpy()
    truth.assign(n_picks=np.bincount(ids[ids >= 0], minlength=len(truth))).to_csv(d / "events.csv", index=False)
    assert scenario_errors.main(["--scenario", str(d), "--model", str(trained_model_dir)]) == 0
    out = capsys.readouterr().out
    f1, precision, recall = (float(x) for x in re.search(r"F1 ([\d.]+) \(precision ([\d.]+), recall ([\d.]+)\)",
                                                         out).groups())
    assert recall >= 0.78 and precision >= 0.9
    n_false = int(re.search(r"(\d+) false events", out).group(1))
    n_missed = int(re.search(r"(\d+) missed events", out).group(1))
    counted = int((np.bincount(ids[ids >= 0], minlength=len(truth)) >= 6).sum())
    assert n_missed == round(counted * (1 - recall)) and n_false >= 0
    with pytest.raises(SystemExit) as stop:
        scenario_errors.main(["--scenario", str(tmp_path), "--model", str(trained_model_dir)])
    assert stop.value.code == 2 and "picks.csv" in capsys.readouterr().err


def test_report_lists_scenarios_in_the_order_of_the_list_whatever_order_they_were_run():
    """A resumed run that adds a scenario records it last; the tables still follow the list
    (the calibration days after the scenarios), ours before the peers within a scenario."""
    from argparse import Namespace

    from scripts import benchmark

    listed = [s.name for s in scenarios(6.0)]
    late, early = listed[9], listed[0]  # 5,000/day, then 50/day: recorded in the wrong order
    calibration = f"{listed[4]} (calibration day)"
    info = {"events": 1, "counted_events": 1, "picks": 10, "true_picks": 5, "completeness_magnitude": 1.0,
            "reference_events": 1}
    score = {"f1": 1.0, "precision": 1.0, "recall": 1.0, "pick_precision": 1.0, "pick_recall": 1.0,
             "seconds": 1.0, "picks_per_s": 10.0, "peak_mb": 500.0}
    record = {"scenarios": {late: info, calibration: info, early: info}, "models": {},
              "runs": {f"{late} | pyocto": score, f"{early} | genie": score, f"{late} | genie": score}}
    text = "\n".join(benchmark.report(record, Namespace(threads=2, config="small"), 6.0, 4000))
    runs, scenario_table = text.split("Scenarios:")
    rows = [line.split(" | ")[:2] for line in runs.splitlines() if line.startswith(f"| {early}") or
            line.startswith(f"| {late}")]
    assert rows == [[f"| {early}", "genie"], [f"| {late}", "genie"], [f"| {late}", "pyocto"]]
    order = [line.split(" | ")[0] for line in scenario_table.splitlines() if line.startswith("| ")][1:]
    assert order[:3] == [f"| {early}", f"| {late}", f"| {calibration}"]


def test_benchmark_of_the_peers_alone_trains_no_model(tmp_path):
    """``--associators`` without ours writes the scenarios but neither calibrates nor trains a
    model (a rerun of the peers alone takes their time only); with no associator left to run
    (GaMMA asked and skipped), the report is written with an empty table."""
    import json

    from scripts import benchmark

    out = tmp_path / "bench"
    assert benchmark.main(["--out", str(out), "--quick", "--hours", "0.1", "--associators", "gamma", "--skip-gamma",
                           "--data", str(tmp_path / "no_data")]) == 0
    record = json.loads((out / "runs.json").read_text())
    assert sorted(record["scenarios"]) == sorted(benchmark.QUICK)
    assert record["models"] == {} and not (out / "models").exists()
    assert record["runs"] == {}
    assert (out / "benchmark.md").read_text().startswith("# Benchmark")
