import numpy as np
import pandas as pd
import pytest

from catalogs.schema import InputError, Source, parse_times, seconds_since


def test_seconds_since_is_exact_for_microsecond_and_nanosecond_units():
    times = pd.Series(pd.to_datetime(["2020-10-01T00:00:01.250", "2020-10-01T01:00:00"], utc=True, format="ISO8601"))
    for unit in ("us", "ns", "ms"):
        t = times.dt.as_unit(unit)
        assert seconds_since(t, "2020-10-01").tolist() == [1.25, 3600.0]
    # The trap seconds_since avoids: pandas 3 stores microseconds, so int64 / 1e9 is 1000x off.
    assert times.dt.as_unit("us").astype("int64").iloc[0] / 1e9 != pytest.approx(1601510401.25)


def test_parse_times_variants_give_utc_nanoseconds():
    src = Source("t.csv", first_line=2)
    iso = parse_times(pd.Series(["2020-10-01T00:00:00.010", "2020-10-01T00:00:00.010Z"]), src, "time")
    assert str(iso.dtype) == "datetime64[ns, UTC]"
    assert iso.iloc[0] == iso.iloc[1]
    posix = parse_times(pd.Series([1601510400.01]), src, "time")
    assert abs((posix.iloc[0] - iso.iloc[0]).total_seconds()) < 1e-6


def test_parse_times_names_file_line_and_column():
    src = Source("picks.csv", first_line=2)
    with pytest.raises(InputError, match=r"picks.csv, line 3: column 'phase_time'.*'yesterday'"):
        parse_times(pd.Series(["2020-10-01T00:00:00", "yesterday"]), src, "phase_time")


def test_nan_posix_time_is_reported():
    with pytest.raises(InputError, match="row 1"):
        parse_times(pd.Series([1.0, np.nan]), Source("frame"), "time")
