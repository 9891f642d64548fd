"""A pick dataset associated day by day: the same catalog as one in-memory run cut at midnight,
resumed runs, Dask workers (one killed mid-day) giving the identical catalog, and the CLI."""

from __future__ import annotations

import os
import signal
import threading
import time

import pandas as pd
import pytest

pytest.importorskip("pyarrow")

from catalogs.events import read_catalog  # noqa: E402
from catalogs.matching import match_catalogs  # noqa: E402
from catalogs.pickstore import PickDataset, import_picks  # noqa: E402
from genie import Associator  # noqa: E402
from genie.cli import main  # noqa: E402
from genie.dayruns import associate_dataset, day_dir  # noqa: E402

CONTRACT = ["station_id", "time", "phase", "score", "amplitude"]
MIDNIGHT = pd.Timestamp("2020-01-01", tz="UTC")


@pytest.fixture(scope="module")
def across_midnight(synthetic_day):
    """The two synthetic hours moved to 23:00-01:00 across 2020-01-01: ``(picks, truth, stations)``."""
    picks, truth, stations = synthetic_day
    shift = pd.Timedelta(hours=1)
    return (picks.assign(time=picks["time"] - shift), truth.assign(time=truth["time"] - shift), stations)


@pytest.fixture(scope="module")
def dataset(across_midnight, tmp_path_factory):
    picks, _, stations = across_midnight
    root = tmp_path_factory.mktemp("dataset") / "ds"
    # And a day with three picks: no event, empty files.
    stray = picks[CONTRACT].iloc[:3].assign(time=lambda p: p["time"] + pd.Timedelta(days=3))
    import_picks([picks[CONTRACT], stray], stations, root)
    return root


