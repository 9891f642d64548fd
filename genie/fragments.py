"""Fragments: events made of another, larger event's picks.

A large event is picked far beyond the stations near it. Where a second source holds some of its
distant arrivals as candidates and meets the rules with them, the exact assignment keeps both
sources (each pick goes to one; the second costs only ``source_cost``): the second at the same
origin time, often a mirror image of the true one across a line of stations, tens to
hundreds of km away, with a moveout of its own that fits. Such a fragment passes every pick-count
rule and the chance test (its picks are real arrivals, not background), so it is a false event
that also takes the large event's picks.

Test (:func:`fragment_events`): an event E is a fragment of a larger event B (more picks, origins
within the longest travel time) when

* at least half of E's picks are *explained* by B: each lies within B's residual gate of B's
  predicted arrival of the same phase, at a station where B has no pick of that phase, and
* E's other picks alone fail the acceptance rules.

An event that is a fragment of several goes to the one that explains most of its picks. A small
event beside a large one keeps its picks: where B already has a pick at the station and phase,
where fewer than half of E's picks fit B, or where E's own picks pass the rules, E stays. The gate
is B's own: widened by 10 % of the travel time (for velocity-model errors at long range) it took
real events 150-200 km from a large one whose picks on the stations near them fell within a few
seconds of the large event's late arrivals there, with residuals scattered over +-4 s where a
true fragment's fit within +-0.8 s. The caller (:func:`genie.detect.detect`) gives the explained
picks to B, which they fit within its gate, and releases the rest.

Times are s on the pick table's epoch, coordinates km in the model's frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genie.assign import AssignmentRules, counts, meets


def close_in_time(times_s: np.ndarray, window_s: float, inclusive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(a, b)`` of ``times_s [N]`` (s) less than ``window_s`` apart (at most, when
    ``inclusive``), each pair once, from time-sorted neighbourhoods: the cost follows the pairs,
    not N^2."""
    n = len(times_s)
    order = np.argsort(times_s, kind="stable")
    t = np.asarray(times_s)[order]
    stop = np.searchsorted(t, t + window_s, side="right" if inclusive else "left")
    span = stop - np.arange(n) - 1
    first = np.repeat(np.arange(n), span)
    second = first + 1 + (np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span))
    return order[first], order[second]


def fragment_events(events: pd.DataFrame, assignments: pd.DataFrame, pick_time_s: np.ndarray,
                    travel_times_s: np.ndarray, gate, rules: AssignmentRules,
                    window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Fragments of larger events (module doc).

    ``events``: ``origin_s`` (s); ``assignments``: ``pick_index`` (row of ``pick_time_s``, s),
    ``event_index``, ``station`` and ``phase`` ("P"/"S"), ``probability``; ``travel_times_s
    [E, S, 2]``: each event's predicted P and S travel times (s, statics included) from its
    location to every station; ``gate(tt_s, phase)``: the residual gate (s); ``window_s``: events
    further apart in origin time than this (the longest travel time) are not compared.

    Returns ``parent [E]``: for each event the larger event it is a fragment of, -1 for none; and
    ``residual [A]``: for each assignment of a fragment that its parent explains, the residual (s)
    at the parent, NaN elsewhere."""
    n = len(events)
    parent = np.full(n, -1, dtype=np.int64)
    residual_at_parent = np.full(len(assignments), np.nan)
    if n < 2 or len(assignments) == 0:
        return parent, residual_at_parent
    event = assignments["event_index"].to_numpy(dtype=np.int64)
    station = assignments["station"].to_numpy(dtype=np.int64)
    phase = (assignments["phase"].to_numpy() == "S").astype(np.int64)
    arrival = np.asarray(pick_time_s, dtype="float64")[assignments["pick_index"].to_numpy(dtype=np.int64)]
    probability = assignments["probability"].to_numpy(dtype="float64")
    size = np.bincount(event, minlength=n)
    origin = events["origin_s"].to_numpy(dtype="float64")
    has = np.zeros((n,) + travel_times_s.shape[1:], dtype=bool)
    has[event, station, phase] = True

    # Pairs (smaller, larger) with origins within window_s.
    a, b = close_in_time(origin, window_s, inclusive=True)
    small, large = np.where(size[a] <= size[b], a, b), np.where(size[a] <= size[b], b, a)
    unequal = size[small] < size[large]
    small, large = small[unequal], large[unequal]
    if len(small) == 0:
        return parent, residual_at_parent

    # One row per (pair, assignment of the pair's smaller event).
    by_event = np.argsort(event, kind="stable")
    count = size[small]
    within = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    pair = np.repeat(np.arange(len(small)), count)
    row = by_event[np.repeat(np.r_[0, np.cumsum(size)][small], count) + within]
    b, s, k = large[pair], station[row], phase[row]
    tt = travel_times_s[b, s, k]
    residual = arrival[row] - origin[b] - tt
    explained = ~has[b, s, k] & (np.abs(residual) <= gate(tt, k))
    n_explained = np.bincount(pair, weights=explained, minlength=len(small))
    rest = ~explained
    tally = counts(pair[rest], s[rest], k[rest], len(small))
    total = np.bincount(pair[rest], weights=probability[row][rest], minlength=len(small))
    is_fragment = (2 * n_explained >= count) & ~meets(tally, total, rules)
    # An event that is a fragment of several larger ones goes to the one explaining most of it.
    candidates = np.flatnonzero(is_fragment)
    candidates = candidates[np.lexsort((-n_explained[candidates], small[candidates]))]
    chosen = candidates[np.r_[True, small[candidates][1:] != small[candidates][:-1]]] if len(candidates) else candidates
    parent[small[chosen]] = large[chosen]
    moved = np.isin(pair, chosen) & explained
    residual_at_parent[row[moved]] = residual[moved]
    return parent, residual_at_parent
