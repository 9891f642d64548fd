import numpy as np
import pandas as pd
import pytest

from catalogs.projection import LocalProjection, epicentral_distance_km


def test_round_trip_and_centre():
    proj = LocalProjection(33.0, -115.5)
    lat = np.array([33.0, 33.5, 32.7])
    lon = np.array([-115.5, -115.9, -115.1])
    x, y = proj.to_xy(lat, lon)
    assert (x[0], y[0]) == pytest.approx((0.0, 0.0), abs=1e-9)
    assert x[1] < 0 < y[1] and x[2] > 0 > y[2]
    lat2, lon2 = proj.to_latlon(x, y)
    assert lat2 == pytest.approx(lat, abs=1e-9) and lon2 == pytest.approx(lon, abs=1e-9)


def test_distances_match_geodesic():
    proj = LocalProjection(33.0, -115.5)
    x, y = proj.to_xy([33.0, 33.9], [-115.5, -115.5])
    d_geod = epicentral_distance_km(33.0, -115.5, 33.9, -115.5)
    assert np.hypot(x[1], y[1]) == pytest.approx(d_geod, rel=1e-6)  # exact from the centre
    assert d_geod == pytest.approx(99.8, abs=0.3)  # 0.9 deg of latitude


def test_from_stations_and_add_xy():
    stations = pd.DataFrame({"station_id": ["A", "B"], "latitude": [32.0, 34.0], "longitude": [-116.0, -115.0]})
    proj = LocalProjection.from_stations(stations)
    assert (proj.latitude0, proj.longitude0) == (33.0, -115.5)
    out = proj.add_xy(stations)
    assert "x_km" not in stations and out["x_km"].iloc[0] < 0 < out["x_km"].iloc[1]
