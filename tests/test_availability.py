"""Station availability from the picks and the operating dates."""

import numpy as np
import pandas as pd

from genie.availability import StationActivity, operating_dates


def test_gaps_and_operating_dates():
    # Station 0 picks every 10 min for 2 h then stops; station 1 only in the second hour;
    # station 2 never picks.
    t0 = np.arange(0, 7200, 600.0)
    t1 = np.arange(3600, 7200, 300.0)
    station = np.r_[np.zeros(len(t0), int), np.ones(len(t1), int)]
    times = np.r_[t0, t1]
    query = np.array([100.0, 3000.0, 7000.0, 9500.0])
    active = StationActivity(station, times, 3, gap_s=1800.0)(query)
    assert active[:, 0].tolist() == [True, True, True, False]  # 9500 s is 2900 s after its last pick
    assert active[:, 1].tolist() == [False, True, True, False]  # 3000 s is 600 s before its first pick
    assert not active[:, 2].any()
    stations = pd.DataFrame({"station_id": ["A", "B", "C"],
                             "end_time": ["2020-01-01T00:50:00Z", None, None]})
    start, end = operating_dates(stations, pd.Timestamp("2020-01-01T00:00Z"))
    assert end[0] == 3000.0 and np.isinf(end[1]) and np.isinf(start).all()
    dated = StationActivity(station, times, 3, 1800.0, start, end)(query)
    assert dated[:, 0].tolist() == [True, True, False, False]


def test_station_activity_built_once_answers_every_query_by_the_rule():
    """Keys built once answer any batch of queries by the rule (a pick within the gap), including
    queries days away from the picks (clipped: no pick within the gap), 10 ms either side of the
    gap, and the same queries in another order or batch."""
    rng = np.random.default_rng(3)
    station = rng.integers(0, 4, 500)
    times = np.sort(rng.uniform(0.0, 86400.0, 500))
    activity = StationActivity(station, times, 5, 1800.0)
    query = np.r_[rng.uniform(-5 * 86400.0, 6 * 86400.0, 300), times[:20] + 1799.99, times[:20] - 1800.01]
    expected = np.zeros((len(query), 5), dtype=bool)
    for j in range(5):  # the rule, station by station
        t = times[station == j]
        if len(t):
            expected[:, j] = np.abs(query[:, None] - t[None, :]).min(1) <= 1800.0
    assert np.array_equal(activity(query), expected)
    assert np.array_equal(activity(query[::-1][:7]), expected[::-1][:7])
    assert not activity(np.array([-1e7, 1e7])).any() and not expected[:, 4].any()
