"""Competitive assignment of picks to candidate sources, solved exactly as an integer program.

Input: candidate entries ``(source, pick, station, phase, probability)``, typically the one or
two most likely picks per source, station and phase from the association head. Sources that share
a candidate pick form a connected group; each group is solved jointly (GENIE's competitive
assignment) with :func:`scipy.optimize.milp` (HiGHS):

* binary ``x_e`` (entry e is kept), ``y_d`` (source d is kept), ``z_ds`` (source d uses station s),
  ``w_ds`` (source d has both a P and an S pick at station s);
* maximise ``sum_e p_e x_e - source_cost * sum_d y_d``;
* each pick in at most one kept entry (one source and one phase);
* at most one P and one S per source and station;
* ``x_e <= y_d``, and a kept source has at least ``min_picks`` picks, ``min_p_picks`` P picks,
  ``min_stations`` stations, ``min_p_and_s_stations`` stations with both a P and an S pick
  and ``min_probability_sum`` summed probability.

So the halves of a split event cannot both survive with shared picks, and a source that only
explains picks better explained by another disappears. Groups without any conflict (every pick a
candidate of one entry only, one entry per source, station and phase) are decided without a
solver, all at once. ``source_cost`` breaks ties towards fewer sources; it does not replace the
count thresholds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix, csr_matrix, vstack
from scipy.sparse.csgraph import connected_components

logger = logging.getLogger(__name__)


@dataclass
class AssignmentRules:
    """Thresholds of a kept source (see module doc)."""

    min_picks: int = 6
    min_stations: int = 4
    min_p_picks: int = 3
    min_p_and_s_stations: int = 0
    min_probability_sum: float = 0.0
    source_cost: float = 0.5
    time_limit_s: float = 10.0


def _dense_codes(*keys: np.ndarray) -> np.ndarray:
    """Consecutive integer codes of the distinct rows of the given key columns."""
    stacked = np.stack([np.asarray(k, dtype=np.int64) for k in keys], axis=1)
    return np.unique(stacked, axis=0, return_inverse=True)[1].ravel()


def counts(source, station, phase, n_sources: int) -> dict:
    """Per source ``[n_sources]``: picks, P picks, stations, stations with both P and S."""
    source, station, phase = (np.asarray(a, dtype=np.int64) for a in (source, station, phase))
    width = int(station.max()) + 1 if len(station) else 1
    key = source * width + station
    pairs, has_p, has_s = np.unique(key), np.unique(key[phase == 0]), np.unique(key[phase == 1])
    both = np.intersect1d(has_p, has_s)
    return {"n": np.bincount(source, minlength=n_sources), "n_p": np.bincount(source[phase == 0], minlength=n_sources),
            "n_stations": np.bincount(pairs // width, minlength=n_sources),
            "n_p_and_s": np.bincount(both // width, minlength=n_sources)}


def meets(c: dict, total: np.ndarray, rules: AssignmentRules) -> np.ndarray:
    """The sources whose counts ``c`` (:func:`counts`) and summed probability meet the rules."""
    return ((c["n"] >= rules.min_picks) & (c["n_p"] >= rules.min_p_picks) & (c["n_stations"] >= rules.min_stations)
            & (c["n_p_and_s"] >= rules.min_p_and_s_stations) & (total >= rules.min_probability_sum))


def _feasible(source, phase, station, prob, n_sources, rules: AssignmentRules) -> np.ndarray:
    """``[n_sources]``: the source meets every threshold with all its entries."""
    total = np.bincount(source, weights=prob, minlength=n_sources)
    return meets(counts(source, station, phase, n_sources), total, rules) & (total - rules.source_cost > 0)


def _solve_group(source, pick, station, phase, prob, rules: AssignmentRules) -> np.ndarray | None:
    """Keep-mask of the entries of one connected group by MILP; None if the solver fails."""
    n = len(source)
    d = _dense_codes(source)
    m = int(d.max()) + 1
    ds = _dense_codes(d, station)
    n_z = int(ds.max()) + 1
    # variables: x (entries) | y (sources) | z (source uses station) | w (station has P and S)
    cols = n + m + 2 * n_z
    entries, ones = np.arange(n), np.ones(n)
    y_col, z_col, w_col = n + np.arange(m), n + m + np.arange(n_z), n + m + n_z + np.arange(n_z)
    z_owner = np.zeros(n_z, dtype=np.int64)
    z_owner[ds] = d
    blocks, upper = [], []

    def at_most(row, col, val, bound):
        """Rows ``sum val * var <= bound``, one per distinct ``row`` code."""
        n_rows = int(row.max()) + 1
        blocks.append(coo_matrix((val, (row, col)), shape=(n_rows, cols)))
        upper.append(np.full(n_rows, float(bound)))

    at_most(_dense_codes(pick), entries, ones, 1)  # a pick in at most one entry
    at_most(_dense_codes(d, station, phase), entries, ones, 1)  # one P and one S per source and station
    at_most(np.r_[entries, entries], np.r_[entries, n + d], np.r_[ones, -ones], 0)  # x_e <= y_d
    at_most(np.r_[ds, np.arange(n_z)], np.r_[entries, z_col], np.r_[-ones, np.ones(n_z)], 0)  # z_ds <= sum x
    is_p = phase == 0
    for k in (0, 1):  # w_ds <= sum of the (d, s) entries of phase k
        sel = phase == k
        at_most(np.r_[ds[sel], np.arange(n_z)], np.r_[entries[sel], w_col], np.r_[-ones[sel], np.ones(n_z)], 0)
    for threshold, row, col, val in ((rules.min_picks, d, entries, ones),
                                     (rules.min_p_picks, d[is_p], entries[is_p], ones[is_p]),
                                     (rules.min_stations, z_owner, z_col, np.ones(n_z)),
                                     (rules.min_p_and_s_stations, z_owner, w_col, np.ones(n_z)),
                                     (rules.min_probability_sum, d, entries, prob)):
        if threshold > 0:  # threshold * y_d - sum(...) <= 0
            at_most(np.r_[row, np.arange(m)], np.r_[col, y_col], np.r_[-val, np.full(m, float(threshold))], 0)
    matrix = vstack([b.tocsr() for b in blocks]).tocsr()
    cost = np.r_[-prob, np.full(m, rules.source_cost), np.zeros(2 * n_z)]
    result = milp(cost, constraints=LinearConstraint(matrix, -np.inf, np.concatenate(upper)),
                  integrality=np.ones(cols), bounds=Bounds(0, 1), options={"time_limit": rules.time_limit_s})
    if result.x is None:
        return None
    return result.x[:n] > 0.5


def resolve(source, pick, station, phase, prob, rules: AssignmentRules) -> np.ndarray:
    """Keep-mask ``[n]`` of candidate entries (arrays ``[n]``: source index, pick index, station
    index, phase 0 P / 1 S, association probability) by the module's integer program."""
    source, pick, station, phase = (np.asarray(a, dtype=np.int64) for a in (source, pick, station, phase))
    prob = np.asarray(prob, dtype="float64")
    n = len(source)
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    n_src = int(source.max()) + 1
    # A source that misses a threshold with all its entries is never kept, so its entries are
    # never kept either: dropping them first changes no solution, and frees the picks they
    # shared (most weak candidate sources end here, before any group is formed).
    live = np.flatnonzero(_feasible(source, phase, station, prob, n_src, rules)[source])
    if len(live) < n:
        keep[live] = resolve(source[live], pick[live], station[live], phase[live], prob[live], rules)
        return keep
    pick_code = _dense_codes(pick)
    n_pick = int(pick_code.max()) + 1
    # Sources and picks as nodes of one graph; an entry links its source and its pick.
    graph = csr_matrix((np.ones(n), (source, n_src + pick_code)), shape=(n_src + n_pick, n_src + n_pick))
    _, label = connected_components(graph, directed=False)
    group = label[source]
    shared_pick = np.bincount(pick_code, minlength=n_pick)[pick_code] > 1
    dsk = _dense_codes(source, station, phase)
    shared_slot = np.bincount(dsk)[dsk] > 1
    conflicted = np.zeros(label.max() + 1, dtype=bool)
    conflicted[group[shared_pick | shared_slot]] = True

    simple = ~conflicted[group]
    ok = _feasible(source[simple], phase[simple], station[simple], prob[simple], n_src, rules)
    keep[simple] = ok[source[simple]]

    hard = np.flatnonzero(~simple)
    order = np.argsort(group[hard], kind="stable")
    hard = hard[order]
    bounds = np.flatnonzero(np.diff(group[hard])) + 1
    # One solve per connected group of competing sources (a handful of sources each).
    for rows in np.split(hard, bounds) if len(hard) else []:
        chosen = _solve_group(source[rows], pick[rows], station[rows], phase[rows], prob[rows], rules)
        if chosen is None:
            logger.warning("assignment: the integer program of a group of %d sources failed; keeping the most "
                           "probable entry per pick", len(np.unique(source[rows])))
            best = rows[np.lexsort((-prob[rows], pick[rows]))]
            first = best[np.r_[True, np.diff(pick[best]) != 0]]
            chosen = np.isin(rows, first)
            sub = rows[chosen]
            ok = _feasible(source[sub], phase[sub], station[sub], prob[sub], n_src, rules)
            chosen[chosen] = ok[source[sub]]
        keep[rows] = chosen
    return keep