@pytest.fixture(scope="module")
def single_run(trained_model_dir, dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    summary = associate_dataset(str(trained_model_dir), str(dataset), str(out), device="cpu", threads=1,
                                progress=False)
    return out, summary


def test_days_give_the_catalog_of_one_run_cut_at_midnight(trained_model_dir, across_midnight, dataset, single_run):
    picks, truth, stations = across_midnight
    out, summary = single_run
    assert summary["days"] == 3 and summary["days_run"] == 3 and summary["picks"] == len(picks) + 3
    events = read_catalog(out / "events.csv")
    assert summary["events"] == len(events) > 20
    assert events["event_id"].str.match(r"genie(20191231|20200101)_\d{5}$").all() and events["event_id"].is_unique
    assert ((events["time"] < MIDNIGHT) == events["event_id"].str.startswith("genie20191231")).all()
    # One in-memory run with its chunk edge at midnight: the same events (each day reads its
    # neighbour's overlap, so events at the edge are resolved as between chunks).
    whole = Associator.from_pretrained(trained_model_dir, device="cpu", progress=False, chunk_s=3600.0)
    reference, _ = whole.associate(picks[CONTRACT], stations, MIDNIGHT - pd.Timedelta(hours=1),
                                   MIDNIGHT + pd.Timedelta(hours=1))
    pairs = match_catalogs(events, reference, max_dt_s=0.5, max_dist_km=1.0)
    assert len(pairs) >= 0.95 * max(len(events), len(reference)), (len(pairs), len(events), len(reference))
    # And the planted events: most of those with >= 8 picks are found.
    pickable = truth[(truth["n_p"] + truth["n_s"]) >= 8].reset_index(drop=True)
    assert len(match_catalogs(events, pickable, 3.0, 15.0)) >= 0.78 * len(pickable)
    assignments = pd.read_csv(out / "assignments.csv")
    assert summary["assignments"] == len(assignments) and set(assignments["event_id"]) <= set(events["event_id"])
    # pick_index: the pick's row in the whole dataset.
    everything = PickDataset(dataset).read(*PickDataset(dataset).span)
    rows = everything.iloc[assignments["pick_index"].to_numpy()]
    assert assignments["pick_index"].is_unique
    assert (rows["station_id"].to_numpy() == assignments["station_id"].to_numpy()).all()
    assert (rows["time"].to_numpy() == pd.to_datetime(assignments["pick_time"], utc=True).to_numpy()).all()
    assert (day_dir(out, MIDNIGHT) / "catalog.xml").is_file()
    quiet_day = day_dir(out, MIDNIGHT + pd.Timedelta(days=2))
    assert pd.read_csv(quiet_day / "events.csv").empty and pd.read_csv(quiet_day / "assignments.csv").empty


def test_a_finished_run_resumes_without_work(trained_model_dir, dataset, single_run):
    out, _ = single_run
    before = (out / "events.csv").read_bytes()
    again = associate_dataset(str(trained_model_dir), str(dataset), str(out), device="cpu", threads=1, progress=False)
    assert again["days_run"] == 0 and again["days_resumed"] == 3
    assert (out / "events.csv").read_bytes() == before


def test_dask_workers_give_the_identical_catalog_even_when_one_is_killed(trained_model_dir, dataset, single_run,
                                                                        tmp_path):
    distributed = pytest.importorskip("distributed")
    reference, _ = single_run
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        killed = []

        def kill_a_busy_worker():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not killed:
                busy = [w for w, tasks in client.processing().items() if any("genie-day" in str(t) for t in tasks)]
                if busy:
                    # Let it load the model and start the day, then kill it (SIGKILL: no clean-up).
                    time.sleep(0.5)
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(busy[0])
                time.sleep(0.05)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        summary = associate_dataset(str(trained_model_dir), str(dataset), str(tmp_path), device="cpu", threads=1,
                                    scheduler=cluster.scheduler_address, progress=False)
        killer.join()
    assert killed, "no worker was killed"
    assert summary["days_run"] == 3
    for name in ("events.csv", "assignments.csv"):
        assert (tmp_path / name).read_bytes() == (reference / name).read_bytes(), name


def test_cli_imports_and_associates_a_dataset(trained_model_dir, across_midnight, single_run, tmp_path, capsys):
    picks, _, stations = across_midnight
    first, second = picks.iloc[: len(picks) // 2], picks.iloc[len(picks) // 2:]
    files = []
    for k, part in enumerate((first, second)):
        path = tmp_path / f"picks_{k}.csv"
        part[CONTRACT].assign(time=part["time"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")).to_csv(path, index=False)
        files.append(str(path))
    stations.to_csv(tmp_path / "stations.csv", index=False)
    assert main(["picks", "import", "--picks", *files, "--stations", str(tmp_path / "stations.csv"),
                 "--out", str(tmp_path / "ds"), "--quiet"]) == 0
    assert f"holds {len(picks)} picks on 2 day(s)" in capsys.readouterr().out
    assert main(["associate", "--picks", str(tmp_path / "ds"), "--model", str(trained_model_dir), "--out",
                 str(tmp_path / "run"), "--device", "cpu", "--quiet"]) == 0
    reference, summary = single_run
    assert f"{summary['events']} events" in capsys.readouterr().out
    pd.testing.assert_frame_equal(read_catalog(tmp_path / "run" / "events.csv"), read_catalog(reference / "events.csv"),
                                  check_exact=False, atol=1e-6)
    # A Dask run of a plain pick file, and an --out inside the dataset, are refused.
    assert main(["associate", "--picks", files[0], "--stations", str(tmp_path / "stations.csv"), "--model",
                 str(trained_model_dir), "--out", str(tmp_path / "x"), "--scheduler", "local"]) == 2
    assert "need a pick dataset" in capsys.readouterr().err
    assert main(["associate", "--picks", str(tmp_path / "ds"), "--model", str(trained_model_dir), "--out",
                 str(tmp_path / "ds" / "out")]) == 2
    assert "inside the pick dataset" in capsys.readouterr().err
    # A bad row in a partition: exit 2 naming the partition, file and row.
    bad = tmp_path / "ds" / "picks" / "day=2020-01-01" / "picks.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(bad).to_pandas()
    table.loc[3, "station_id"] = ""
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), bad)
    assert main(["associate", "--picks", str(tmp_path / "ds"), "--model", str(trained_model_dir), "--out",
                 str(tmp_path / "bad"), "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "partition day=2020-01-01" in err and "picks.parquet" in err and "row 3: column 'station_id' is empty" in err


def test_start_and_end_cut_the_days(trained_model_dir, dataset, single_run, tmp_path):
    reference, _ = single_run
    start, end = MIDNIGHT - pd.Timedelta(minutes=30), MIDNIGHT + pd.Timedelta(minutes=30)
    summary = associate_dataset(str(trained_model_dir), str(dataset), str(tmp_path), start=start, end=end,
                                device="cpu", threads=1, progress=False)
    events, whole = read_catalog(tmp_path / "events.csv"), read_catalog(reference / "events.csv")
    assert summary["days"] == 2 and len(events) > 5
    assert ((events["time"] >= start) & (events["time"] < end)).all()
    inside = whole[(whole["time"] >= start + pd.Timedelta(seconds=30)) & (whole["time"] < end - pd.Timedelta(seconds=30))]
    assert len(match_catalogs(events, inside, max_dt_s=0.5, max_dist_km=1.0)) >= 0.9 * len(inside)


def test_local_workers_keep_the_adaptive_malloc_threshold():
    # Dask's default MALLOC_TRIM_THRESHOLD_ makes every large temporary array a fresh mmap.
    from distributed import Client

    from genie.dayruns import local_cluster

    with local_cluster(1) as cluster, Client(cluster) as client:
        environ = client.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")))
    assert list(environ.values()) == [(None, "1")]
