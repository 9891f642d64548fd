"""Calibration figures: convergence, real versus synthetic metrics per magnitude bin (before and
after), and real versus synthetic station selections of matched events (report Fig. 3.12-3.14);
parameter profiles with bootstrap intervals, picks per station-hour, and timing residual
distributions with their tails."""

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
           "moran_s": "Moran's I, S", "symdiff_union": "|real Δ synthetic| / (|real| + 1)",
           "s_given_p": "P(S | P) per event", "s_given_no_p": "P(S | no P) per event",
           "brier": "Brier score (black: spatially blind)"}


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


def plot_profiles(profile: dict, best: dict, intervals: dict, identifiability: dict, path: str | os.PathLike) -> None:
    """One panel per parameter: the objective along its bound (others at the optimum), the
    optimum (red line) and its bootstrap 5-95 % interval (shaded); unidentified ones titled so."""
    names = list(profile)
    cols = 4
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        ax.plot(profile[name]["x"], profile[name]["f"], "k.-")
        if name in intervals:
            ax.axvspan(intervals[name]["low"], intervals[name]["high"], color="tab:red", alpha=0.2, lw=0)
        ax.axvline(best[name], color="tab:red")
        ok = identifiability.get(name, {}).get("identified", True)
        ax.set_title(name + ("" if ok else " (not identified: prior)"), fontsize=8)
        ax.set_ylabel("f", fontsize=8)
        ax.grid(True, lw=0.3)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_pick_budget(stations: pd.DataFrame, path: str | os.PathLike, before_label: str = "synthetic, before") -> None:
    """Picks per station-hour: real, synthetic before and after, one group of bars per station."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(stations)), 3.6))
    x = np.arange(len(stations))
    ax.bar(x - 0.27, stations["real"], 0.27, color="k", label="real")
    ax.bar(x, stations["synthetic_before"], 0.27, color="0.6", label=before_label)
    ax.bar(x + 0.27, stations["synthetic"], 0.27, color="tab:red", label="synthetic, calibrated")
    ax.set_xticks(x, [str(s).split(".")[1] if "." in str(s) else str(s) for s in stations["station_id"]],
                  rotation=60, fontsize=7)
    ax.set_ylabel("picks per hour")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", lw=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_residuals(real: np.ndarray, synthetic: dict, path: str | os.PathLike, window_s: float = 1.0) -> None:
    """Histograms (log counts, so the tails show) of real timing residuals ``[N, M, 2]`` (NaN
    where not picked) against synthetic errors ``{label: [N, M, 2]}`` at the same picks, P and S."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    bins = np.linspace(-window_s, window_s, 41)
    for k, (ax, phase) in enumerate(zip(axes, "PS")):
        mask = np.isfinite(real[..., k])
        ax.hist(real[..., k][mask], bins, histtype="stepfilled", color="0.8", label="real")
        for (label, err), colour in zip(synthetic.items(), ("0.4", "tab:red", "tab:blue")):
            ax.hist(err[..., k][mask], bins, histtype="step", color=colour, lw=1.3, label=label)
        ax.set_yscale("log")
        ax.set_xlabel(f"{phase} residual (s)")
        ax.grid(True, lw=0.3)
    axes[0].set_ylabel("picks")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
