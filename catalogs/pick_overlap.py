"""Scoring an association against known truth by shared picks (the rule of the PyOcto benchmark).

Both sides label the same picks: ``true_event [N]`` (the event that made each pick, -1 for a
false pick) and ``pred_event [N]`` (the event an associator assigned it to, -1 unassociated);
labels are integer codes. A predicted event matches a true one when they share at least
``min_fraction`` of the larger of their two pick sets. With ``min_fraction > 0.5`` a shared set
is more than half of both, so each event matches at most one on the other side: no assignment
problem to solve.

Scores (:func:`overlap_scores`): event precision (matched predicted events over predicted
events), event recall (matched true events over the true events counted, ``counted [E]``:
typically those with enough picks to be found at all), F1, and pick-assignment precision and
recall (picks assigned to the predicted event matched to their own true event, over assigned
picks and over the true picks of counted events). :func:`error_tables` says what the unmatched
events on both sides are made of.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def match_by_picks(true_event, pred_event, min_fraction: float = 0.6) -> pd.DataFrame:
    """Matched pairs: ``pred_event, true_event`` (codes), ``shared`` picks, ``n_pred`` and
    ``n_true`` (each event's picks), sorted by ``pred_event``."""
    if not 0.5 < min_fraction <= 1.0:
        raise ValueError(f"min_fraction must lie in (0.5, 1] for one-to-one matches, got {min_fraction}")
    t = np.asarray(true_event, dtype=np.int64)
    p = np.asarray(pred_event, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"true_event {t.shape} and pred_event {p.shape} must label the same picks")
    both = (t >= 0) & (p >= 0)
    if not both.any():
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in ("pred_event", "true_event", "shared",
                                                                     "n_pred", "n_true")})
    pairs, shared = np.unique(np.stack([p[both], t[both]], axis=1), axis=0, return_counts=True)
    n_pred = np.bincount(p[p >= 0])[pairs[:, 0]]
    n_true = np.bincount(t[t >= 0])[pairs[:, 1]]
    ok = shared >= min_fraction * np.maximum(n_pred, n_true)
    return pd.DataFrame({"pred_event": pairs[ok, 0], "true_event": pairs[ok, 1], "shared": shared[ok],
                         "n_pred": n_pred[ok], "n_true": n_true[ok]})


def overlap_scores(true_event, pred_event, counted: np.ndarray | None = None, min_fraction: float = 0.6) -> dict:
    """Event and pick scores of an association (module doc); ``counted [E]`` bool over the true
    event codes (default: every true event with a pick). Returns ``precision, recall, f1,
    pick_precision, pick_recall, n_pred, n_true, n_matched`` and the matched pairs
    (``pairs``, :func:`match_by_picks`)."""
    t = np.asarray(true_event, dtype=np.int64)
    p = np.asarray(pred_event, dtype=np.int64)
    pairs = match_by_picks(t, p, min_fraction)
    n_events = int(t.max()) + 1 if (t >= 0).any() else 0
    if counted is None:
        counted = np.bincount(t[t >= 0], minlength=n_events) > 0
    counted = np.asarray(counted, dtype=bool)
    predicted = np.unique(p[p >= 0])
    n_pred, n_true = len(predicted), int(counted.sum())
    matched_true = pairs["true_event"].to_numpy()
    precision = len(pairs) / n_pred if n_pred else 1.0
    recall = float(counted[matched_true].sum()) / n_true if n_true else 1.0
    partner = np.full(int(p.max()) + 1 if len(p) and p.max() >= 0 else 0, -1)
    partner[pairs["pred_event"].to_numpy()] = matched_true
    assigned = p >= 0
    correct = assigned & (t >= 0) & (partner[np.where(assigned, p, 0)] == t) if len(partner) else np.zeros(len(p), bool)
    true_picks = (t >= 0) & counted[np.where(t >= 0, t, 0)] if n_events else np.zeros(len(t), bool)
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "pick_precision": float(correct.sum()) / float(assigned.sum()) if assigned.any() else 1.0,
            "pick_recall": float((correct & true_picks).sum()) / float(true_picks.sum()) if true_picks.any() else 1.0,
            "n_pred": n_pred, "n_true": n_true, "n_matched": len(pairs), "pairs": pairs}


