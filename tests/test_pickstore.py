"""The Parquet pick dataset: import, merge, lazy reads and bad partitions."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from catalogs.pickstore import PickDataset, import_picks, is_dataset  # noqa: E402
from catalogs.schema import InputError  # noqa: E402

STATIONS = pd.DataFrame({"station_id": ["XX.A..HH", "XX.B..HH"], "latitude": [33.0, 33.1],
                         "longitude": [-115.6, -115.5], "elevation_m": [0.0, 10.0]})


def picks(times: list[str], stations: list[str], phases: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"station_id": stations, "phase_time": times, "phase_type": phases,
                         "phase_score": [0.9] * len(times), "phase_amplitude": [1e-6] * len(times)})


def test_import_partitions_by_utc_day_merges_and_reads_only_the_span(tmp_path):
    first = picks(["2020-10-01T23:59:59.5", "2020-10-02T00:00:00.25", "2020-10-01T10:00:00"],
                  ["XX.A..HH", "XX.B..HH", "XX.A..HH"], ["P", "S", "P"])
    # The second file repeats one pick of the first (a pick file exported twice over an hour).
    second = picks(["2020-10-02T00:00:00.25", "2020-10-03T12:00:00.123456"], ["XX.B..HH", "XX.A..HH"], ["S", "P"])
    summary = import_picks([first], STATIONS, tmp_path / "ds")
    assert summary == {"days": {"2020-10-01": 2, "2020-10-02": 1}, "added": 3, "duplicates": 0}
    summary = import_picks([second], STATIONS, tmp_path / "ds")
    assert summary == {"days": {"2020-10-01": 2, "2020-10-02": 1, "2020-10-03": 1}, "added": 1, "duplicates": 1}
    assert is_dataset(tmp_path / "ds")
    assert sorted(p.parent.name for p in (tmp_path / "ds" / "picks").glob("*/picks.parquet")) == [
        "day=2020-10-01", "day=2020-10-02", "day=2020-10-03"]

    ds = PickDataset(tmp_path / "ds")
    assert ds.n_picks == 4
    assert ds.span == (pd.Timestamp("2020-10-01", tz="UTC"), pd.Timestamp("2020-10-04", tz="UTC"))
    got = ds.read("2020-10-01T23:00", "2020-10-02T00:00:00.25")
    assert got["time"].tolist() == [pd.Timestamp("2020-10-01T23:59:59.5", tz="UTC")]
    got = ds.read("2020-10-01T23:00", "2020-10-03T12:00:00.123457")
    assert got["station_id"].tolist() == ["XX.A..HH", "XX.B..HH", "XX.A..HH"]
    assert got["phase"].tolist() == ["P", "S", "P"]
    # Microseconds survive the round trip.
    assert got["time"].iloc[-1] == pd.Timestamp("2020-10-03T12:00:00.123456", tz="UTC")
    assert got["score"].tolist() == [0.9, 0.9, 0.9]
    assert ds.read("2021-01-01", "2021-01-02").empty
    assert ds.stations()["station_id"].tolist() == STATIONS["station_id"].tolist()
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["imported"] == ["DataFrame", "DataFrame"]


def test_a_bad_row_names_the_partition_file_and_row(tmp_path):
    import_picks([picks(["2020-10-01T01:00:00", "2020-10-01T02:00:00"], ["XX.A..HH", "XX.B..HH"], ["P", "S"])],
                 STATIONS, tmp_path / "ds")
    path = tmp_path / "ds" / "picks" / "day=2020-10-01" / "picks.parquet"
    table = pq.read_table(path).to_pandas()
    table.loc[1, "phase"] = "Q"
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path)
    with pytest.raises(InputError, match=r"partition day=2020-10-01 \(.*picks\.parquet\), row 1: column 'phase' has phase 'Q'; expected P or S"):
        PickDataset(tmp_path / "ds").read("2020-10-01", "2020-10-02")
    table.loc[1, "phase"] = "S"
    table.loc[0, "time"] = pd.Timestamp("2020-10-05", tz="UTC")
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path)
    with pytest.raises(InputError, match=r"row 0: column 'time' holds 2020-10-05.*outside the partition's day"):
        PickDataset(tmp_path / "ds").read("2020-10-01", "2020-10-02")
    path.write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"day=2020-10-01 .*cannot be read as Parquet"):
        PickDataset(tmp_path / "ds").read("2020-10-01", "2020-10-02")


def test_a_directory_without_a_manifest_is_not_a_dataset(tmp_path):
    with pytest.raises(InputError, match="not a pick dataset"):
        PickDataset(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"format": "other", "version": 1}))
    with pytest.raises(InputError, match="not a genie-picks dataset"):
        PickDataset(tmp_path)
