import numpy as np
import obspy
import pandas as pd
import pytest

from catalogs.events import read_associations, read_catalog, write_catalog
from catalogs.schema import EmptyInputError, InputError
from conftest import make_events


def test_comcat_csv(tmp_path):
    path = tmp_path / "comcat.csv"
    path.write_text(
        "time,latitude,longitude,depth,mag,magType,nst,gap,dmin,rms,net,id,updated,place,type,"
        "horizontalError,depthError,magError,magNst,status,locationSource,magSource\n"
        "2020-10-01T00:03:02.640Z,33.029,-115.592,4.73,2.33,ml,30,50,0.1,0.2,ci,ci39000001,x,y,earthquake,"
        "0.3,0.8,0.1,10,reviewed,ci,ci\n"
        "2020-10-01T00:02:21.070Z,33.092,-115.585,2.51,2.43,ml,30,50,0.1,0.15,ci,ci39000000,x,y,earthquake,"
        "0.2,0.5,0.1,10,reviewed,ci,ci\n"
    )
    ev = read_catalog(path)
    assert ev["event_id"].tolist() == ["ci39000000", "ci39000001"]  # sorted by time
    assert ev["depth_km"].tolist() == [2.51, 4.73]
    assert ev["magnitude"].tolist() == [2.43, 2.33]
    assert ev["rms_s"].tolist() == [0.15, 0.2]
    assert ev["horizontal_uncertainty_km"].tolist() == [0.2, 0.3]
    assert ev["magnitude_type"].tolist() == ["ml", "ml"]
    assert str(ev["time"].dtype) == "datetime64[ns, UTC]"


def test_depth_in_metres_and_generated_ids(tmp_path):
    path = tmp_path / "scsn.csv"
    path.write_text("time\tx(km)\ty(km)\tz(km)\tmag\tlng\tlat\tdepth(m)\n2020-10-01T00:02:21.070000\t49.5\t68.0\t2.51\t2.43\t-115.585\t33.092\t2510.0\n")
    ev = read_catalog(path)
    assert ev[["event_id", "depth_km", "latitude", "longitude"]].iloc[0].tolist() == ["0", 2.51, 33.092, -115.585]


