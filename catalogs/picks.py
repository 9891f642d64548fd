"""Reading phase picks from PhaseNet, SeisBench, PyOcto and GaMMA, and tying them to stations.

Station-id rule (:func:`match_station_ids`): a pick's id, e.g. a PhaseNet ``CI.BOM..HH`` or a
SeisBench ``CI.BOM.``, is matched to the station list, in order, by

1. the identical id;
2. the same ``NET.STA.LOC``;
3. the same ``NET.STA``;
4. the same station code ``STA``, only when the pick or the station carries no network code;

each of steps 2-4 only when exactly one station qualifies. Picks whose id matches no station are
excluded from processing with one warning, and returned separately so that they can be listed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from catalogs.fileio import read_table
from catalogs.schema import (
    PICK_ALIASES,
    PICK_COLUMNS,
    InputError,
    Source,
    normalise_phase,
    parse_times,
    require_rows,
    resolve_columns,
    to_numeric,
)

logger = logging.getLogger(__name__)

_LEGACY_COLUMNS = ["fname", "idx_p", "prob_p", "idx_s", "prob_s"]


def read_picks(source, sampling_rate: float = 100.0) -> pd.DataFrame:
    """Read picks into the contract's columns ``station_id, time, phase, score, amplitude``.

    ``source`` may be a path or a DataFrame in any of these layouts (recognised by columns):

    * PhaseNet CSV: ``station_id, phase_time, phase_type, phase_score, phase_amplitude``;
    * PhaseNet legacy per-file TSV: ``fname, t0, idx_p, prob_p, idx_s, prob_s[, amp_p, amp_s]``
      with sample indices at ``sampling_rate`` Hz from the hour named in ``fname``
      (``YYYY-MM-DDTHH.NET.STA.LOC.CHA``); a numeric ``t0`` is an offset in seconds, an ISO ``t0``
      the trace start;
    * SeisBench: ``trace_id, peak_time, peak_value, phase`` or a ``PickList`` (any iterable of
      objects with those attributes);
    * PyOcto: ``station, phase, time`` with POSIX seconds; GaMMA: ``id, timestamp, type, prob, amp``.

    Missing ``score`` is taken as 1 and missing ``amplitude`` as NaN. Rows are sorted by time
    (then station and phase) with a fresh index; ``pick_index`` in assignments refers to it.
    Other columns are kept.
    """
    if isinstance(source, pd.DataFrame):
        df, src = source.reset_index(drop=True), Source("picks DataFrame")
    elif isinstance(source, (str, os.PathLike)):
        df, src = read_table(Path(source))
    else:
        df, src = _from_pick_objects(source), Source("PickList")
    require_rows(df, src, "picks")
    lookup = {str(c).strip().lower() for c in df.columns}
    if set(_LEGACY_COLUMNS) <= lookup:
        df = _explode_legacy(df, src, sampling_rate)
        src = Source(src.name)
    return _normalise(df, src)


def _from_pick_objects(picks) -> pd.DataFrame:
    picks = list(picks)
    if picks and not all(hasattr(picks[0], a) for a in ("trace_id", "peak_time", "phase")):
        raise InputError(
            "picks: expected a path, a DataFrame or SeisBench picks (objects with trace_id, "
            f"peak_time, peak_value, phase); got {type(picks[0]).__name__}"
        )
    return pd.DataFrame(
        {
            "trace_id": [p.trace_id for p in picks],
            "peak_time": [str(p.peak_time) for p in picks],
            "peak_value": [getattr(p, "peak_value", np.nan) for p in picks],
            "phase": [p.phase for p in picks],
        }
    )


def _normalise(df: pd.DataFrame, src: Source) -> pd.DataFrame:
    cols = resolve_columns(df, PICK_ALIASES, ["station_id", "time", "phase"], src)
    out = pd.DataFrame(
        {
            "station_id": df[cols["station_id"][0]].astype(str).str.strip(),
            "time": parse_times(df[cols["time"][0]], src, cols["time"][0]),
            "phase": normalise_phase(df[cols["phase"][0]], src, cols["phase"][0]),
        }
    )
    for name, default in (("score", 1.0), ("amplitude", np.nan)):
        if name in cols:
            out[name] = to_numeric(df[cols[name][0]], src, cols[name][0])
        else:
            out[name] = default
    used = {c for c, _ in cols.values()}
    extras = df[[c for c in df.columns if c not in used and c not in PICK_COLUMNS]].reset_index(drop=True)
    out = pd.concat([out, extras], axis=1)
    return out.sort_values(["time", "station_id", "phase"], kind="stable").reset_index(drop=True)


def _explode_legacy(df: pd.DataFrame, src: Source, sampling_rate: float) -> pd.DataFrame:
    """One row per pick from PhaseNet's legacy layout (bracketed index/probability lists)."""
    df = df.rename(columns={c: str(c).strip().lower() for c in df.columns})
    fname = df["fname"].astype(str).str.strip()
    head = fname.str.split(".", n=1)
    start = pd.to_datetime(head.str[0], format="%Y-%m-%dT%H", utc=True, errors="coerce")
    bad = start.isna() | head.str[1].isna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{src.name}, {src.row(pos)}: column 'fname' value {fname.iloc[pos]!r} is not "
            "'YYYY-MM-DDTHH.NET.STA.LOC.CHA'"
        )
    start = start.dt.as_unit("ns")
    if "t0" in df.columns:
        t0 = pd.to_numeric(df["t0"], errors="coerce")
        if t0.isna().all():
            start = parse_times(df["t0"], src, "t0")
        else:
            start = start + pd.to_timedelta(to_numeric(df["t0"], src, "t0").fillna(0.0), unit="s")
    start_ns = start.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    parts = []
    for phase in ("p", "s"):
        fields = {"idx": f"idx_{phase}", "prob": f"prob_{phase}", "amp": f"amp_{phase}"}
        lists = {}
        for key, column in fields.items():
            if column in df.columns:
                lists[key] = df[column].fillna("[]").astype(str).str.strip().str.strip("[]").str.split(",")
        lengths = pd.DataFrame({k: v.str.len() for k, v in lists.items()})
        mismatch = lengths.nunique(axis=1) > 1
        if mismatch.any():
            pos = int(np.flatnonzero(mismatch.to_numpy())[0])
            raise InputError(
                f"{src.name}, {src.row(pos)}: columns {list(lists)} for phase {phase.upper()} "
                "have lists of different lengths"
            )
        table = pd.DataFrame({"row": np.arange(len(df)), **lists}).explode(list(lists))
        table = table[table["idx"].astype(str).str.strip() != ""]
        row = table["row"].to_numpy(dtype="int64")
        samples = to_numeric(table["idx"].reset_index(drop=True), Source(src.name), f"idx_{phase}", allow_nan=False)
        offset_ns = np.round(samples.to_numpy() * (1e9 / sampling_rate)).astype("int64")
        parts.append(
            pd.DataFrame(
                {
                    "station_id": head.str[1].to_numpy()[row],
                    "time": start_ns[row] + offset_ns.astype("timedelta64[ns]"),
                    "phase": phase.upper(),
                    "score": table["prob"].to_numpy(),
                    "amplitude": table["amp"].to_numpy() if "amp" in table else np.nan,
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    out["time"] = out["time"].dt.tz_localize("UTC")
    return out


def _station_keys(ids: pd.Series) -> pd.DataFrame:
    """Split ids into matching keys: ``nsl`` (NET.STA.LOC), ``ns`` (NET.STA), ``sta``, ``has_net``."""
    parts = ids.astype(str).str.split(".")
    dotted = parts.str.len() > 1
    sta = parts.str[1].where(dotted, parts.str[0])
    net = parts.str[0].where(dotted, "")
    ns = (net + "." + sta).where(dotted, None)
    loc = parts.map(lambda p: p[2] if len(p) > 2 else "")
    nsl = (ns + "." + loc).where(dotted, None)
    return pd.DataFrame({"id": ids.to_numpy(), "nsl": nsl, "ns": ns, "sta": sta, "has_net": net != ""})


def match_station_ids(pick_ids, station_ids) -> dict[str, str]:
    """Map each distinct pick station id to a station-list id by the module's documented rule.

    Returns ``{pick id: station id}`` for the ids that match; the others are absent.
    """
    picks = _station_keys(pd.Series(pd.unique(pd.Series(pick_ids, dtype=str))))
    stations = _station_keys(pd.Series(station_ids, dtype=str))
    index = {}
    for key in ("nsl", "ns", "sta"):
        counts = stations[key].value_counts()
        unique = stations[stations[key].isin(counts.index[counts == 1])]
        index[key] = dict(zip(unique[key], unique["id"]))
    networkless = dict(zip(stations["sta"], ~stations["has_net"]))
    exact = set(stations["id"])
    mapping = {}
    for row in picks.itertuples(index=False):
        if row.id in exact:
            mapping[row.id] = row.id
        elif row.nsl is not None and row.nsl in index["nsl"]:
            mapping[row.id] = index["nsl"][row.nsl]
        elif row.ns is not None and row.ns in index["ns"]:
            mapping[row.id] = index["ns"][row.ns]
        elif row.sta in index["sta"] and (not row.has_net or networkless.get(row.sta, False)):
            mapping[row.id] = index["sta"][row.sta]
    return mapping


def station_index(picks: pd.DataFrame, stations: pd.DataFrame, source: str = "picks") -> np.ndarray:
    """Row of each pick's station in ``stations`` by the station-id rule, ``-1`` if unlisted.

    Picks on unlisted stations are counted in one warning with example ids.
    """
    mapping = match_station_ids(picks["station_id"], stations["station_id"])
    index = pd.Index(stations["station_id"]).get_indexer(picks["station_id"].map(mapping))
    unknown = index < 0
    if unknown.any():
        examples = ", ".join(pd.unique(picks.loc[unknown, "station_id"])[:5])
        logger.warning(
            "%s: %d pick(s) on %d station id(s) absent from the station list are excluded from "
            "processing (e.g. %s)",
            source, int(unknown.sum()), picks.loc[unknown, "station_id"].nunique(), examples,
        )
    return index


def attach_stations(picks: pd.DataFrame, stations: pd.DataFrame, source: str = "picks") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split picks into those on listed stations and those excluded.

    Returns ``(kept, excluded)``. ``kept`` has ``station_id`` rewritten to the station list's id
    and the pick file's own id kept in ``raw_station_id``; its index is fresh. ``excluded`` holds
    the picks whose station is not listed, unchanged. One warning states the count and examples.
    """
    index = station_index(picks, stations, source)
    known = index >= 0
    kept = picks[known].copy()
    kept.insert(len(PICK_COLUMNS), "raw_station_id", kept["station_id"])
    kept["station_id"] = stations["station_id"].to_numpy()[index[known]]
    return kept.reset_index(drop=True), picks[~known]


def station_shifted(picks: pd.DataFrame, seed: int | np.random.Generator = 0, low_s: float = 20.0,
                    high_s: float = 120.0) -> pd.DataFrame:
    """The false-detection test: ``picks`` with each station's picks moved by its own offset,
    uniform in ``[low_s, high_s]`` s, so the moveout of every event is destroyed while each
    station keeps its own pick rate and timing. Events found on these picks are chance alignments."""
    rng = np.random.default_rng(seed)
    ids = np.sort(picks["station_id"].astype(str).unique())
    offset = dict(zip(ids, rng.uniform(low_s, high_s, len(ids))))
    out = picks.copy()
    out["time"] = out["time"] + pd.to_timedelta(out["station_id"].astype(str).map(offset), unit="s")
    return out.sort_values("time", kind="stable").reset_index(drop=True)
