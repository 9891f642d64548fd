"""Picks at scale: a Parquet dataset partitioned by UTC day, read lazily (optional: ``pyarrow``).

Layout of a dataset directory ``DIR``::

    DIR/dataset.json                          format, version, per-day pick counts, imported files
    DIR/stations.csv                          the station table (station contract)
    DIR/picks/day=YYYY-MM-DD/picks.parquet    that UTC day's picks

A partition holds the pick contract's columns ``station_id`` (string), ``time``
(``timestamp[us, UTC]``), ``phase`` (``P``/``S``), ``score`` and ``amplitude`` (float64), sorted
by time, station and phase, without exact duplicates (same station, time and phase). Importing more
files merges their picks into the partitions they touch (each partition rewritten atomically),
so a decade is imported file by file in bounded memory. :meth:`PickDataset.read` loads only the
partitions that overlap the requested span and checks every row it returns: a bad row is an
:class:`~catalogs.schema.InputError` naming the partition, the file and the row.

    from catalogs.pickstore import import_picks, PickDataset
    import_picks(["2020-10-01.csv", "2020-10-02.csv"], "stations.csv", "picks_ds")
    picks = PickDataset("picks_ds").read("2020-10-01T12:00", "2020-10-01T18:00")
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from catalogs.fileio import atomic_path, read_json_object, write_csv_atomic, write_text_atomic
from catalogs.picks import read_picks
from catalogs.schema import PICK_COLUMNS, InputError, Source, fail_at, normalise_phase, parse_times, to_numeric
from catalogs.stations import read_stations

logger = logging.getLogger(__name__)

FORMAT = "genie-picks"
VERSION = 1
DAY = pd.Timedelta(days=1)


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise InputError("Parquet pick datasets need pyarrow: pip install 'genie-associator[scale]'") from None
    return pyarrow


def is_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a pick dataset directory (holds ``dataset.json``)."""
    return (Path(path) / "dataset.json").is_file()


def _partition_path(root: Path, day: pd.Timestamp) -> Path:
    return root / "picks" / f"day={day.strftime('%Y-%m-%d')}" / "picks.parquet"


def utc(value) -> pd.Timestamp:
    """``value`` as a UTC timestamp (a naive time is taken as UTC)."""
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _table(picks: pd.DataFrame):
    """The contract columns of ``picks`` as an Arrow table of the partition schema."""
    pa = _pyarrow()
    schema = pa.schema([("station_id", pa.string()), ("time", pa.timestamp("us", tz="UTC")), ("phase", pa.string()),
                        ("score", pa.float64()), ("amplitude", pa.float64())])
    columns = {"station_id": picks["station_id"].astype(str).to_numpy(dtype=object),
               "time": pd.DatetimeIndex(picks["time"]).as_unit("us"),
               "phase": picks["phase"].astype(str).to_numpy(dtype=object),
               "score": picks["score"].to_numpy(dtype="float64"),
               "amplitude": picks["amplitude"].to_numpy(dtype="float64")}
    return pa.Table.from_pydict(columns, schema=schema)


def _tidy(picks: pd.DataFrame) -> pd.DataFrame:
    """Contract columns, sorted, exact duplicates (station, time, phase) dropped."""
    out = picks[PICK_COLUMNS].sort_values(["time", "station_id", "phase"], kind="stable")
    return out.drop_duplicates(["station_id", "time", "phase"], keep="first").reset_index(drop=True)


