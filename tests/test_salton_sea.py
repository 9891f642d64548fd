"""End-to-end checks on the real Salton Sea data (skipped when ../shared/data is absent)."""

import json

import numpy as np
import pandas as pd
import pytest

from catalogs.events import read_associations, read_catalog, write_catalog
from catalogs.picks import attach_stations, read_picks
from catalogs.stations import read_stations
from genie.cli import main

pytestmark = pytest.mark.realdata


def test_counts(salton_dir):
    picks = read_picks(salton_dir / "picks_phasenet.csv")
    assert len(picks) == 62_314
    assert (picks["phase"] == "P").sum() == 32_737 and (picks["phase"] == "S").sum() == 29_577
    stations = read_stations(salton_dir / "stations.csv")
    assert len(stations) == 16
    bom = stations.set_index("station_id").loc["CI.BOM..HH"]
    assert (bom["latitude"], bom["longitude"], bom["elevation_m"]) == (33.365, -115.730, -54.0)
    kept, excluded = attach_stations(picks, stations)
    assert len(kept) == 62_314 and excluded.empty
    catalog = read_catalog(salton_dir / "catalog_scsn.csv")
    assert len(catalog) == 1_062
    assert catalog["magnitude"].min() == pytest.approx(0.52) and catalog["magnitude"].max() == pytest.approx(4.93)
    assert catalog["time"].iloc[0] == pd.Timestamp("2020-10-01T00:02:21.07", tz="UTC")


def test_legacy_and_csv_picks_identical(salton_dir):
    csv = read_picks(salton_dir / "picks_phasenet.csv")
    legacy = read_picks(salton_dir / "picks_phasenet_legacy.tsv")
    pd.testing.assert_frame_equal(csv, legacy)


def test_compare_scsn_with_itself_and_quakeml_round_trip(salton_dir, tmp_path):
    scsn = salton_dir / "catalog_scsn.csv"
    out = tmp_path / "cmp"
    assert main(["compare", "--catalog", str(scsn), "--reference", str(scsn), "--out", str(out),
                 "--stations", str(salton_dir / "stations.csv")]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["recall"] == 1.0 and report["precision"] == 1.0
    assert report["counts"]["matched"] == 1_062

    events = read_catalog(scsn)
    qml = tmp_path / "scsn.xml"
    write_catalog(events, None, None, qml)
    back, _, _ = read_associations(qml)
    assert back["event_id"].tolist() == events["event_id"].tolist()
    assert (back["time"] - events["time"]).abs().max() < pd.Timedelta("1us")
    for column in ("latitude", "longitude", "depth_km", "magnitude"):
        np.testing.assert_allclose(back[column], events[column], atol=1e-9)
