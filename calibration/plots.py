"""Calibration figures: convergence, real versus synthetic metrics per magnitude bin (before and
after), and real versus synthetic station selections of matched events (report Fig. 3.12-3.14)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from catalogs.plots import save_figure  # noqa: E402

_LABELS = {"n_p": "P picks", "n_s": "S picks", "n_ps": "stations with P and S", "inertia_p": "mean inertia P (km²)",
           "inertia_s": "mean inertia S (km²)", "inertia_union": "mean inertia P∪S (km²)", "moran_p": "Moran's I, P",
           "moran_s": "Moran's I, S", "symdiff_union": "|real Δ synthetic| / (|real| + 1)"}


def plot_convergence(rounds: dict, path: str | os.PathLike) -> None:
    """Objective of every evaluation and the best so far, per round (timing round on its own axis)."""
    spatial = [(k, v) for k, v in rounds.items() if k != "round3" and v.get("y")]
    fig, axes = plt.subplots(1, 2 if "round3" in rounds else 1, figsize=(11 if "round3" in rounds else 6.5, 4),
                             squeeze=False)
    ax = axes[0, 0]
    start = 0
    for name, r in spatial:
        y = np.asarray(r["y"])
        calls = np.arange(start, start + len(y))
        ax.plot(calls, y, ".", alpha=0.5, label=f"{name} evaluations")
        start += len(y)
    all_y = np.concatenate([np.asarray(r["y"]) for _, r in spatial]) if spatial else np.zeros(0)
    if all_y.size:
        ax.plot(np.arange(all_y.size), np.minimum.accumulate(all_y), "k-", label="best so far")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("objective f(θ)")
    ax.set_title("Spatial parameters (rounds 1-2)")
    ax.legend(fontsize=8)
    ax.grid(True, lw=0.3)
    if "round3" in rounds:
        y = np.asarray(rounds["round3"]["y"])
        ax = axes[0, 1]
        ax.plot(y, ".", alpha=0.5, label="evaluations")
        ax.plot(np.minimum.accumulate(y), "k-", label="best so far")
        ax.set_xlabel("evaluation")
        ax.set_ylabel("Wasserstein distance of residuals (s)")
        ax.set_title("Timing parameters (round 3)")
        ax.legend(fontsize=8)
        ax.grid(True, lw=0.3)
    save_figure(fig, path, dpi=120)


def plot_metrics_by_bin(before: pd.DataFrame, after: pd.DataFrame, path: str | os.PathLike) -> None:
    """One panel per metric: real (black), synthetic before (grey dashed) and after (red) per bin."""
    metrics = list(dict.fromkeys(before["metric"]))
    cols = 3
    rows = int(np.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.ravel(), metrics):
        b = before[before["metric"] == metric]
        a = after[after["metric"] == metric]
        centre = (b["magnitude_min"] + b["magnitude_max"]) / 2
        if metric != "symdiff_union":
            ax.plot(centre, b["real"], "ko-", label="real")
        ax.plot(centre, b["synthetic"], "s--", color="0.5", mfc="none", label="synthetic, default")
        ax.plot(centre, a["synthetic"].to_numpy(), "^-", color="tab:red", label="synthetic, calibrated")
        ax.set_title(_LABELS.get(metric, metric), fontsize=9)
        ax.set_xlabel("magnitude")
        ax.grid(True, lw=0.3)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
