import logging

import pandas as pd
import pytest

from catalogs.schema import EmptyInputError, InputError
from catalogs.stations import read_stations


def test_csv_with_variant_names(tmp_path):
    path = tmp_path / "st.csv"
    path.write_text("id,lat,lng,elv(m),extra\nCI.AAA,33.0,-115.5,-54,x\nCI.BBB,33.1,-115.6,10,y\n")
    st = read_stations(path)
    assert st.columns[:4].tolist() == ["station_id", "latitude", "longitude", "elevation_m"]
    assert st["station_id"].tolist() == ["CI.AAA", "CI.BBB"]
    assert st["elevation_m"].tolist() == [-54.0, 10.0]
    assert st["extra"].tolist() == ["x", "y"]


def test_tab_separated(tmp_path):
    path = tmp_path / "st.tsv"
    path.write_text("station\tlatitude\tlongitude\televation\nAAA\t33.0\t-115.5\t100\n")
    assert read_stations(path)["elevation_m"].iloc[0] == 100.0


def test_plain_headerless_text(tmp_path):
    path = tmp_path / "st.txt"
    path.write_text("AAA 33.0 -115.5 12.5\nBBB 33.2 -115.4 -3\n")
    st = read_stations(path)
    assert st["station_id"].tolist() == ["AAA", "BBB"]
    assert st["latitude"].tolist() == [33.0, 33.2]
    assert st["elevation_m"].tolist() == [12.5, -3.0]


def test_missing_elevation_warns_and_uses_zero(tmp_path, caplog):
    path = tmp_path / "st.csv"
    path.write_text("station,lat,lon\nAAA,33,-115\n")
    with caplog.at_level(logging.WARNING):
        st = read_stations(path)
    assert st["elevation_m"].tolist() == [0.0]
    assert "elevation_m = 0" in caplog.text


def test_stationxml_and_inventory(tmp_path):
    from obspy.core.inventory import Inventory, Network, Station

    inv = Inventory(
        networks=[
            Network("CI", stations=[Station("AAA", 33.0, -115.5, 12.0), Station("BBB", 33.5, -115.0, 3.0)])
        ],
        source="test",
    )
    path = tmp_path / "inv.xml"
    inv.write(str(path), format="STATIONXML")
    for source in (inv, path):
        st = read_stations(source)
        assert st["station_id"].tolist() == ["CI.AAA", "CI.BBB"]
        assert st["elevation_m"].tolist() == [12.0, 3.0]


def test_missing_columns_named(tmp_path):
    path = tmp_path / "st.csv"
    path.write_text("name,northing,easting\nAAA,1,2\n")
    with pytest.raises(InputError) as err:
        read_stations(path)
    msg = str(err.value)
    assert "st.csv" in msg and "latitude" in msg and "longitude" in msg and "northing" in msg


def test_nan_coordinate_names_line(tmp_path):
    path = tmp_path / "st.csv"
    path.write_text("station,lat,lon\nAAA,33,-115\nBBB,,-115\n")
    with pytest.raises(InputError, match=r"st.csv, line 3: column 'latitude'"):
        read_stations(path)


def test_bad_number_names_line(tmp_path):
    path = tmp_path / "st.csv"
    path.write_text("station,lat,lon\nAAA,33,-115\nBBB,north,-115\n")
    with pytest.raises(InputError, match=r"line 3: column 'lat' has invalid value 'north'"):
        read_stations(path)


def test_duplicate_and_empty(tmp_path):
    path = tmp_path / "st.csv"
    path.write_text("station,lat,lon\nAAA,33,-115\nAAA,34,-115\n")
    with pytest.raises(InputError, match="duplicate station id 'AAA'"):
        read_stations(path)
    path.write_text("station,lat,lon\n")
    with pytest.raises(EmptyInputError):
        read_stations(path)
    with pytest.raises(InputError, match="file not found"):
        read_stations(tmp_path / "nope.csv")


def test_dataframe_input():
    st = read_stations(pd.DataFrame({"sta": ["X"], "latitude": [1.0], "longitude": [2.0], "elevation": [3.0]}))
    assert st.iloc[0].tolist()[:4] == ["X", 1.0, 2.0, 3.0]
