import json

import numpy as np
import pandas as pd
import pytest

from catalogs.events import write_catalog
from conftest import make_events
from genie import __version__
from genie.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 2
    assert "compare" in capsys.readouterr().out


@pytest.fixture()
def two_catalogs(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    t = np.sort(rng.uniform(0, 86400, n))
    mags = np.round(0.95 + rng.exponential(1 / np.log(10), n), 1)
    ref = make_events(t, 33 + rng.normal(0, 0.05, n), -115.5 + rng.normal(0, 0.05, n), mags=mags)
    # The catalog finds every event above M 1.5 and half of the others, plus 20 false events.
    found = (mags >= 1.5) | (rng.random(n) < 0.5)
    cat = ref[found].copy()
    cat["time"] = cat["time"] + pd.to_timedelta(rng.normal(0, 0.3, len(cat)), unit="s")
    false = make_events(rng.uniform(0, 86400, 20), np.full(20, 34.0), np.full(20, -116.0), ids=[f"f{i}" for i in range(20)])
    cat = pd.concat([cat, false], ignore_index=True)
    write_catalog(ref, None, None, tmp_path / "ref.csv")
    write_catalog(cat, None, None, tmp_path / "cat.xml")
    return tmp_path, int(found.sum()), n


def test_compare_end_to_end(two_catalogs, capsys):
    tmp, n_found, n = two_catalogs
    out = tmp / "out"
    assert main(["compare", "--catalog", str(tmp / "cat.xml"), "--reference", str(tmp / "ref.csv"), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["counts"] == {"catalog": n_found + 20, "reference": n, "matched": n_found,
                                "missed": n - n_found, "new": 20}
    assert report["recall"] == pytest.approx(n_found / n)
    big = [b for b in report["by_magnitude"] if b["magnitude_min"] >= 1.5 and b["n_reference"]]
    assert big and all(b["recall"] == 1.0 for b in big)
    assert report["gutenberg_richter"]["reference"]["b"] == pytest.approx(1.0, abs=0.2)
    for name in ("gutenberg_richter.png", "map.png", "recall_vs_magnitude.png", "differences.png",
                 "matched.csv", "missed.csv", "new.csv"):
        assert (out / name).stat().st_size > 0
    assert "recall" in capsys.readouterr().out


def test_compare_reports_unknown_station_picks(two_catalogs, capsys):
    tmp, _, _ = two_catalogs
    (tmp / "st.csv").write_text("station,lat,lon,elevation\nCI.AAA,33,-115.5,0\n")
    (tmp / "p.csv").write_text(
        "station_id,phase_time,phase_type,phase_score\nCI.AAA..HH,2020-01-01T00:00:01,P,0.9\n"
        "CI.ZZZ..HH,2020-01-01T00:00:02,S,0.8\n"
    )
    out = tmp / "out"
    args = ["compare", "--catalog", str(tmp / "cat.xml"), "--reference", str(tmp / "ref.csv"), "--out", str(out),
            "--stations", str(tmp / "st.csv"), "--picks", str(tmp / "p.csv")]
    assert main(args) == 0
    picks = json.loads((out / "report.json").read_text())["picks"]
    assert picks["n_read"] == 2 and picks["n_used"] == 1 and picks["n_excluded"] == 1
    assert picks["excluded_station_ids"] == {"CI.ZZZ..HH": 1}
    assert "CI.ZZZ..HH" in (out / "excluded_picks.csv").read_text()


def test_compare_bad_input_exit_code_2(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code = main(["compare", "--catalog", str(empty), "--reference", str(empty), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "empty.csv" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("when,where\n1,2\n")
    assert main(["compare", "--catalog", str(bad), "--reference", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "missing column" in err and "when" in err


def test_compare_refuses_to_overwrite_inputs(tmp_path, capsys):
    ref = tmp_path / "matched.csv"
    write_catalog(make_events([0.0], [33.0], [-115.0]), None, None, ref)
    before = ref.read_text()
    assert main(["compare", "--catalog", str(ref), "--reference", str(ref), "--out", str(tmp_path)]) == 2
    assert ref.read_text() == before


def test_synth_on_salton_stations(salton_dir, tmp_path, capsys):
    out = tmp_path / "synth"
    code = main(["synth", "--stations", str(salton_dir / "stations.csv"), "--velocity-model", "homogeneous:6.0",
                 "--hours", "6", "--events-per-day", "200", "--tt-spacing", "2", "--cache", str(tmp_path / "cache"),
                 "--reference-catalog", str(salton_dir / "catalog_scsn.csv"), "--figures", "2", "--out", str(out)])
    assert code == 0
    picks = pd.read_csv(out / "picks.csv")
    events = pd.read_csv(out / "events.csv")
    assert {"event_id", "true_phase", "pick_type"} <= set(picks.columns) and len(events) > 20
    assert set(picks["station_id"]) <= set(pd.read_csv(out / "stations.csv")["station_id"])
    # Events sit where the reference seismicity is (the swarm near 33.05 N, 115.6 W).
    assert (events["latitude"] - 33.05).abs().median() < 0.1
    assert len(list((out / "figures").glob("selection_*.png"))) == 2
    from catalogs.picks import read_picks

    assert len(read_picks(out / "picks.csv")) == len(picks)
    assert "events" in capsys.readouterr().out


def test_synth_bad_params(tmp_path, capsys):
    (tmp_path / "st.csv").write_text("station,lat,lon\nA,33,-116\nB,33.2,-116.1\n")
    (tmp_path / "g.json").write_text('{"p_exp": "high"}')
    code = main(["synth", "--stations", str(tmp_path / "st.csv"), "--params", str(tmp_path / "g.json"),
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "p_exp" in capsys.readouterr().err


def test_calibrate_on_salton_sea(salton_dir, tmp_path, capsys):
    out = tmp_path / "cal"
    code = main(["calibrate", "--stations", str(salton_dir / "stations.csv"),
                 "--picks", str(salton_dir / "picks_phasenet.csv"), "--catalog", str(salton_dir / "catalog_scsn.csv"),
                 "--velocity-model", "hadley_kanamori", "--tt-spacing", "2", "--cache", str(tmp_path / "cache"),
                 "--timing-calls", "10", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "calibration_report.json").read_text())
    assert report["labelling"]["events_kept"] > 950 and report["labelling"]["picks_labelled"] > 18_000
    assert report["objective_calibrated"] <= 0.5 * report["objective_default"]
    assert report["fits"]["station_detection"]["CI.DRE..HH"][1] < 0.1  # DRE picks no S
    from generator.params import GeneratorParams

    params = GeneratorParams.from_json(out / "generator_params.json")
    assert params.radial_factor_p != GeneratorParams().radial_factor_p
    for name in ("convergence.png", "metrics_by_magnitude.png"):
        assert (out / "figures" / name).stat().st_size > 10_000
    assert len(list((out / "figures").glob("real_vs_synthetic_*_calibrated.png"))) == 3
    assert "calibrated" in capsys.readouterr().out
