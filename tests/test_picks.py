import logging
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from catalogs.picks import attach_stations, match_station_ids, read_picks
from catalogs.schema import EmptyInputError, InputError

T0 = pd.Timestamp("2020-10-01T00:00:00", tz="UTC")


def test_phasenet_csv(tmp_path):
    path = tmp_path / "picks.csv"
    path.write_text(
        "station_id,phase_time,phase_score,phase_type,phase_amplitude\n"
        "CI.BBB..HH,2020-10-01T00:00:05.500,0.9,S,2e-5\n"
        "CI.AAA..HH,2020-10-01T00:00:01.250,0.8,P,1e-5\n"
    )
    picks = read_picks(path)
    assert picks.columns.tolist() == ["station_id", "time", "phase", "score", "amplitude"]
    assert str(picks["time"].dtype) == "datetime64[ns, UTC]"
    assert picks["station_id"].tolist() == ["CI.AAA..HH", "CI.BBB..HH"]  # sorted by time
    assert (picks["time"] - T0).dt.total_seconds().tolist() == [1.25, 5.5]
    assert picks["amplitude"].tolist() == [1e-5, 2e-5]


def test_phasenet_legacy_layout(tmp_path):
    path = tmp_path / "legacy.tsv"
    path.write_text(
        "fname\tt0\tidx_p\tprob_p\tidx_s\tprob_s\tamp_p\tamp_s\n"
        "2020-10-01T01.CI.AAA..HH\t0\t[100,250]\t[0.5,0.6]\t[300]\t[0.7]\t[1e-6,2e-6]\t[3e-6]\n"
        "2020-10-01T02.CI.BBB..HH\t0\t[]\t[]\t[1]\t[0.4]\t[]\t[4e-6]\n"
    )
    picks = read_picks(path)
    seconds = (picks["time"] - T0).dt.total_seconds().tolist()
    assert seconds == [3601.0, 3602.5, 3603.0, 7200.01]
    assert picks["phase"].tolist() == ["P", "P", "S", "S"]
    assert picks["score"].tolist() == [0.5, 0.6, 0.7, 0.4]
    assert picks["amplitude"].tolist() == [1e-6, 2e-6, 3e-6, 4e-6]


def test_legacy_mismatched_lists(tmp_path):
    path = tmp_path / "legacy.tsv"
    path.write_text("fname\tt0\tidx_p\tprob_p\tidx_s\tprob_s\n2020-10-01T01.CI.AAA..HH\t0\t[1,2]\t[0.5]\t[]\t[]\n")
    with pytest.raises(InputError, match="different lengths"):
        read_picks(path)


def test_seisbench_csv_and_picklist(tmp_path):
    path = tmp_path / "sb.csv"
    path.write_text("trace_id,start_time,peak_time,end_time,peak_value,phase\nCI.AAA.,x,2020-10-01T00:00:02,y,0.7,P\n")
    picks = read_picks(path)
    assert picks[["station_id", "phase", "score"]].iloc[0].tolist() == ["CI.AAA.", "P", 0.7]
    from obspy import UTCDateTime

    objs = [SimpleNamespace(trace_id="CI.AAA.", peak_time=UTCDateTime(2020, 10, 1, 0, 0, 3), peak_value=0.6, phase="S")]
    picks = read_picks(objs)
    assert (picks["time"] - T0).dt.total_seconds().tolist() == [3.0]
    with pytest.raises(InputError, match="SeisBench"):
        read_picks([1, 2])


def test_pyocto_and_gamma_styles():
    pyocto = pd.DataFrame({"station": ["AAA"], "phase": ["P"], "time": [T0.timestamp() + 1.5]})
    picks = read_picks(pyocto)
    assert (picks["time"] - T0).dt.total_seconds().iloc[0] == pytest.approx(1.5, abs=1e-6)
    assert picks["score"].iloc[0] == 1.0 and np.isnan(picks["amplitude"].iloc[0])
    gamma = pd.DataFrame({"id": ["AAA"], "timestamp": ["2020-10-01T00:00:01"], "type": ["p"], "prob": [0.5], "amp": [1e-6]})
    picks = read_picks(gamma)
    assert picks[["phase", "score", "amplitude"]].iloc[0].tolist() == ["P", 0.5, 1e-6]


def test_bad_phase_and_missing_columns(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("station_id,phase_time,phase_type\nA,2020-10-01T00:00:00,P\nA,2020-10-01T00:00:01,X\n")
    with pytest.raises(InputError, match=r"p.csv, line 3: column 'phase_type' has phase 'X'"):
        read_picks(path)
    path.write_text("station_id,when\nA,2020\n")
    with pytest.raises(InputError, match=r"missing column\(s\) \['time', 'phase'\].*columns found: \['station_id', 'when'\]"):
        read_picks(path)
    path.write_text("")
    with pytest.raises(EmptyInputError):
        read_picks(path)


def test_station_id_rule():
    stations = ["CI.BOM", "CI.COA..HH", "XX.DUP.00", "XX.DUP.10", "LONE"]
    mapping = match_station_ids(
        ["CI.BOM..HH", "CI.BOM.", "CI.COA..HN", "XX.DUP.10.HH", "XX.DUP..HH", "AZ.BOM..HH", "LONE", "ZZ.LONE..HH", "BOM"],
        stations,
    )
    assert mapping == {
        "CI.BOM..HH": "CI.BOM",  # NET.STA
        "CI.BOM.": "CI.BOM",
        "CI.COA..HN": "CI.COA..HH",  # NET.STA, another channel of the same station
        "XX.DUP.10.HH": "XX.DUP.10",  # NET.STA.LOC disambiguates
        "LONE": "LONE",
        "ZZ.LONE..HH": "LONE",  # station listed without a network
        "BOM": "CI.BOM",  # pick without a network
    }  # XX.DUP..HH is ambiguous and AZ.BOM is another network: unmatched


def test_attach_stations_excludes_unknown_with_one_warning(caplog):
    picks = read_picks(pd.DataFrame({"station_id": ["CI.A..HH", "CI.Q..HH", "CI.Q..HH"], "time": [1.0, 2.0, 3.0], "phase": "P"}))
    stations = pd.DataFrame({"station_id": ["CI.A"], "latitude": [1.0], "longitude": [1.0], "elevation_m": [0.0]})
    with caplog.at_level(logging.WARNING):
        kept, excluded = attach_stations(picks, stations, source="p.csv")
    assert kept["station_id"].tolist() == ["CI.A"] and kept["raw_station_id"].tolist() == ["CI.A..HH"]
    assert excluded["station_id"].tolist() == ["CI.Q..HH", "CI.Q..HH"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 pick(s)" in warnings[0].message and "CI.Q..HH" in warnings[0].message
