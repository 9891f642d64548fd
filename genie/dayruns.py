"""Association of a Parquet pick dataset day by day: one task per UTC day, here or on Dask.

    from genie.dayruns import associate_dataset
    summary = associate_dataset("model_dir", "picks_ds", "out", scheduler="local", workers=2)

Each task (:func:`associate_day`) reads only its day of the dataset (:class:`~catalogs.pickstore.PickDataset`;
the part of it within the run's ``[start, end)``) plus the associator's chunk overlap on each side (the longest travel time plus the label widths),
associates it as one chunk of :meth:`genie.associate.Associator.associate` (events whose origin
falls in the day; boundary events are resolved as between the chunks of a single run), and writes
``OUT/days/day=YYYY-MM-DD/`` atomically: ``events.csv``, ``assignments.csv`` (as
``genie associate`` writes them; ``pick_index`` is the pick's ``dataset_row``, its row in the whole
dataset), ``catalog.xml`` and
last ``done.json``, whose key (model, settings, the pick counts of the day and its neighbours)
marks the day finished: a restarted run skips it, a run with another model, other settings or
re-imported picks redoes it. Event ids carry the day (``genie20201001_00042``), so the catalog does
not depend on which process ran which day. The chance test (:mod:`genie.associate`, step 5) counts
background picks over the day and its overlap.

``scheduler=None`` runs the days in this process; ``"local"`` starts a ``dask.distributed``
``LocalCluster`` of ``workers`` processes, and ``tcp://HOST:PORT`` uses a running scheduler. Each
worker loads the model once (on its GPU when ``device`` is ``auto`` and it has one). A worker that
dies mid-day loses only that day's task, which the scheduler gives to another worker; files are
written whole or not at all, so nothing is duplicated. Finally ``OUT/events.csv`` and
``OUT/assignments.csv`` are the day files concatenated in order (streamed, bounded memory).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from catalogs.events import write_catalog
from catalogs.fileio import atomic_path, write_text_atomic
from catalogs.pickstore import DAY, PickDataset, utc
from catalogs.schema import InputError

logger = logging.getLogger(__name__)

DAY_FILES = ("events.csv", "assignments.csv", "catalog.xml")
_ASSOCIATORS: dict = {}


def day_name(day: pd.Timestamp) -> str:
    return pd.Timestamp(day).strftime("%Y-%m-%d")


def _associator(model_dir: str, device: str, settings: dict, threads: int | None):
    """The worker's associator for these arguments, loaded on first use (one model per process)."""
    from genie.associate import Associator

    if threads:
        import torch

        torch.set_num_threads(threads)
    key = json.dumps([str(model_dir), device, settings], sort_keys=True, default=str)
    if key not in _ASSOCIATORS:
        _ASSOCIATORS.clear()
        _ASSOCIATORS[key] = Associator.from_pretrained(model_dir, device=device, **{**settings, "progress": False})
    return _ASSOCIATORS[key]


def _day_key(associator, dataset: PickDataset, lo: pd.Timestamp, hi: pd.Timestamp) -> str:
    from genie.associate import _digest

    day = lo.floor("D")
    counts = [dataset.day_counts.get(day_name(day + k * DAY), 0) for k in (-1, 0, 1)]
    settings = {k: v for k, v in associator.settings.to_dict().items() if k != "progress"}
    return _digest(associator.model.metadata(), settings, associator.scale.to_json(), str(lo), str(hi), counts)


