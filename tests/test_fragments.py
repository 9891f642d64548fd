import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from genie.assign import AssignmentRules
from genie.detect import ASSIGNMENT_COLUMNS, EVENT_COLUMNS, DetectSettings
from genie.features import PickTable
from genie.fragments import fragment_events

RULES = AssignmentRules(min_picks=4, min_stations=3, min_p_picks=2)


def gate(tt_s, phase):
    return np.full(np.shape(tt_s), 0.5)


def _table(rows):
    """Assignments from ``(event, station, phase, time_s)`` rows (pick_index = row) and the
    pick times."""
    event, station, phase, time_s = (np.array(c) for c in zip(*rows))
    assignments = pd.DataFrame({"pick_index": np.arange(len(rows)), "event_index": event, "station": station,
                                "phase": phase, "probability": 0.9})
    return assignments, time_s.astype("float64")


def test_a_fragment_of_a_larger_event_is_found_with_its_residuals():
    """Event 0 (origin 100 s, travel time 5 + s to station s) has P picks on stations 0-5; event 1
    (origin 101 s) holds four P picks on stations 6-9 at event 0's predicted arrivals (+0.1 s)
    and one more pick that event 0 does not explain: a fragment of event 0. Event 2 (origin
    102 s) shares two picks with event 0's arrivals but has six of its own: a real event."""
    tt = np.zeros((3, 14, 2))
    tt[0, :, 0] = 5.0 + np.arange(14)
    tt[1, :, 0] = tt[2, :, 0] = 3.0
    rows = [(0, s, "P", 105.0 + s) for s in range(6)]
    rows += [(1, s, "P", 105.1 + s) for s in range(6, 10)] + [(1, 13, "P", 104.0)]
    rows += [(2, 10, "P", 115.2), (2, 11, "P", 116.2)]
    rows += [(2, s, "S", 107.0 + s) for s in range(6)]
    assignments, times = _table(rows)
    events = pd.DataFrame({"origin_s": [100.0, 101.0, 102.0]})
    parent, residual = fragment_events(events, assignments, times, tt, gate, RULES, window_s=30.0)
    assert parent.tolist() == [-1, 0, -1]
    moved = np.flatnonzero(np.isfinite(residual))
    assert moved.tolist() == [6, 7, 8, 9]  # the fragment's explained picks, not its fifth
    np.testing.assert_allclose(residual[moved], 0.1)


def test_picks_the_larger_event_already_has_are_not_explained():
    """The smaller event's picks lie on the larger one's arrivals, but at stations and phases
    where the larger one has its own pick: two events at one place, not a fragment."""
    tt = np.zeros((2, 6, 2))
    tt[:, :, 0] = 5.0 + np.arange(6)
    rows = [(0, s, "P", 105.0 + s) for s in range(6)] + [(1, s, "P", 105.2 + s) for s in range(4)]
    assignments, times = _table(rows)
    events = pd.DataFrame({"origin_s": [100.0, 100.2]})
    parent, residual = fragment_events(events, assignments, times, tt, gate, RULES, window_s=30.0)
    assert parent.tolist() == [-1, -1] and np.isnan(residual).all()


@pytest.mark.parametrize("origin_1, window_s, expected", [(101.0, 30.0, 0), (101.0, 0.5, -1), (100.0, 30.0, 0)])
def test_only_events_close_in_time_and_unequal_in_size_are_compared(origin_1, window_s, expected):
    tt = np.zeros((2, 12, 2))
    tt[0, :, 0] = 5.0 + np.arange(12)
    rows = [(0, s, "P", 105.0 + s) for s in range(6)] + [(1, s, "P", 105.0 + s) for s in range(6, 10)]
    assignments, times = _table(rows)
    parent, _ = fragment_events(pd.DataFrame({"origin_s": [100.0, origin_1]}), assignments, times, tt, gate, RULES,
                                window_s=window_s)
    assert parent.tolist() == [-1, expected]
    # Equal sizes: neither is the larger, so neither is a fragment.
    rows = [(0, s, "P", 105.0 + s) for s in range(4)] + [(1, s, "P", 105.0 + s) for s in range(6, 10)]
    assignments, times = _table(rows)
    parent, _ = fragment_events(pd.DataFrame({"origin_s": [100.0, origin_1]}), assignments, times, tt, gate, RULES,
                                window_s=30.0)
    assert parent.tolist() == [-1, -1]


def test_detect_merges_a_fragment_into_its_parent(tiny_model, monkeypatch):
    """A pass returns a large event at source node 0 with P picks on all but three stations and a
    second event made of its P arrivals at those three plus one more pick: detect gives
    the explained picks to the large event (counts updated, residuals at its location) and
    releases the other; with merge_fragments off both events stay."""
    import genie.detect as det

    m = tiny_model
    n = m.n_stations
    xyz = m.source_xyz.numpy()[0].astype("float64")
    arrival = 20.0 + m.arrival_times(torch.as_tensor(xyz[None])).numpy()[0, :, 0]  # [S] P
    split = n - 3
    times = np.r_[arrival, arrival[0] + 7.0]
    picks = PickTable(np.r_[np.arange(n), 0], times, np.zeros(n + 1, int), n)

    def fake_pass(model, table, start_s, end_s, settings, progress, activity, timings, removed=None):
        events = pd.DataFrame({c: [0.0, 0.0] for c in EVENT_COLUMNS}).assign(
            origin_s=[20.0, 25.0], x_km=[xyz[0], xyz[0] + 40.0], y_km=[xyz[1], xyz[1]], depth_km=[xyz[2], 0.0],
            n_p=[split, 4])
        rows = np.r_[np.arange(n), n]
        assignments = pd.DataFrame({"pick_index": rows, "event_index": (rows >= split).astype(int), "phase": "P",
                                    "probability": 0.9, "residual_s": 0.0, "station": table.station[rows]})
        return events, assignments[list(ASSIGNMENT_COLUMNS)]

    monkeypatch.setattr(det, "_detect_pass", fake_pass)
    settings = DetectSettings(passes=1, min_picks=3, min_stations=3, min_p_picks=3, max_residual_s=0.5)
    events, assignments = det.detect(m, picks, 0.0, 100.0, settings)
    assert len(events) == 1 and events.loc[0, "n_p"] == n and events.loc[0, "n_stations"] == n
    assert sorted(assignments["pick_index"].tolist()) == list(range(n))  # the extra pick is released
    np.testing.assert_allclose(assignments["residual_s"], 0.0, atol=1e-6)
    both, _ = det.detect(m, picks, 0.0, 100.0, dataclasses.replace(settings, merge_fragments=False))
    assert len(both) == 2


def test_merge_fragments_must_be_true_or_false():
    from catalogs.schema import InputError

    with pytest.raises(InputError, match="merge_fragments = 'yes'"):
        DetectSettings(merge_fragments="yes")
