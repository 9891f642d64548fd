"""The data contract: column names, units and dtypes of stations, picks, events, assignments.

Every table that crosses a package boundary is a :class:`pandas.DataFrame` with these columns
(times are ``datetime64[ns, UTC]``, distances and depths km, depth positive down):

========== ==================================================================================
table      columns
========== ==================================================================================
stations   ``station_id`` (str), ``latitude``, ``longitude`` (deg), ``elevation_m`` (m, up)
picks      ``station_id`` (str), ``time`` (UTC), ``phase`` (``P``/``S``), ``score`` (0-1),
           ``amplitude`` (m/s, may be NaN)
events     ``event_id`` (str), ``time`` (UTC), ``latitude``, ``longitude`` (deg),
           ``depth_km`` (km, down), ``magnitude`` (may be NaN); optional ``x_km``, ``y_km``,
           ``n_p``, ``n_s``, ``score``, ``rms_s``, ``magnitude_type``,
           ``horizontal_uncertainty_km`` (1-sigma, the error ellipse's semi-major axis),
           ``min_horizontal_uncertainty_km`` (its semi-minor axis),
           ``azimuth_max_horizontal_uncertainty_deg`` (of the semi-major axis, clockwise from
           north, 0-180), ``depth_uncertainty_km``, ``time_uncertainty_s``,
           ``magnitude_uncertainty``
assignments ``pick_index`` (row of the picks table), ``event_id``, ``phase``,
           ``residual_s`` (observed minus predicted, s), ``score`` (association score)
========== ==================================================================================

Readers map the many column spellings found in the wild onto these names with the alias tables
below; anything that cannot be mapped raises :class:`InputError` naming the file, the row and the
column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

STATION_COLUMNS = ["station_id", "latitude", "longitude", "elevation_m"]
PICK_COLUMNS = ["station_id", "time", "phase", "score", "amplitude"]
EVENT_COLUMNS = ["event_id", "time", "latitude", "longitude", "depth_km", "magnitude"]
OPTIONAL_EVENT_COLUMNS = [
    "x_km",
    "y_km",
    "n_p",
    "n_s",
    "score",
    "rms_s",
    "magnitude_type",
    "horizontal_uncertainty_km",
    "min_horizontal_uncertainty_km",
    "azimuth_max_horizontal_uncertainty_deg",
    "depth_uncertainty_km",
    "time_uncertainty_s",
    "magnitude_uncertainty",
]
ASSIGNMENT_COLUMNS = ["pick_index", "event_id", "phase", "residual_s", "score"]

# Each canonical column lists the spellings accepted for it, in priority order, with the factor
# converting that spelling's unit to the canonical unit (None: not numeric).
Aliases = dict[str, list[tuple[str, float | None]]]

STATION_ALIASES: Aliases = {
    "station_id": [(a, None) for a in ("station_id", "station", "id", "sta", "name", "code", "seedid")],
    "latitude": [("latitude", 1.0), ("lat", 1.0)],
    "longitude": [("longitude", 1.0), ("lon", 1.0), ("lng", 1.0), ("long", 1.0)],
    "elevation_m": [
        ("elevation_m", 1.0),
        ("elevation", 1.0),
        ("elv(m)", 1.0),
        ("elevation(m)", 1.0),
        ("elev_m", 1.0),
        ("elev", 1.0),
        ("altitude", 1.0),
        ("elevation_km", 1000.0),
        ("elv(km)", 1000.0),
        # GaMMA's station z(km) is positive down.
        ("z(km)", -1000.0),
    ],
}

PICK_ALIASES: Aliases = {
    "station_id": [(a, None) for a in ("station_id", "trace_id", "station", "id", "seedid", "sta")],
    "time": [(a, None) for a in ("time", "phase_time", "peak_time", "timestamp", "arrival_time", "pick_time")],
    "phase": [(a, None) for a in ("phase", "phase_type", "type", "phase_hint", "iphase")],
    "score": [
        (a, 1.0) for a in ("score", "phase_score", "peak_value", "prob", "probability", "phase_prob")
    ],
    "amplitude": [(a, 1.0) for a in ("amplitude", "phase_amplitude", "amp", "phase_amp")],
}

EVENT_ALIASES: Aliases = {
    "event_id": [(a, None) for a in ("event_id", "id", "eventid", "evid", "event_index", "idx")],
    "time": [(a, None) for a in ("time", "origin_time", "otime", "datetime")],
    "latitude": [("latitude", 1.0), ("lat", 1.0)],
    "longitude": [("longitude", 1.0), ("lon", 1.0), ("lng", 1.0), ("long", 1.0)],
    "depth_km": [
        ("depth_km", 1.0),
        ("depth", 1.0),
        ("depth(km)", 1.0),
        ("z(km)", 1.0),
        ("depth(m)", 0.001),
        ("depth_m", 0.001),
    ],
    "magnitude": [("magnitude", 1.0), ("mag", 1.0), ("ml", 1.0)],
    "x_km": [("x_km", 1.0), ("x(km)", 1.0)],
    "y_km": [("y_km", 1.0), ("y(km)", 1.0)],
    "n_p": [("n_p", 1.0)],
    "n_s": [("n_s", 1.0)],
    "score": [("score", 1.0), ("gamma_score", 1.0)],
    "rms_s": [("rms_s", 1.0), ("rms", 1.0)],
    "magnitude_type": [("magnitude_type", None), ("magtype", None)],
    "horizontal_uncertainty_km": [("horizontal_uncertainty_km", 1.0), ("horizontalerror", 1.0)],
    "min_horizontal_uncertainty_km": [("min_horizontal_uncertainty_km", 1.0)],
    "azimuth_max_horizontal_uncertainty_deg": [("azimuth_max_horizontal_uncertainty_deg", 1.0)],
    "depth_uncertainty_km": [("depth_uncertainty_km", 1.0), ("deptherror", 1.0)],
    "time_uncertainty_s": [("time_uncertainty_s", 1.0), ("timeerror", 1.0)],
    "magnitude_uncertainty": [("magnitude_uncertainty", 1.0), ("magerror", 1.0)],
}


class InputError(ValueError):
    """Input a user gave cannot be used; the message names the file, row and column."""


class EmptyInputError(InputError):
    """An input holds no rows."""


@dataclass(frozen=True)
class Source:
    """Where a table came from, to word errors: a file name and the file line of row 0.

    ``first_line`` is ``None`` for in-memory tables, which are then reported by row number.
    """

    name: str
    first_line: int | None = None

    def row(self, position: int) -> str:
        if self.first_line is None:
            return f"row {position}"
        return f"line {position + self.first_line}"


TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_times(times: pd.Series) -> pd.Series:
    """ISO 8601 UTC strings with microseconds and a ``Z`` (what our CSV files hold)."""
    return times.dt.strftime(TIME_FORMAT)


def fail_at(bad, source: Source, message) -> None:
    """Raise :class:`InputError` at the first True of ``bad`` (a boolean mask over rows).

    ``message(pos)`` words the problem at row position ``pos``; the file line and the number of
    such rows are added.
    """
    bad = np.asarray(bad, dtype=bool)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise InputError(f"{source.name}, {source.row(pos)}: {message(pos)} ({int(bad.sum())} such row(s))")


def resolve_columns(df: pd.DataFrame, aliases: Aliases, required: list[str], source: Source) -> dict:
    """Map canonical column names to ``(actual column, unit factor)`` found in ``df``.

    Matching is case- and whitespace-insensitive. Raises :class:`InputError` naming the missing
    canonical columns, the spellings accepted for them and the columns found.
    """
    lookup = {str(c).strip().lower().replace(" ", ""): c for c in df.columns}
    found = {}
    for canonical, spellings in aliases.items():
        for spelling, factor in spellings:
            if spelling in lookup:
                found[canonical] = (lookup[spelling], factor)
                break
    missing = [c for c in required if c not in found]
    if missing:
        accepted = "; ".join(f"{c}: {'/'.join(s for s, _ in aliases[c])}" for c in missing)
        raise InputError(
            f"{source.name}: missing column(s) {missing} (accepted spellings: {accepted}); "
            f"columns found: {[str(c) for c in df.columns]}"
        )
    return found


def to_numeric(values: pd.Series, source: Source, column: str, allow_nan: bool = True) -> pd.Series:
    """Parse a column as float64; an unparseable (or, if not ``allow_nan``, missing) value
    raises :class:`InputError` naming the row."""
    out = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = out.isna() & values.notna() & (values.astype(str).str.strip().str.lower() != "nan")
    if not allow_nan:
        bad |= out.isna()
    fail_at(bad, source, lambda pos: f"column '{column}' has invalid value {values.iloc[pos]!r}")
    return out


def parse_times(values: pd.Series, source: Source, column: str) -> pd.Series:
    """Parse times to ``datetime64[ns, UTC]``.

    Accepts ISO 8601 strings (naive ones are taken as UTC), datetimes, ObsPy ``UTCDateTime`` and
    numbers, which are read as POSIX seconds (PyOcto's convention). An unparseable value raises
    :class:`InputError` naming the row.
    """
    values = values.reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        seconds = values.astype("float64")
        whole = np.floor(seconds)
        nanos = np.round((seconds - whole) * 1e9)
        times = pd.to_datetime(whole, unit="s", utc=True).dt.as_unit("ns") + pd.to_timedelta(nanos, unit="ns")
    elif pd.api.types.is_datetime64_any_dtype(values):
        times = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    else:
        text = values.map(lambda v: v if v is None or isinstance(v, str) else str(v))
        times = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    fail_at(times.isna(), source, lambda pos: f"column '{column}' has unparseable time {values.iloc[pos]!r}")
    return times.dt.as_unit("ns")


def seconds_since(times: pd.Series | pd.DatetimeIndex, epoch: pd.Timestamp | str) -> np.ndarray:
    """Float seconds of ``times`` after ``epoch``, shape ``[n]``.

    Goes through timedeltas, which is exact whatever the datetime unit (pandas 3 stores
    microseconds by default, so dividing the int64 view by 1e9 would be wrong).
    """
    epoch = pd.Timestamp(epoch)
    if epoch.tzinfo is None:
        epoch = epoch.tz_localize("UTC")
    delta = pd.Series(times) - epoch
    return delta.dt.total_seconds().to_numpy(dtype="float64")


def require_rows(df: pd.DataFrame, source: Source, what: str) -> None:
    if len(df) == 0:
        raise EmptyInputError(f"{source.name}: no {what} found (the input is empty)")


def check_coordinates(df: pd.DataFrame, columns: list[str], source: Source) -> None:
    """Raise :class:`InputError` for the first NaN or out-of-range coordinate."""
    limits = {"latitude": 90.0, "longitude": 360.0}
    for column in columns:
        values = df[column].to_numpy(dtype="float64")
        bad = ~np.isfinite(values)
        if column in limits:
            bad |= np.abs(np.nan_to_num(values)) > limits[column]
        fail_at(bad, source, lambda pos: f"column '{column}' is missing or out of range ({values[pos]!r})")


def normalise_phase(values: pd.Series, source: Source, column: str) -> pd.Series:
    """Map phase labels to ``P``/``S`` by their first letter (``Pg``, ``Sn``, ``p`` ...)."""
    first = values.astype(str).str.strip().str[:1].str.upper()
    fail_at(~first.isin(["P", "S"]), source,
            lambda pos: f"column '{column}' has phase {values.iloc[pos]!r}; expected P or S")
    return first
