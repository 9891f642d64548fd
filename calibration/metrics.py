"""Station-selection metrics (calibration report section 3.2.2), vectorised over events.

A selection is a boolean matrix ``[N, M]`` (event, station). Station coordinates are
``xy [M, 2]`` km in the network frame.

* Spatial inertia ``I = sum_i ||s_i - s_bar||^2`` of the selected stations (km^2) and the mean
  inertia ``I / n``; for P, S and their union.
* Moran's I of the 0/1 selection over all stations with weights ``w_ij = exp(-d_ij / l)``,
  ``w_ii = 0``: ``I = n / sum(w) * z^T W z / z^T z`` with ``z = x - mean(x)``; NaN when every
  station has the same value (all or none selected).
* Pick counts: number of P, of S, and of stations with both (P/S overlap).
* Real-versus-synthetic comparisons of two selections of the same event: intersection size and
  symmetric-difference size, for P, S and the union.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ["n_p", "n_s", "n_ps", "inertia_p", "inertia_s", "inertia_union", "moran_p", "moran_s"]


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
    return pd.DataFrame({
        "n_p": selected_p.sum(1),
        "n_s": selected_s.sum(1),
        "n_ps": (selected_p & selected_s).sum(1),
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
