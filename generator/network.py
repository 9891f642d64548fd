"""A station network in the local frame, with the Cholesky factors of its noise covariances."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from catalogs.projection import LocalProjection

# Added to the covariance diagonal so that the Cholesky factorisation succeeds for stations that
# are close compared with the correlation length (the matrix is then nearly singular).
COVARIANCE_JITTER = 1e-6


@dataclass
class Network:
    """Stations (contract columns) with their local coordinates.

    ``xyz [M, 3]`` is ``(x_km, y_km, z_km)`` with ``z_km = -elevation_m / 1000`` (positive down,
    like source depths).
    """

    stations: pd.DataFrame
    projection: LocalProjection
    xyz: np.ndarray = field(init=False)
    _cholesky: dict = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self):
        x, y = self.projection.to_xy(self.stations["latitude"], self.stations["longitude"])
        z = -self.stations["elevation_m"].to_numpy(dtype="float64") / 1000.0
        self.xyz = np.column_stack([x, y, z])

    @classmethod
    def from_stations(cls, stations: pd.DataFrame, projection: LocalProjection | None = None) -> "Network":
        stations = stations.reset_index(drop=True)
        return cls(stations, projection or LocalProjection.from_stations(stations))

    @property
    def ids(self) -> np.ndarray:
        return self.stations["station_id"].to_numpy()

    def __len__(self) -> int:
        return len(self.stations)

    def distances_km(self) -> np.ndarray:
        """Horizontal inter-station distances ``[M, M]`` (km)."""
        d = self.xyz[:, None, :2] - self.xyz[None, :, :2]
        return np.sqrt((d**2).sum(-1))

    def epicentral_km(self, points) -> np.ndarray:
        """Horizontal distances ``[N, M]`` (km) from ``points [N, >=2]`` (x, y km) to the stations."""
        points = np.asarray(points, dtype="float64")
        return np.hypot(points[:, None, 0] - self.xyz[None, :, 0], points[:, None, 1] - self.xyz[None, :, 1])

    def covariance(self, length_km: float) -> np.ndarray:
        """``C_ij = exp(-d_ij^2 / length^2)`` plus a small diagonal jitter, ``[M, M]``."""
        return np.exp(-((self.distances_km() / length_km) ** 2)) + COVARIANCE_JITTER * np.eye(len(self))

    def cholesky(self, length_km: float) -> np.ndarray:
        """Lower Cholesky factor ``L`` of :meth:`covariance` (computed once per length)."""
        key = float(length_km)
        if key not in self._cholesky:
            self._cholesky[key] = np.linalg.cholesky(self.covariance(key))
        return self._cholesky[key]

    def region(self, padding_km: float) -> tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)`` of the station bounding box padded by ``padding_km``."""
        x, y = self.xyz[:, 0], self.xyz[:, 1]
        return (x.min() - padding_km, x.max() + padding_km, y.min() - padding_km, y.max() + padding_km)