def _span(day: pd.Timestamp, start: pd.Timestamp | None, end: pd.Timestamp | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The part of UTC ``day`` within ``[start, end)``."""
    lo, hi = day, day + DAY
    return (max(lo, start) if start is not None else lo), (min(hi, end) if end is not None else hi)


def day_dir(out: str | os.PathLike, day: pd.Timestamp) -> Path:
    return Path(out) / "days" / f"day={day_name(day)}"


def is_done(out: str | os.PathLike, day: pd.Timestamp, key: str) -> bool:
    marker = day_dir(out, day) / "done.json"
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("key") == key
    except json.JSONDecodeError:
        return False


def associate_day(model_dir: str, dataset_dir: str, out: str, day: str, device: str = "auto",
                  settings: dict | None = None, threads: int | None = None, start: str | None = None,
                  end: str | None = None) -> dict:
    """Associate UTC ``day`` (``YYYY-MM-DD``; only its part within ``[start, end)`` when given)
    of the dataset in ``dataset_dir`` with the model in ``model_dir`` and write its files (module
    doc). Returns the day's ``done.json`` record."""
    t0 = time.perf_counter()
    associator = _associator(model_dir, device, settings or {}, threads)
    dataset = PickDataset(dataset_dir)
    first = pd.Timestamp(day, tz="UTC")
    lo, hi = _span(first, utc(start) if start else None, utc(end) if end else None)
    key = _day_key(associator, dataset, lo, hi)
    target = day_dir(out, first)
    if is_done(out, first, key):
        return json.loads((target / "done.json").read_text())
    margin = pd.Timedelta(seconds=associator.overlap_s())
    picks = dataset.read(lo - margin, hi + margin)
    events, assignments = associator.associate(picks, dataset.stations(), lo, hi)
    ids = np.array([f"genie{first.strftime('%Y%m%d')}_{i:05d}" for i in range(len(events))], dtype=object)
    rename = dict(zip(events["event_id"], ids))
    events = events.assign(event_id=ids)
    assignments = assignments.assign(event_id=assignments["event_id"].map(rename))
    target.mkdir(parents=True, exist_ok=True)
    (target / "done.json").unlink(missing_ok=True)
    write_catalog(events, assignments, picks, target / "events.csv", assignments_path=target / "assignments.csv",
                  pick_ids=picks["dataset_row"].to_numpy())
    write_catalog(events, assignments, picks, target / "catalog.xml")
    record = {"key": key, "day": day_name(first), "span": [str(lo), str(hi)], "events": len(events),
              "assignments": len(assignments), "picks": int(dataset.day_counts.get(day_name(first), 0)),
              "picks_read": len(picks),
              "excluded": associator.counts.get("excluded", {}), "seconds": time.perf_counter() - t0,
              "host": os.uname().nodename, "pid": os.getpid()}
    # done.json last: a day with it is complete.
    write_text_atomic(target / "done.json", json.dumps(record, indent=1) + "\n")
    return record


def _concatenate(paths: list[Path], target: Path) -> int:
    """Concatenate CSV files with one header (streamed); returns the rows written."""
    rows = 0
    with atomic_path(target) as tmp, open(tmp, "w") as sink:
        header = None
        for path in paths:
            with open(path) as source:
                first = source.readline()
                if header is None:
                    header = first
                    sink.write(first)
                elif first != header:
                    raise InputError(f"{path}: columns differ from the other days' ({first.strip()} vs {header.strip()})")
                for line in source:
                    sink.write(line)
                    rows += 1
    return rows


def associate_dataset(model_dir: str, dataset_dir: str, out: str, start=None, end=None, device: str = "auto",
                      settings: dict | None = None, scheduler: str | None = None, workers: int | None = None,
                      threads: int | None = None, progress: bool = True) -> dict:
    """Associate the days of ``dataset_dir`` in ``[start, end)`` (default: all) into ``out``
    (module doc); ``scheduler`` None (this process), ``"local"`` or a scheduler address.
    Returns the run summary (days done and skipped, events, picks, seconds, picks per second)."""
    t0 = time.perf_counter()
    dataset = PickDataset(dataset_dir)
    first, last = dataset.span
    start = utc(start) if start is not None else first
    end = utc(end) if end is not None else last
    days = [d for d in dataset.days if start.floor("D") <= d < end]
    if not days:
        raise InputError(f"{dataset_dir}: no picks between {start} and {end} (the dataset spans {first} to {last})")
    settings = dict(settings or {})
    associator = _associator(model_dir, device, settings, threads)
    keys = {day_name(d): _day_key(associator, dataset, *_span(d, start, end)) for d in days}
    todo = [day_name(d) for d in days if not is_done(out, d, keys[day_name(d)])]
    bounds = (str(start), str(end))
    if len(todo) < len(days):
        logger.info("resuming: %d of %d day(s) already finished in %s", len(days) - len(todo), len(days), out)
    Path(out).mkdir(parents=True, exist_ok=True)
    args = (str(model_dir), str(dataset_dir), str(out))
    bar = tqdm(total=len(todo), desc="associating", unit="day", disable=not progress)
    records = []
    if scheduler is None:
        for day in todo:
            records.append(associate_day(*args, day, device, settings, threads, *bounds))
            bar.update()
    else:
        records = _run_on_dask(args, todo, device, settings, threads, bounds, scheduler, workers, bar)
    bar.close()
    n_events = _concatenate([day_dir(out, d) / "events.csv" for d in days], Path(out) / "events.csv")
    n_assigned = _concatenate([day_dir(out, d) / "assignments.csv" for d in days], Path(out) / "assignments.csv")
    seconds = time.perf_counter() - t0
    n_picks = sum(dataset.day_counts[day_name(d)] for d in days)
    return {"days": len(days), "days_run": len(records), "days_resumed": len(days) - len(records),
            "events": n_events, "assignments": n_assigned, "picks": n_picks, "seconds": seconds,
            "picks_per_second": sum(r["picks"] for r in records) / max(seconds, 1e-9),
            "scheduler": scheduler or "none", "workers": workers if scheduler else 1,
            "hosts": sorted({f"{r['host']}:{r['pid']}" for r in records})}


def local_cluster(workers: int):
    """A ``LocalCluster`` of ``workers`` one-thread worker processes, started without Dask's
    ``MALLOC_TRIM_THRESHOLD_``. Dask sets it (65536) so that workers hand freed memory back to the
    OS, but any explicit glibc threshold turns off glibc's adaptive mmap threshold: every temporary
    array above 128 kB is then mapped and page-faulted afresh (a numpy loop of 1.6 MB temporaries:
    340 times the page faults, 90 times the system time), which made two workers take 2.2 times
    one process's wall time on the Salton Sea days. Workers started by hand for ``tcp://`` should
    be started without it too (a Dask configuration with
    ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: null``; null unsets it)."""
    import dask
    from distributed import LocalCluster

    # The nannies run in this process and copy their environment into os.environ before each
    # worker start (restarts included), so an earlier Dask cluster here leaves the variable behind.
    if os.environ.pop("MALLOC_TRIM_THRESHOLD_", None) is not None:
        logger.info("MALLOC_TRIM_THRESHOLD_ removed from the environment of the Dask workers")
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


def _run_on_dask(args, todo, device, settings, threads, bounds, scheduler, workers, bar) -> list[dict]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InputError("--scheduler needs dask.distributed: pip install 'genie-associator[scale]'") from None
    # Dask logs every address and plugin at INFO; this run reports its own progress, so Dask's
    # lines show from WARNING up unless the user asked for DEBUG.
    logging.getLogger("distributed").setLevel(
        logging.DEBUG if logging.getLogger().getEffectiveLevel() <= logging.DEBUG else logging.WARNING)
    cluster = None
    if scheduler == "local":
        cluster = local_cluster(workers or max((os.cpu_count() or 2) // 2, 1))
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        # Keys name the run too: two runs on one scheduler must not share results.
        run = hashlib.sha1(json.dumps(args).encode()).hexdigest()[:8]
        futures = [client.submit(associate_day, *args, day, device, settings, threads or 1, *bounds,
                                 key=f"genie-day-{day}-{run}", pure=False) for day in todo]
        records = []
        for future in as_completed(futures):
            records.append(future.result())
            bar.update()
        return records
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
