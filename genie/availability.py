"""Which stations were recording when: station availability from the picks and the station file.

A real pick stream has outages (a station down, not yet installed, telemetry lost). A station
with no pick for a long stretch must count as *inactive* there, not as a live station that heard
nothing: the model is told by the station mask of its features, the candidates and the
association (inactive stations neither support nor count against a source).

Rule: station ``s`` is active at time ``t`` when it has a pick (any phase) within ``gap_s`` of
``t``, and ``t`` lies inside its operating dates when the station table gives them (columns
``start_time`` / ``end_time``, UTC; NaT or absent means open). A PhaseNet stream of a live
station holds noise picks every few minutes even without earthquakes (the Salton Sea stations
average one pick every 45 s), so a 30-minute default only marks real outages; quiet networks
with a strict picker want a longer gap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from catalogs.schema import seconds_since

START_COLUMNS = ("start_time", "starttime", "start_date")
END_COLUMNS = ("end_time", "endtime", "end_date")


def operating_dates(stations: pd.DataFrame, epoch: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (s from ``epoch``) of each station's operation, ``-inf`` / ``+inf`` where the
    station table gives none."""
    n = len(stations)
    bounds = []
    for names, fill in ((START_COLUMNS, -np.inf), (END_COLUMNS, np.inf)):
        column = next((c for c in names if c in stations.columns), None)
        values = np.full(n, fill)
        if column is not None:
            times = pd.to_datetime(stations[column], utc=True, errors="coerce")
            known = times.notna().to_numpy()
            if known.any():
                values[known] = seconds_since(times[known], epoch)
        bounds.append(values)
    return bounds[0], bounds[1]


class StationActivity:
    """Which stations are active when, for many queries on one set of picks: ``[T, S]`` bool for
    query times ``query_s [T]`` (s), given the picks (``station [n]`` index, ``time_s [n]`` s),
    the gap ``gap_s`` and the operating dates ``start_s, end_s [S]``.

    The picks' sorted keys are built once (each station's picks on their own stretch of one
    axis); a query costs one binary search per station. Detection asks for the active stations
    of every pass of windows, so sorting the picks per query cost more than the query itself."""

    def __init__(self, station: np.ndarray, time_s: np.ndarray, n_stations: int, gap_s: float,
                 start_s: np.ndarray | None = None, end_s: np.ndarray | None = None):
        station = np.asarray(station, dtype=np.int64)
        time_s = np.asarray(time_s, dtype="float64")
        self.n_stations, self.gap_s, self.start_s, self.end_s = n_stations, float(gap_s), start_s, end_s
        if len(time_s):
            # Queries are clipped to within gap_s + 1 s of the picks (farther, no pick is within
            # the gap either way), so stretches of span hold every clipped query of a station.
            self.lo, self.hi = float(time_s.min()) - self.gap_s - 1.0, float(time_s.max()) + self.gap_s + 1.0
            self.span = self.hi - self.lo + 2 * self.gap_s + 1.0
            self.keys = np.sort(station * self.span + (time_s - self.lo))
            self.owner = np.floor(self.keys / self.span).astype(np.int64)
        else:
            self.keys = None

    def __call__(self, query_s: np.ndarray) -> np.ndarray:
        query = np.asarray(query_s, dtype="float64")
        column = np.arange(self.n_stations)[None, :]
        active = np.zeros((len(query), self.n_stations), dtype=bool)
        if self.keys is not None:
            target = column * self.span + (np.clip(query, self.lo, self.hi)[:, None] - self.lo)
            pos = np.searchsorted(self.keys, target)
            for side in (pos - 1, pos):
                k = np.clip(side, 0, len(self.keys) - 1)
                active |= (self.owner[k] == column) & (np.abs(self.keys[k] - target) <= self.gap_s)
        if self.start_s is not None:
            active &= query[:, None] >= np.asarray(self.start_s)[None, :]
        if self.end_s is not None:
            active &= query[:, None] <= np.asarray(self.end_s)[None, :]
        return active
