"""A local Cartesian frame centred on the network: ``x_km`` east, ``y_km`` north, depth km down.

Uses PROJ's azimuthal equidistant projection (via pyproj) about the network centre, so distances
from the centre are exact and inter-station distances are accurate to well under 0.1% over a
few hundred km.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from pyproj import Geod, Transformer

_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class LocalProjection:
    """Forward and inverse mapping between (latitude, longitude) in degrees and (x, y) in km."""

    latitude0: float
    longitude0: float

    @classmethod
    def from_stations(cls, stations: pd.DataFrame) -> "LocalProjection":
        """Centre on the middle of the stations' bounding box (robust to uneven station density)."""
        lat = stations["latitude"].to_numpy(dtype="float64")
        lon = stations["longitude"].to_numpy(dtype="float64")
        return cls(float((lat.min() + lat.max()) / 2), float((lon.min() + lon.max()) / 2))

    @cached_property
    def _forward(self) -> Transformer:
        crs = f"+proj=aeqd +lat_0={self.latitude0} +lon_0={self.longitude0} +datum=WGS84 +units=km"
        return Transformer.from_crs("EPSG:4326", crs, always_xy=True)

    def to_xy(self, latitude, longitude) -> tuple[np.ndarray, np.ndarray]:
        """Degrees -> km east and north of the centre; arrays of any matching shape."""
        x, y = self._forward.transform(np.asarray(longitude, dtype="float64"), np.asarray(latitude, dtype="float64"))
        return np.asarray(x), np.asarray(y)

    def to_latlon(self, x_km, y_km) -> tuple[np.ndarray, np.ndarray]:
        """km east and north of the centre -> (latitude, longitude) in degrees."""
        lon, lat = self._forward.transform(
            np.asarray(x_km, dtype="float64"), np.asarray(y_km, dtype="float64"), direction="INVERSE"
        )
        return np.asarray(lat), np.asarray(lon)

    def add_xy(self, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``df`` with ``x_km`` and ``y_km`` columns from its latitude and longitude."""
        out = df.copy()
        out["x_km"], out["y_km"] = self.to_xy(df["latitude"], df["longitude"])
        return out


def _geodesic(lat1, lon1, lat2, lon2) -> tuple[np.ndarray, np.ndarray]:
    """``(azimuth rad, distance km)`` from point 1 to point 2 along the WGS84 geodesic,
    element-wise over broadcastable arrays (the azimuth it leaves point 1 at)."""
    lat1, lon1, lat2, lon2 = np.broadcast_arrays(
        *(np.asarray(a, dtype="float64") for a in (lat1, lon1, lat2, lon2))
    )
    if lat1.size == 0:
        return np.zeros(lat1.shape), np.zeros(lat1.shape)
    azimuth, _, dist_m = _GEOD.inv(lon1.ravel(), lat1.ravel(), lon2.ravel(), lat2.ravel())
    return np.radians(np.asarray(azimuth)).reshape(lat1.shape), np.asarray(dist_m).reshape(lat1.shape) / 1000.0


def epicentral_distance_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Geodesic distance on the WGS84 ellipsoid in km, element-wise over broadcastable arrays."""
    return _geodesic(lat1, lon1, lat2, lon2)[1]


def epicentral_offset_km(lat1, lon1, lat2, lon2) -> tuple[np.ndarray, np.ndarray]:
    """``(east, north)`` km of point 2 from point 1 along the WGS84 geodesic (its length and
    the azimuth it leaves point 1 at), element-wise over broadcastable arrays."""
    azimuth, distance = _geodesic(lat1, lon1, lat2, lon2)
    return distance * np.sin(azimuth), distance * np.cos(azimuth)
