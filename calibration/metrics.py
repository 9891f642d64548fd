"""Station-selection metrics (calibration report section 3.2.2), vectorised over events.

A selection is a boolean matrix ``[N, M]`` (event, station). Station coordinates are
``xy [M, 2]`` km in the network frame.

* Spatial inertia ``I = sum_i ||s_i - s_bar||^2`` of the selected stations (km^2) and the mean
  inertia ``I / n``; for P, S and their union.
* Moran's I of the 0/1 selection over all stations with weights ``w_ij = exp(-d_ij / l)``,
  ``w_ii = 0``: ``I = n / sum(w) * z^T W z / z^T z`` with ``z = x - mean(x)``; NaN when every
  station has the same value (all or none selected).
* Pick counts: number of P, of S, and of stations with both (P/S overlap); P/S co-selection:
  the fraction of P stations that also picked S (``s_given_p``) and of the other stations that
  picked S (``s_given_no_p``), NaN where undefined.
* Real-versus-synthetic comparisons of two selections of the same event: intersection size and
  symmetric-difference size, for P, S and the union.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ["n_p", "n_s", "n_ps", "s_given_p", "s_given_no_p", "inertia_p", "inertia_s", "inertia_union", "moran_p",
           "moran_s"]


def inertia(selected: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sum, mean)`` spatial inertia ``[N]`` (km^2) of each row's selected stations; 0 when
    fewer than two stations are selected."""
    b = np.asarray(selected, dtype="float64")
    n = b.sum(1)
    safe = np.maximum(n, 1.0)
    centroid = (b @ xy) / safe[:, None]
    total = b @ (xy**2).sum(1) - n * (centroid**2).sum(1)
    total = np.maximum(total, 0.0)  # round-off can make a single-station set slightly negative
    return total, np.where(n > 0, total / safe, 0.0)


def moran_weights(xy: np.ndarray, length_km: float) -> np.ndarray:
    """``W [M, M]`` with ``w_ij = exp(-d_ij / length_km)`` and a zero diagonal."""
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    w = np.exp(-d / length_km)
    np.fill_diagonal(w, 0.0)
    return w


def morans_i(selected: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Moran's I ``[N]`` of each row of a 0/1 (or real-valued) matrix ``[N, M]``."""
    x = np.asarray(selected, dtype="float64")
    z = x - x.mean(1, keepdims=True)
    num = ((z @ weights) * z).sum(1)
    den = (z**2).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, x.shape[1] / weights.sum() * num / den, np.nan)


def default_moran_length(xy: np.ndarray) -> float:
    """Twice the median nearest-neighbour station distance (km): the scale of "nearby"."""
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return float(2.0 * np.median(d.min(1)))


def selection_metrics(selected_p: np.ndarray, selected_s: np.ndarray, xy: np.ndarray,
                      weights: np.ndarray) -> pd.DataFrame:
    """All per-event metrics (:data:`METRICS`) as a DataFrame ``[N rows]``."""
    union = selected_p | selected_s
    n_p, n_m = selected_p.sum(1), selected_p.shape[1]
    both = (selected_p & selected_s).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s_given_p = np.where(n_p > 0, both / n_p, np.nan)
        s_given_no_p = np.where(n_p < n_m, (selected_s.sum(1) - both) / (n_m - n_p), np.nan)
    return pd.DataFrame({
        "n_p": n_p,
        "n_s": selected_s.sum(1),
        "n_ps": both,
        "s_given_p": s_given_p,
        "s_given_no_p": s_given_no_p,
        "inertia_p": inertia(selected_p, xy)[1],
        "inertia_s": inertia(selected_s, xy)[1],
        "inertia_union": inertia(union, xy)[1],
        "moran_p": morans_i(selected_p, weights),
        "moran_s": morans_i(selected_s, weights),
    })


def set_comparison(real: np.ndarray, synthetic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(|A ∩ B|, |A Δ B|)`` ``[N]`` for boolean selections ``[N, M]`` of the same events."""
    return (real & synthetic).sum(1), (real ^ synthetic).sum(1)


def compare_selections(real_p, real_s, syn_p, syn_s) -> pd.DataFrame:
    """Intersection and symmetric-difference sizes for P, S and the union, per event."""
    out = {}
    for name, a, b in (("p", real_p, syn_p), ("s", real_s, syn_s), ("union", real_p | real_s, syn_p | syn_s)):
        out[f"intersection_{name}"], out[f"symdiff_{name}"] = set_comparison(a, b)
    return pd.DataFrame(out)


def co_selection(selected_p: np.ndarray, selected_s: np.ndarray) -> dict:
    """P/S co-selection of a set of events (pooled over events and stations): ``P(S | P)``,
    ``P(S | no P)`` and the mean within-event Pearson correlation of the P and S selections
    (events where either is constant are skipped)."""
    p, s = np.asarray(selected_p, bool), np.asarray(selected_s, bool)
    x, y = p.astype(float), s.astype(float)
    xc, yc = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    den = np.sqrt((xc**2).sum(1) * (yc**2).sum(1))
    ok = den > 0
    return {"s_given_p": float((p & s).sum() / max(p.sum(), 1)),
            "s_given_no_p": float((s & ~p).sum() / max((~p).sum(), 1)),
            "correlation": float(((xc * yc).sum(1)[ok] / den[ok]).mean()) if ok.any() else float("nan")}