def import_picks(sources: Iterable, stations, directory: str | os.PathLike, sampling_rate: float = 100.0) -> dict:
    """Add the picks of ``sources`` (paths or DataFrames in any :func:`~catalogs.picks.read_picks`
    format) to the dataset in ``directory`` (created if missing) with the station table
    ``stations`` (any :func:`~catalogs.stations.read_stations` source; it replaces the dataset's).
    Each source is read whole, then its picks merged into their day partitions. Returns
    ``{"days": {day: picks}, "added": n, "duplicates": n}``."""
    root = Path(directory)
    station_table = read_stations(stations)
    manifest = read_json_object(root / "dataset.json", "pick dataset manifest") if is_dataset(root) else {
        "format": FORMAT, "version": VERSION, "days": {}, "imported": []}
    _check_manifest(manifest, root)
    added = duplicates = 0
    for source in sources:
        picks = _tidy(read_picks(source, sampling_rate=sampling_rate))
        day = pd.DatetimeIndex(picks["time"]).floor("D")
        for d in day.unique():
            new = picks[day == d]
            path = _partition_path(root, d)
            old = _read_partition(path, d.strftime("%Y-%m-%d")) if path.is_file() else new.iloc[:0]
            merged = _tidy(pd.concat([old, new], ignore_index=True))
            duplicates += len(old) + len(new) - len(merged)
            added += len(merged) - len(old)
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                _pyarrow().parquet.write_table(_table(merged), tmp)
            manifest["days"][d.strftime("%Y-%m-%d")] = len(merged)
        manifest["imported"].append(str(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__)
        manifest["days"] = dict(sorted(manifest["days"].items()))
        # The manifest after the partitions: a partition it lists is always complete.
        write_csv_atomic(station_table, root / "stations.csv")
        write_text_atomic(root / "dataset.json", json.dumps(manifest, indent=1) + "\n")
        logger.info("%s: %d picks on %d day(s) imported", source if isinstance(source, (str, os.PathLike)) else
                    "picks", len(picks), len(day.unique()))
    return {"days": dict(manifest["days"]), "added": added, "duplicates": duplicates}


def _check_manifest(manifest: dict, root: Path) -> None:
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise InputError(f"{root / 'dataset.json'}: not a {FORMAT} dataset of version {VERSION} "
                         f"(format {manifest.get('format')!r}, version {manifest.get('version')!r})")


def _read_partition(path: Path, day: str) -> pd.DataFrame:
    """The picks of one partition file, every row checked (errors name partition, file, row)."""
    pq = _pyarrow().parquet
    where = Source(f"pick dataset partition day={day} ({path})")
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{where.name}: cannot be read as Parquet ({exc})") from None
    missing = [c for c in PICK_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"{where.name}: missing column(s) {missing}; columns found: {table.column_names}")
    df = table.select(PICK_COLUMNS).to_pandas()
    times = parse_times(df["time"], where, "time")
    start = pd.Timestamp(day, tz="UTC")
    fail_at((times < start) | (times >= start + DAY), where,
            lambda pos: f"column 'time' holds {times.iloc[pos]}, outside the partition's day")
    station = df["station_id"]
    fail_at(station.isna() | (station.astype(str).str.strip() == ""), where, lambda pos: "column 'station_id' is empty")
    return pd.DataFrame({"station_id": station.astype(str).to_numpy(dtype=object), "time": times,
                         "phase": normalise_phase(df["phase"], where, "phase").to_numpy(dtype=object),
                         "score": to_numeric(df["score"], where, "score").fillna(1.0),
                         "amplitude": to_numeric(df["amplitude"], where, "amplitude")})


class PickDataset:
    """A pick dataset directory (module doc), opened read-only."""

    def __init__(self, directory: str | os.PathLike):
        self.root = Path(directory)
        if not is_dataset(self.root):
            raise InputError(f"{self.root}: not a pick dataset (no dataset.json; make one with `genie picks import`)")
        self.manifest = read_json_object(self.root / "dataset.json", "pick dataset manifest")
        _check_manifest(self.manifest, self.root)
        self.day_counts = {d: int(n) for d, n in self.manifest.get("days", {}).items()}

    @property
    def days(self) -> list[pd.Timestamp]:
        """The UTC days that hold picks, in order."""
        return [pd.Timestamp(d, tz="UTC") for d in sorted(self.day_counts)]

    @property
    def n_picks(self) -> int:
        return sum(self.day_counts.values())

    @property
    def span(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """``[first day, last day + 1 day)`` (UTC)."""
        days = self.days
        if not days:
            raise InputError(f"{self.root}: the pick dataset holds no picks")
        return days[0], days[-1] + DAY

    def stations(self) -> pd.DataFrame:
        return read_stations(self.root / "stations.csv")

    def read(self, start, end) -> pd.DataFrame:
        """The picks with ``start <= time < end`` (UTC), sorted by time: the contract columns and
        ``dataset_row``, the pick's row in the whole dataset (days in order), which identifies it in
        the assignments of a dataset run. Only the partitions of the days the span touches are read."""
        start, end = utc(start), utc(end)
        names = sorted(self.day_counts)
        offsets = dict(zip(names, np.cumsum([0] + [self.day_counts[d] for d in names[:-1]])))
        parts = []
        last = (end - pd.Timedelta(microseconds=1)).floor("D")
        for day in pd.date_range(start.floor("D"), last, freq="D") if end > start else []:
            name = day.strftime("%Y-%m-%d")
            path = _partition_path(self.root, day)
            if name not in self.day_counts:
                continue
            if not path.is_file():
                raise InputError(f"{self.root / 'dataset.json'} lists day {name} but its partition {path} is missing")
            part = _read_partition(path, name)
            if len(part) != self.day_counts[name]:
                raise InputError(f"{path}: {len(part)} picks where {self.root / 'dataset.json'} lists "
                                 f"{self.day_counts[name]}; the partition was changed outside genie picks import")
            part["dataset_row"] = offsets[name] + np.arange(len(part), dtype=np.int64)
            times = part["time"]
            parts.append(part[(times >= start) & (times < end)])
        if not parts:
            dtypes = {"time": "datetime64[ns, UTC]", "score": "float64", "amplitude": "float64", "dataset_row": "int64"}
            return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, object)) for c in [*PICK_COLUMNS, "dataset_row"]})
        return pd.concat(parts, ignore_index=True).sort_values(["time", "station_id", "phase"],
                                                                kind="stable").reset_index(drop=True)

    def summary(self) -> dict:
        days = self.days
        return {"days": len(days), "picks": self.n_picks, "first_day": days[0].strftime("%Y-%m-%d") if days else None,
                "last_day": days[-1].strftime("%Y-%m-%d") if days else None}
