"""One-to-one optimal matching of a catalog to a reference catalog.

A pair (catalog event i, reference event j) is admissible when ``|dt| <= max_dt_s`` and the
epicentral distance ``<= max_dist_km``. Among all one-to-one matchings of admissible pairs, the
one returned has the most pairs and, among those, the smallest total cost
``sum (dt / max_dt_s)^2 + (dist / max_dist_km)^2``. Greedy nearest-first matching can lose
pairs in swarms (an event grabbing a neighbour's partner); this cannot.

Solved as a minimum-weight full matching on a sparse bipartite graph (scipy's LAPJVsp): each
event may also pair with its own "unmatched" dummy at a cost larger than any set of real pairs
could save, and dummies of both sides may pair with each other wherever the real pair is
admissible, so a full matching always exists and the graph stays sparse.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from catalogs.projection import epicentral_distance_km
from catalogs.schema import seconds_since

PAIR_COLUMNS = [
    "catalog_index",
    "reference_index",
    "catalog_event_id",
    "reference_event_id",
    "dt_s",
    "distance_km",
    "ddepth_km",
    "dmagnitude",
]


def candidate_pairs(catalog: pd.DataFrame, reference: pd.DataFrame, max_dt_s: float, max_dist_km: float):
    """Admissible pairs as index arrays ``(i, j)`` into ``catalog`` and ``reference`` rows.

    Found by a sorted-time window search: O((n + m) log m + pairs), no n x m matrix.
    """
    epoch = reference["time"].min() if len(reference) else catalog["time"].min()
    tc = seconds_since(catalog["time"], epoch)
    tr = seconds_since(reference["time"], epoch)
    order = np.argsort(tr, kind="stable")
    tr_sorted = tr[order]
    lo = np.searchsorted(tr_sorted, tc - max_dt_s, side="left")
    hi = np.searchsorted(tr_sorted, tc + max_dt_s, side="right")
    counts = hi - lo
    i = np.repeat(np.arange(len(tc)), counts)
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
    j = order[starts + np.arange(counts.sum())] if counts.sum() else np.zeros(0, dtype=np.int64)
    dist = epicentral_distance_km(
        catalog["latitude"].to_numpy()[i],
        catalog["longitude"].to_numpy()[i],
        reference["latitude"].to_numpy()[j],
        reference["longitude"].to_numpy()[j],
    )
    keep = dist <= max_dist_km
    return i[keep], j[keep], (tc[i] - tr[j])[keep], dist[keep]


def match_catalogs(
    catalog: pd.DataFrame, reference: pd.DataFrame, max_dt_s: float = 3.0, max_dist_km: float = 15.0
) -> pd.DataFrame:
    """Optimal one-to-one matching (see module doc).

    Parameters are in seconds and km. Returns one row per matched pair with ``catalog_index``,
    ``reference_index`` (row positions), the two event ids, and the differences catalog minus
    reference: ``dt_s`` (s), ``distance_km`` (epicentral, km), ``ddepth_km`` (km),
    ``dmagnitude``; sorted by reference time.
    """
    n, m = len(catalog), len(reference)
    empty = pd.DataFrame({c: pd.Series(dtype="int64" if c.endswith("index") else "float64") for c in PAIR_COLUMNS})
    if n == 0 or m == 0:
        return empty
    i, j, dt, dist = candidate_pairs(catalog, reference, max_dt_s, max_dist_km)
    if len(i) == 0:
        return empty
    cost = (dt / max_dt_s) ** 2 + (dist / max_dist_km) ** 2
    # Each real pair costs at most 2; leaving both events unmatched must cost more than any
    # total of real pair costs, so that the number of pairs is maximised first.
    unmatched = 2.0 * (min(n, m) + 1)
    # Rows: catalog events then reference dummies; columns: reference events then catalog dummies.
    # Weights are shifted by +1 because sparse zeros are not edges; a full matching always has
    # n + m edges, so the shift does not change the optimum.
    rows = np.concatenate([i, np.arange(n), n + np.arange(m), n + j])
    cols = np.concatenate([j, m + np.arange(n), np.arange(m), m + i])
    weights = np.concatenate([cost, np.full(n, unmatched), np.full(m, unmatched), np.zeros(len(i))]) + 1.0
    graph = coo_matrix((weights, (rows, cols)), shape=(n + m, n + m)).tocsr()
    row_ind, col_ind = min_weight_full_bipartite_matching(graph)
    real = (row_ind < n) & (col_ind < m)
    ci, rj = row_ind[real], col_ind[real]
    pairs = pd.DataFrame({"catalog_index": ci, "reference_index": rj})
    pairs["catalog_event_id"] = catalog["event_id"].to_numpy()[ci]
    pairs["reference_event_id"] = reference["event_id"].to_numpy()[rj]
    epoch = reference["time"].min()
    pairs["dt_s"] = seconds_since(catalog["time"].iloc[ci], epoch) - seconds_since(reference["time"].iloc[rj], epoch)
    pairs["distance_km"] = epicentral_distance_km(
        catalog["latitude"].to_numpy()[ci],
        catalog["longitude"].to_numpy()[ci],
        reference["latitude"].to_numpy()[rj],
        reference["longitude"].to_numpy()[rj],
    )
    pairs["ddepth_km"] = catalog["depth_km"].to_numpy()[ci] - reference["depth_km"].to_numpy()[rj]
    pairs["dmagnitude"] = catalog["magnitude"].to_numpy()[ci] - reference["magnitude"].to_numpy()[rj]
    return pairs.sort_values("reference_index").reset_index(drop=True)
