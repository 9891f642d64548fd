"""Station availability from the picks and the operating dates."""

import numpy as np
import pandas as pd

from genie.availability import operating_dates, station_activity


def test_gaps_and_operating_dates():
    # Station 0 picks every 10 min for 2 h then stops; station 1 only in the second hour;
    # station 2 never picks.
    t0 = np.arange(0, 7200, 600.0)
    t1 = np.arange(3600, 7200, 300.0)
    station = np.r_[np.zeros(len(t0), int), np.ones(len(t1), int)]
    times = np.r_[t0, t1]
    query = np.array([100.0, 3000.0, 7000.0, 9500.0])
    active = station_activity(station, times, 3, query, gap_s=1800.0)
    assert active[:, 0].tolist() == [True, True, True, False]  # 9500 s is 2900 s after its last pick
    assert active[:, 1].tolist() == [False, True, True, False]  # 3000 s is 600 s before its first pick
    assert not active[:, 2].any()
    stations = pd.DataFrame({"station_id": ["A", "B", "C"],
                             "end_time": ["2020-01-01T00:50:00Z", None, None]})
    start, end = operating_dates(stations, pd.Timestamp("2020-01-01T00:00Z"))
    assert end[0] == 3000.0 and np.isinf(end[1]) and np.isinf(start).all()
    dated = station_activity(station, times, 3, query, 1800.0, start, end)
    assert dated[:, 0].tolist() == [True, True, False, False]
