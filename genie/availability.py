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


def station_activity(station: np.ndarray, time_s: np.ndarray, n_stations: int, query_s: np.ndarray,
                     gap_s: float, start_s: np.ndarray | None = None, end_s: np.ndarray | None = None) -> np.ndarray:
    """``[T, S]`` bool: station active at each query time ``query_s [T]`` (s) given its picks
    (``station [n]`` index, ``time_s [n]`` s) and operating dates ``start_s, end_s [S]``."""
    query = np.asarray(query_s, dtype="float64")
    station = np.asarray(station, dtype=np.int64)
    time_s = np.asarray(time_s, dtype="float64")
    active = np.zeros((len(query), n_stations), dtype=bool)
    if len(time_s):
        # One sorted key array: each station's picks occupy their own stretch of the axis.
        lo = min(time_s.min(), query.min() if len(query) else 0.0)
        span = max(time_s.max(), query.max() if len(query) else 0.0) - lo + 4 * gap_s + 1.0
        keys = np.sort(station * span + (time_s - lo))
        owner = np.floor(keys / span).astype(np.int64)
        target = np.arange(n_stations)[None, :] * span + (query[:, None] - lo)
        pos = np.searchsorted(keys, target)
        for side in (pos - 1, pos):
            k = np.clip(side, 0, len(keys) - 1)
            near = (owner[k] == np.arange(n_stations)[None, :]) & (np.abs(keys[k] - target) <= gap_s)
            active |= near
    if start_s is not None:
        active &= query[:, None] >= np.asarray(start_s)[None, :]
    if end_s is not None:
        active &= query[:, None] <= np.asarray(end_s)[None, :]
    return active
