"""Reading and writing earthquake catalogs: CSV (ComCat, SCSN, GaMMA, ours), hypoDD ``.pha``, QuakeML.

Our CSV output is two files: the events (``<name>.csv``, contract columns) and, when there are
associations, ``<name>_assignments.csv``: one row per associated pick with the assignment columns
(``pick_index, event_id, phase, residual_s, score``) plus the pick itself (``station_id``,
``pick_time``, ``pick_score``, ``amplitude``), so the file stands alone.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from catalogs.fileio import atomic_path, first_line, read_table
from catalogs.schema import (
    ASSIGNMENT_COLUMNS,
    EVENT_ALIASES,
    EVENT_COLUMNS,
    OPTIONAL_EVENT_COLUMNS,
    InputError,
    Source,
    check_coordinates,
    fail_at,
    format_times,
    normalise_phase,
    parse_times,
    require_rows,
    resolve_columns,
    to_numeric,
)

logger = logging.getLogger(__name__)

QUAKEML_SUFFIXES = {".xml", ".qml", ".quakeml"}


def _format(path: Path, fmt: str | None) -> str:
    if fmt:
        fmt = fmt.lower()
        if fmt not in {"csv", "quakeml", "pha"}:
            raise InputError(f"{path}: unknown catalog format {fmt!r}; use csv, quakeml or pha")
        return fmt
    if path.suffix.lower() in QUAKEML_SUFFIXES:
        return "quakeml"
    if path.suffix.lower() == ".pha":
        return "pha"
    if path.is_file():
        line = first_line(path).lstrip()
        if line.startswith("<"):
            return "quakeml"
        if line.startswith("#"):
            return "pha"
    return "csv"


def read_catalog(path: str | os.PathLike, format: str | None = None) -> pd.DataFrame:
    """Read a catalog's events in the contract's columns (see :mod:`catalogs.schema`).

    Formats, detected from the suffix and first line unless ``format`` is given:

    * CSV/TSV with any accepted column spelling: USGS ComCat (``time, latitude, longitude,
      depth, mag, magType, id, horizontalError, depthError ...``), the SCSN table of the shared
      data (``time ... mag, lng, lat, depth(m)``), GaMMA output, and our own ``write_catalog``;
    * QuakeML (``quakeml``), via ObsPy; the preferred (else first) origin and magnitude;
    * hypoDD phase files (``pha``): ``#`` event lines.

    Events without an id get ``"0", "1", ...`` in file order. A missing magnitude column gives NaN
    magnitudes with a warning. Rows are sorted by time.
    """
    return read_associations(path, format)[0]


def read_associations(path: str | os.PathLike, format: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read a catalog with its associated picks: ``(events, assignments, picks)``.

    ``assignments.pick_index`` indexes rows of ``picks``. hypoDD ``.pha`` pick lines give picks
    at origin time + travel time, with the weight as ``score`` and NaN residuals; QuakeML gives its
    Picks and Arrivals; our CSV reads the ``_assignments.csv`` file beside it when present.
    Formats without associations return empty assignments and picks. A CSV catalog's assignments
    are ``<name>_assignments.csv`` beside it, or ``assignments.csv`` (``genie associate``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    fmt = _format(path, format)
    if fmt == "quakeml":
        from catalogs.quakeml import read_quakeml

        return read_quakeml(path)
    if fmt == "pha":
        return _read_pha(path)
    df, src = read_table(path)
    events = normalise_events(df, src)
    assignments_path = _existing_assignments(path)
    if assignments_path is not None:
        assignments, picks = _read_assignment_table(assignments_path)
    else:
        assignments, picks = empty_assignments(), empty_picks()
    return events, assignments, picks


def normalise_events(df: pd.DataFrame, src: Source) -> pd.DataFrame:
    """Map an event table with any accepted column spellings onto the contract, sorted by time."""
    require_rows(df, src, "events")
    cols = resolve_columns(df, EVENT_ALIASES, ["time", "latitude", "longitude", "depth_km"], src)
    out = pd.DataFrame(index=range(len(df)))
    if "event_id" in cols:
        out["event_id"] = df[cols["event_id"][0]].astype(str).str.strip().to_numpy()
    else:
        out["event_id"] = np.arange(len(df)).astype(str)
    out["time"] = parse_times(df[cols["time"][0]], src, cols["time"][0])
    for name in ("latitude", "longitude", "depth_km", "magnitude"):
        if name not in cols:
            logger.warning("%s: no magnitude column; magnitudes are NaN", src.name)
            out[name] = np.nan
            continue
        column, factor = cols[name]
        out[name] = to_numeric(df[column].reset_index(drop=True), src, column) * factor
    check_coordinates(out, ["latitude", "longitude", "depth_km"], src)
    for name in OPTIONAL_EVENT_COLUMNS:
        if name in cols:
            column, factor = cols[name]
            values = df[column].reset_index(drop=True)
            out[name] = values.astype(str) if factor is None else to_numeric(values, src, column) * factor
    fail_at(out["event_id"].duplicated(), src, lambda pos: f"duplicate event id {out['event_id'].iloc[pos]!r}")
    return out.sort_values("time", kind="stable").reset_index(drop=True)


def empty_assignments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pick_index": pd.Series(dtype="int64"),
            "event_id": pd.Series(dtype=str),
            "phase": pd.Series(dtype=str),
            "residual_s": pd.Series(dtype="float64"),
            "score": pd.Series(dtype="float64"),
        }
    )


def empty_picks() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "station_id": pd.Series(dtype=str),
            "time": pd.Series(dtype="datetime64[ns, UTC]"),
            "phase": pd.Series(dtype=str),
            "score": pd.Series(dtype="float64"),
            "amplitude": pd.Series(dtype="float64"),
        }
    )


def _assignments_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}_assignments{path.suffix}")


def _existing_assignments(path: Path) -> Path | None:
    """The assignments file of a CSV catalog: ``<name>_assignments.csv`` beside it, else the
    ``assignments.csv`` that ``genie associate`` writes beside ``events.csv``."""
    for candidate in (_assignments_path(path), path.with_name("assignments.csv")):
        if candidate.is_file() and candidate != path:
            return candidate
    return None


def _read_assignment_table(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    df, src = read_table(path)
    missing = [c for c in ("pick_index", "event_id", "phase", "station_id", "pick_time") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; columns found: {list(df.columns)}")
    pick_index = to_numeric(df["pick_index"], src, "pick_index", allow_nan=False).astype("int64")
    first = ~pick_index.duplicated()
    picks = pd.DataFrame(
        {
            "station_id": df["station_id"].astype(str),
            "time": parse_times(df["pick_time"], src, "pick_time"),
            "phase": normalise_phase(df["phase"], src, "phase"),
            "score": to_numeric(df["pick_score"], src, "pick_score") if "pick_score" in df else 1.0,
            "amplitude": to_numeric(df["amplitude"], src, "amplitude") if "amplitude" in df else np.nan,
        },
        index=pick_index.to_numpy(),
    )[first.to_numpy()].sort_index()
    # Re-number picks densely so that pick_index indexes rows of the returned picks table.
    position = pd.Series(np.arange(len(picks)), index=picks.index)
    assignments = pd.DataFrame(
        {
            "pick_index": position.loc[pick_index.to_numpy()].to_numpy(),
            "event_id": df["event_id"].astype(str).str.strip(),
            "phase": normalise_phase(df["phase"], src, "phase"),
            "residual_s": to_numeric(df["residual_s"], src, "residual_s") if "residual_s" in df else np.nan,
            "score": to_numeric(df["score"], src, "score") if "score" in df else np.nan,
        }
    )
    return assignments, picks.reset_index(drop=True)


def _read_pha(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """hypoDD phase file: ``# yr mo dy hr mn sc lat lon dep mag eh ez rms id`` then ``sta tt wght pha``."""
    lines = pd.Series(path.read_text().splitlines())
    line_no = pd.Series(np.arange(1, len(lines) + 1))
    keep = lines.str.strip() != ""
    lines, line_no = lines[keep].reset_index(drop=True), line_no[keep].reset_index(drop=True)
    is_event = lines.str.lstrip().str.startswith("#")
    if not is_event.any():
        raise InputError(f"{path}: no '#' event lines found; not a hypoDD phase file")
    if not is_event.iloc[0]:
        raise InputError(f"{path}, line {line_no.iloc[0]}: pick line before the first '#' event line")
    fields = lines[is_event].str.lstrip().str[1:].str.split()
    short = fields.str.len() < 10
    if short.any():
        pos = int(np.flatnonzero(short.to_numpy())[0])
        raise InputError(
            f"{path}, line {line_no[is_event].iloc[pos]}: event line needs at least "
            "'yr mo dy hr mn sc lat lon dep mag'"
        )
    ev = pd.DataFrame(fields.tolist()).reset_index(drop=True)
    ev_lines = line_no[is_event].to_numpy()
    ev_src = Source(str(path))

    def numbers(column: int, name: str) -> pd.Series:
        values = to_numeric(ev[column], ev_src, name)
        bad = values.isna()
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{path}, line {ev_lines[pos]}: field '{name}' is not a number")
        return values

    year, month, day, hour, minute = (numbers(i, n).astype("int64") for i, n in enumerate(["yr", "mo", "dy", "hr", "mn"]))
    seconds = numbers(5, "sc")
    try:
        base = pd.to_datetime(
            pd.DataFrame({"year": year, "month": month, "day": day, "hour": hour, "minute": minute}), utc=True
        )
    except ValueError as exc:
        raise InputError(f"{path}: invalid event date ({exc})") from None
    times = (base + pd.to_timedelta(np.round(seconds * 1e6), unit="us")).dt.as_unit("ns")
    n_fields = ev.shape[1]
    events = pd.DataFrame(
        {
            "event_id": ev[13].astype(str) if n_fields > 13 else np.arange(len(ev)).astype(str),
            "time": times,
            "latitude": numbers(6, "lat"),
            "longitude": numbers(7, "lon"),
            "depth_km": numbers(8, "dep"),
            "magnitude": numbers(9, "mag"),
        }
    )
    for column, name in ((10, "horizontal_uncertainty_km"), (11, "depth_uncertainty_km"), (12, "rms_s")):
        if n_fields > column:
            events[name] = to_numeric(ev[column], ev_src, name)
    check_coordinates(events, ["latitude", "longitude", "depth_km"], Source(str(path), first_line=None))
    ev_ids = events["event_id"].to_numpy()

    events = events.sort_values("time", kind="stable").reset_index(drop=True)
    pick_rows = ~is_event.to_numpy()
    if not pick_rows.any():
        return events, empty_assignments(), empty_picks()
    owner = (np.cumsum(is_event.to_numpy()) - 1)[pick_rows]
    pick_src = Source(str(path))
    pick_lines = line_no[pick_rows].to_numpy()
    pf = lines[pick_rows].str.split().reset_index(drop=True)
    short = pf.str.len() < 4
    if short.any():
        raise InputError(f"{path}, line {pick_lines[int(np.flatnonzero(short.to_numpy())[0])]}: pick line needs 'sta tt wght pha'")
    pt = pd.DataFrame(pf.str[:4].tolist(), columns=["sta", "tt", "wght", "pha"])
    tt = pd.to_numeric(pt["tt"], errors="coerce")
    if tt.isna().any():
        pos = int(np.flatnonzero(tt.isna().to_numpy())[0])
        raise InputError(f"{path}, line {pick_lines[pos]}: travel time {pt['tt'].iloc[pos]!r} is not a number")
    origin = pd.Series(times.to_numpy()[owner])
    picks = pd.DataFrame(
        {
            "station_id": pt["sta"],
            "time": (origin + pd.to_timedelta(np.round(tt.to_numpy() * 1e9), unit="ns")).dt.as_unit("ns"),
            "phase": normalise_phase(pt["pha"], pick_src, "pha"),
            "score": pd.to_numeric(pt["wght"], errors="coerce"),
            "amplitude": np.nan,
        }
    )
    assignments = pd.DataFrame(
        {
            "pick_index": np.arange(len(picks), dtype="int64"),
            "event_id": ev_ids[owner],
            "phase": picks["phase"].to_numpy(),
            "residual_s": np.nan,
            "score": picks["score"].to_numpy(),
        }
    )
    return events, assignments, picks


