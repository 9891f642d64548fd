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
picks and over the true picks of counted events).
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