def error_tables(true_event, pred_event, counted: np.ndarray | None = None,
                 min_fraction: float = 0.6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the errors of an association are made of (labels as in :func:`overlap_scores`).

    ``false_events``, one row per predicted event that matches no true event: ``pred_event``,
    ``n_picks``, ``n_false`` (picks of no true event), ``n_sources`` (true events among its
    picks), ``main_event`` (the true event holding most of its picks, -1 for none),
    ``main_shared`` (those picks), ``main_size`` (that event's picks) and ``main_matched`` (another
    predicted event matches it: the false one is a fragment or a split half).

    ``missed_events``, one row per counted true event that no predicted event matches:
    ``true_event``, ``n_picks``, ``n_assigned`` (its picks assigned to any predicted event),
    ``n_holders`` (predicted events holding them), ``main_holder`` (the one holding most, -1 for
    none) and ``main_shared``."""
    t = np.asarray(true_event, dtype=np.int64)
    p = np.asarray(pred_event, dtype=np.int64)
    scores = overlap_scores(t, p, counted, min_fraction)
    pairs = scores["pairs"]
    n_events = int(t.max()) + 1 if (t >= 0).any() else 0
    true_size = np.bincount(t[t >= 0], minlength=n_events)
    counted = true_size > 0 if counted is None else np.asarray(counted, dtype=bool)
    both = (t >= 0) & (p >= 0)
    shared_pairs, shared = (np.unique(np.stack([p[both], t[both]], axis=1), axis=0, return_counts=True)
                            if both.any() else (np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)))

    def main_partner(side: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each id on ``side`` (0 predicted, 1 true): the partner sharing most picks (-1 for
        none), that count, and the number of partners."""
        best = np.full(len(ids), -1, dtype=np.int64)
        best_count = np.zeros(len(ids), dtype=np.int64)
        n_partners = np.zeros(len(ids), dtype=np.int64)
        if len(shared) == 0 or len(ids) == 0:
            return best, best_count, n_partners
        order = np.lexsort((-shared, shared_pairs[:, side]))
        own, other, count = shared_pairs[order, side], shared_pairs[order, 1 - side], shared[order]
        heads, first, n = np.unique(own, return_index=True, return_counts=True)
        where = np.minimum(np.searchsorted(heads, ids), len(heads) - 1)
        found = heads[where] == ids
        best[found] = other[first[where[found]]]
        best_count[found] = count[first[where[found]]]
        n_partners[found] = n[where[found]]
        return best, best_count, n_partners

    predicted = np.unique(p[p >= 0])
    false = np.setdiff1d(predicted, pairs["pred_event"].to_numpy())
    main, main_shared, n_sources = main_partner(0, false)
    pred_size = np.bincount(p[p >= 0], minlength=int(p.max()) + 1 if (p >= 0).any() else 0)
    n_false = np.bincount(p[(p >= 0) & (t < 0)], minlength=len(pred_size))
    false_events = pd.DataFrame({"pred_event": false, "n_picks": pred_size[false], "n_false": n_false[false],
                                 "n_sources": n_sources, "main_event": main, "main_shared": main_shared,
                                 "main_size": np.where(main >= 0, true_size[np.maximum(main, 0)], 0) if n_events
                                 else np.zeros(len(false), dtype=np.int64),
                                 "main_matched": np.isin(main, pairs["true_event"].to_numpy()) & (main >= 0)})
    missed = np.setdiff1d(np.flatnonzero(counted), pairs["true_event"].to_numpy())
    holder, holder_shared, n_holders = main_partner(1, missed)
    assigned = np.bincount(t[both], minlength=n_events)
    missed_events = pd.DataFrame({"true_event": missed, "n_picks": true_size[missed], "n_assigned": assigned[missed],
                                  "n_holders": n_holders, "main_holder": holder, "main_shared": holder_shared})
    return false_events, missed_events