def write_catalog(
    events: pd.DataFrame,
    assignments: pd.DataFrame | None,
    picks: pd.DataFrame | None,
    path: str | os.PathLike,
    format: str | None = None,
    assignments_path: str | os.PathLike | None = None,
    pick_ids: np.ndarray | None = None,
) -> list[Path]:
    """Write a catalog atomically as ``csv`` or ``quakeml`` (default: from the suffix).

    CSV: the events file plus, when ``assignments`` is given (rows or not), ``assignments_path``
    (default ``<name>_assignments.csv``); ``pick_ids`` (one per row of ``picks``), when given, is written
    as ``pick_index`` instead of the row (a pick's row in a larger table than ``picks``).
    QuakeML: one ObsPy Event per row with Origin, Magnitude, Picks, Amplitudes and Arrivals
    (phase, ``time_residual``); reads back with :func:`obspy.read_events` and :func:`read_associations`.
    Returns the paths written.
    """
    path = Path(path)
    fmt = _format(path, format) if format or path.suffix.lower() in QUAKEML_SUFFIXES else "csv"
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise InputError(f"events to write lack column(s) {missing}; columns found: {list(events.columns)}")
    has_assignments = assignments is not None and len(assignments) > 0
    if has_assignments:
        if picks is None:
            raise InputError("assignments were given without the picks table they index")
        bad = (assignments["pick_index"] < 0) | (assignments["pick_index"] >= len(picks))
        if bad.any():
            raise InputError(
                f"assignments row {int(np.flatnonzero(bad.to_numpy())[0])}: pick_index outside the "
                f"picks table (0..{len(picks) - 1})"
            )
    if fmt == "quakeml":
        from catalogs.quakeml import to_obspy

        catalog = to_obspy(events, assignments if has_assignments else None, picks)
        with atomic_path(path) as tmp:
            catalog.write(str(tmp), format="QUAKEML")
        return [path]
    if fmt != "csv":
        raise InputError(f"{path}: cannot write format {fmt!r}; use csv or quakeml")
    table = events.copy()
    table["time"] = format_times(table["time"])
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    written = [path]
    if assignments is not None:
        # An empty assignments table is written too (header only): a run without events still
        # has its two files, and files of several runs concatenate alike.
        table = assignments.reindex(columns=ASSIGNMENT_COLUMNS).reset_index(drop=True)
        rows = table["pick_index"].to_numpy(dtype=np.int64)
        pick_rows = (picks.iloc[rows] if has_assignments else
                     pd.DataFrame({"station_id": [], "time": pd.to_datetime([], utc=True), "score": []})
                     ).reset_index(drop=True)
        if pick_ids is not None:
            table["pick_index"] = np.asarray(pick_ids, dtype=np.int64)[rows]
        table["station_id"] = pick_rows["station_id"].to_numpy()
        table["pick_time"] = format_times(pick_rows["time"]).to_numpy()
        table["pick_score"] = pick_rows["score"].to_numpy()
        table["amplitude"] = pick_rows["amplitude"].to_numpy() if "amplitude" in pick_rows else np.nan
        target = Path(assignments_path) if assignments_path is not None else _assignments_path(path)
        with atomic_path(target) as tmp:
            table.to_csv(tmp, index=False)
        written.append(target)
    return written