def test_bad_catalogs(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("time,latitude,longitude,depth\n2020-10-01T00:00:00,33,-115,5\nnot-a-time,33,-115,5\n")
    with pytest.raises(InputError, match=r"c.csv, line 3: column 'time' has unparseable time 'not-a-time'"):
        read_catalog(path)
    path.write_text("time,latitude,longitude,depth\n2020-10-01T00:00:00,33,,5\n")
    with pytest.raises(InputError, match=r"c.csv, line 2: column 'longitude'"):
        read_catalog(path)
    path.write_text("time,lat,lon\n2020-10-01T00:00:00,33,-115\n")
    with pytest.raises(InputError, match=r"missing column\(s\) \['depth_km'\].*columns found"):
        read_catalog(path)
    path.write_text("time,latitude,longitude,depth\n")
    with pytest.raises(EmptyInputError):
        read_catalog(path)


PHA = """# 2020 10  1  0  2 21.07  33.0920 -115.5850   2.51  2.43  0.20  0.50  0.15      7
BOM      2.500  1.000   P
CI.COA   4.250  0.500   S
# 2020 10  1  0  3  2.64  33.0290 -115.5920   4.73  2.33  0.30  0.80  0.20      8
"""


def test_hypodd_pha(tmp_path):
    path = tmp_path / "phase.pha"
    path.write_text(PHA)
    events, assignments, picks = read_associations(path)
    assert events["event_id"].tolist() == ["7", "8"]
    assert events["magnitude"].tolist() == [2.43, 2.33]
    origin = events["time"].iloc[0]
    assert (picks["time"] - origin).dt.total_seconds().tolist() == [2.5, 4.25]
    assert picks["station_id"].tolist() == ["BOM", "CI.COA"]
    assert assignments[["pick_index", "event_id", "phase"]].values.tolist() == [[0, "7", "P"], [1, "7", "S"]]
    path.write_text(PHA.replace("2.500", "two"))
    with pytest.raises(InputError, match=r"line 2: travel time 'two'"):
        read_associations(path)


def associated_tables():
    events = make_events([0.0, 60.0], [33.0, 33.1], [-115.5, -115.6], depths=[5.0, 7.5], mags=[2.0, np.nan], ids=["a", "b"])
    events["score"] = [0.9, 0.8]
    events["rms_s"] = [0.12, 0.3]
    # Event a: a 1-sigma ellipse 2.0 x 0.5 km, semi-major axis N 60 E; event b: a circle only.
    events["horizontal_uncertainty_km"] = [2.0, 0.8]
    events["min_horizontal_uncertainty_km"] = [0.5, np.nan]
    events["azimuth_max_horizontal_uncertainty_deg"] = [60.0, np.nan]
    picks = pd.DataFrame(
        {
            "station_id": ["CI.AAA..HH", "CI.BBB..HH", "CI.AAA..HH", "CI.CCC..HH"],
            "time": pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta([2.0, 3.5, 62.25, 500.0], unit="s"),
            "phase": ["P", "S", "P", "P"],
            "score": [0.9, 0.8, 0.7, 0.6],
            "amplitude": [1e-5, np.nan, 2e-6, 1e-7],
        }
    )
    assignments = pd.DataFrame(
        {"pick_index": [0, 1, 2], "event_id": ["a", "a", "b"], "phase": ["P", "S", "P"],
         "residual_s": [0.05, -0.1, 0.2], "score": [0.95, 0.85, 0.75]}
    )
    return events, assignments, picks


@pytest.mark.parametrize("suffix", [".csv", ".xml"])
def test_write_and_read_back(tmp_path, suffix):
    events, assignments, picks = associated_tables()
    path = tmp_path / f"cat{suffix}"
    written = write_catalog(events, assignments, picks, path)
    assert written[0] == path and not list(tmp_path.glob(".*tmp*"))
    ev, asg, pk = read_associations(path)
    assert ev["event_id"].tolist() == ["a", "b"]
    assert (ev["time"] - events["time"]).abs().max() < pd.Timedelta("1us")
    assert ev["depth_km"].tolist() == [5.0, 7.5]
    assert ev["magnitude"].iloc[0] == 2.0 and np.isnan(ev["magnitude"].iloc[1])
    assert ev["score"].tolist() == pytest.approx([0.9, 0.8])
    assert ev["rms_s"].tolist() == pytest.approx([0.12, 0.3])
    assert ev["horizontal_uncertainty_km"].tolist() == pytest.approx([2.0, 0.8])
    assert ev["min_horizontal_uncertainty_km"].iloc[0] == pytest.approx(0.5)
    assert ev["azimuth_max_horizontal_uncertainty_deg"].iloc[0] == pytest.approx(60.0)
    assert ev[["min_horizontal_uncertainty_km", "azimuth_max_horizontal_uncertainty_deg"]].iloc[1].isna().all()
    merged = asg.assign(station_id=pk["station_id"].to_numpy()[asg["pick_index"]],
                        pick_time=pk["time"].to_numpy()[asg["pick_index"]])
    assert merged["station_id"].tolist() == ["CI.AAA..HH", "CI.BBB..HH", "CI.AAA..HH"]
    assert merged["residual_s"].tolist() == pytest.approx([0.05, -0.1, 0.2])
    assert merged["score"].tolist() == pytest.approx([0.95, 0.85, 0.75])
    assert pk["score"].tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert pk["amplitude"].iloc[0] == pytest.approx(1e-5) and np.isnan(pk["amplitude"].iloc[1])


def test_quakeml_is_standard(tmp_path):
    events, assignments, picks = associated_tables()
    path = tmp_path / "cat.xml"
    write_catalog(events, assignments, picks, path)
    cat = obspy.read_events(str(path))
    assert len(cat) == 2
    ev = cat[0]
    origin = ev.preferred_origin()
    assert origin.depth == 5000.0 and ev.preferred_magnitude().mag == 2.0
    assert [a.phase for a in origin.arrivals] == ["P", "S"]
    assert [a.time_residual for a in origin.arrivals] == pytest.approx([0.05, -0.1])
    pick = ev.picks[0]
    assert pick.waveform_id.get_seed_string() == "CI.AAA..HH" and pick.phase_hint == "P"
    assert origin.arrivals[0].pick_id.get_referred_object() is pick
    ellipse = origin.origin_uncertainty
    assert (ellipse.preferred_description, ellipse.max_horizontal_uncertainty, ellipse.min_horizontal_uncertainty,
            ellipse.azimuth_max_horizontal_uncertainty) == ("uncertainty ellipse", 2000.0, 500.0, 60.0)
    assert ellipse.confidence_level == pytest.approx(100 * (1 - np.exp(-0.5)), abs=0.01)
    circle = cat[1].preferred_origin().origin_uncertainty
    assert (circle.preferred_description, circle.horizontal_uncertainty) == ("horizontal uncertainty", 800.0)


def test_write_rejects_bad_assignments(tmp_path):
    events, assignments, picks = associated_tables()
    assignments.loc[0, "pick_index"] = 99
    with pytest.raises(InputError, match="pick_index outside"):
        write_catalog(events, assignments, picks, tmp_path / "c.csv")
    with pytest.raises(InputError, match="lack column"):
        write_catalog(events.drop(columns="depth_km"), None, None, tmp_path / "c.csv")
