"""Figures of the self-training loop."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from catalogs.plots import plt, save_figure


def plot_rounds(rounds: pd.DataFrame, path: str | os.PathLike, thresholds=(1.0, 1.5, 2.0)) -> None:
    """Four panels against the round number (``rounds.csv`` of :mod:`genie.selftrain`): events
    (all, held-out, confident, shifted-pick events), unexplained coherent picks and their chance
    level, held-out recall
    per magnitude threshold and count ratio, synthetic validation F1 and mean |residual|."""
    k = rounds["round"].to_numpy()
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), sharex=True)
    fig.subplots_adjust(wspace=0.5, hspace=0.15)
    ax = axes[0, 0]
    for col, label in (("events", "events"), ("confident_events", "confident"), ("heldout_events", "held-out"),
                       ("heldout_shifted_events", "held-out, shifted picks")):
        if col in rounds:
            ax.plot(k, rounds[col], "o-", label=label)
    ax.set_ylabel("events")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.plot(k, rounds["unexplained_coherent_picks"], "o-", label="all")
    ax.plot(k, rounds["unexplained_coherent_chance"], "o:", color="C0", label="all, by chance (shifted)")
    ax.plot(k, rounds["heldout_unexplained_coherent_picks"], "s-", color="C1", label="held-out")
    ax.plot(k, rounds["heldout_unexplained_coherent_chance"], "s:", color="C1", label="held-out, by chance")
    ax.set_ylabel("unexplained coherent picks")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    if "heldout_recall" in rounds:
        ax.plot(k, rounds["heldout_recall"], "o-", label="recall, all")
        for m in thresholds:
            col = f"heldout_recall_m{m:g}"
            if col in rounds:
                ax.plot(k, rounds[col], "o-", label=f"recall, M ≥ {m:g}")
        twin = ax.twinx()
        twin.plot(k, rounds["heldout_count_ratio"], "k--", label="count ratio")
        twin.set_ylabel("count ratio (held-out)")
        twin.legend(fontsize=8, loc="lower right")
    ax.set_ylabel("held-out recall")
    ax.legend(fontsize=8, loc="lower left")
    ax = axes[1, 1]
    ax.plot(k, rounds["validation_f1"], "o-", label="synthetic validation F1")
    ax.set_ylabel("F1")
    twin = ax.twinx()
    twin.plot(k, rounds["mean_abs_residual_s"], "k--", label="mean |residual| (s)")
    twin.set_ylabel("mean |residual| (s)")
    ax.legend(fontsize=8, loc="lower left")
    twin.legend(fontsize=8, loc="lower right")
    for ax in axes[1]:
        ax.set_xlabel("round")
        ax.set_xticks(np.unique(k))
    for ax in axes.ravel():
        ax.grid(True, lw=0.3, alpha=0.5)
    fig.suptitle("Self-training rounds")
    save_figure(fig, path)
