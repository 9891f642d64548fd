"""Reading station lists: CSV/TSV with varied column names, plain text, StationXML, Inventory."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from catalogs.fileio import first_line, read_table
from catalogs.schema import (
    STATION_ALIASES,
    STATION_COLUMNS,
    InputError,
    Source,
    check_coordinates,
    fail_at,
    require_rows,
    resolve_columns,
    to_numeric,
)

logger = logging.getLogger(__name__)


def read_stations(source) -> pd.DataFrame:
    """Read stations into the contract's columns ``station_id, latitude, longitude, elevation_m``.

    ``source`` may be:

    * a CSV or TSV file whose columns use any accepted spelling (``station/id/sta``,
      ``lat/latitude``, ``lng/lon/longitude``, ``elv(m)/elevation`` ...), such as GaMMA's
      ``stations.csv``; other columns are kept;
    * a header-less text file ``name lat lon elevation_m`` (comma, tab or blank separated);
    * a StationXML file, or an ObsPy :class:`~obspy.core.inventory.Inventory`, giving one row per
      station with id ``NET.STA``;
    * a DataFrame with accepted column spellings.

    A missing elevation is taken as 0 m, with a warning. Duplicate ids or NaN coordinates raise
    :class:`InputError` naming the row.
    """
    from obspy.core.inventory import Inventory

    if isinstance(source, Inventory):
        return _from_inventory(source, Source("Inventory"))
    if isinstance(source, pd.DataFrame):
        return _normalise(source.reset_index(drop=True), Source("stations DataFrame"))
    path = Path(os.fspath(source))
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if path.suffix.lower() == ".xml" or first_line(path).lstrip().startswith("<"):
        from obspy import read_inventory

        try:
            inventory = read_inventory(str(path))
        except Exception as exc:  # ObsPy raises many types for malformed XML
            raise InputError(f"{path}: cannot be read as StationXML ({exc})") from None
        return _from_inventory(inventory, Source(str(path)))
    df, src = read_table(path)
    if _looks_headerless(df):
        df, src = read_table(path, header=False)
        if df.shape[1] < 3:
            raise InputError(f"{path}: a header-less station file needs columns name, lat, lon[, elevation_m]")
        df = df.iloc[:, :4]
        df.columns = STATION_COLUMNS[: df.shape[1]]
    return _normalise(df, src)


def _looks_headerless(df: pd.DataFrame) -> bool:
    """True when what was read as the header is itself a data row (name, lat, lon, ...)."""
    names = list(df.columns)
    if len(names) < 3:
        return False
    try:
        [float(v) for v in names[1:3]]
    except ValueError:
        return False
    return True


def _normalise(df: pd.DataFrame, src: Source) -> pd.DataFrame:
    require_rows(df, src, "stations")
    cols = resolve_columns(df, STATION_ALIASES, ["station_id", "latitude", "longitude"], src)
    out = pd.DataFrame({"station_id": df[cols["station_id"][0]].astype(str).str.strip()})
    for name in ("latitude", "longitude"):
        column, _ = cols[name]
        out[name] = to_numeric(df[column], src, column)
    if "elevation_m" in cols:
        column, factor = cols["elevation_m"]
        out["elevation_m"] = to_numeric(df[column], src, column) * factor
        if out["elevation_m"].isna().any():
            logger.warning("%s: %d station(s) have no elevation; using 0 m", src.name, out["elevation_m"].isna().sum())
            out["elevation_m"] = out["elevation_m"].fillna(0.0)
    else:
        logger.warning("%s: no elevation column; using elevation_m = 0 for all stations", src.name)
        out["elevation_m"] = 0.0
    check_coordinates(out, ["latitude", "longitude"], src)
    fail_at(out["station_id"].duplicated(), src, lambda pos: f"duplicate station id {out['station_id'].iloc[pos]!r}")
    used = {c for c, _ in cols.values()}
    extras = [c for c in df.columns if c not in used and c not in out.columns]
    return pd.concat([out, df[extras].reset_index(drop=True)], axis=1)


def _from_inventory(inventory, src: Source) -> pd.DataFrame:
    rows = [
        (f"{net.code}.{sta.code}", sta.latitude, sta.longitude, sta.elevation)
        for net in inventory
        for sta in net
    ]
    df = pd.DataFrame(rows, columns=STATION_COLUMNS).drop_duplicates("station_id")
    return _normalise(df.reset_index(drop=True), src)
