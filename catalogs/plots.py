"""Figures of a catalog comparison: G-R curves, epicentre map, recall by magnitude, differences.

All functions draw with the non-interactive Agg backend and write the figure atomically.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from catalogs.fileio import atomic_path  # noqa: E402
from catalogs.gutenberg_richter import frequency_magnitude  # noqa: E402

_COLOURS = {"catalog": "tab:red", "reference": "black"}


def save_figure(fig, path, dpi: int = 130) -> None:
    """Write ``fig`` atomically (format from the suffix) and release it from pyplot."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def plot_gutenberg_richter(magnitudes: dict, summaries: dict, path: str | os.PathLike, dm: float = 0.1,
                           labels: dict | None = None) -> None:
    """Cumulative (filled) and incremental (open) frequency-magnitude curves, log scale.

    ``magnitudes`` and ``summaries`` map a name (``catalog``, ``reference``) to magnitudes and to
    :func:`catalogs.compare.gutenberg_richter_summary` output; Mc is drawn as a dashed line and
    the fitted G-R law above it as a thin line.
    """
    labels = labels or {}
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    cycle = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"][1:])
    for name, mags in magnitudes.items():
        # One colour per catalog for its cumulative and incremental curves and its Mc line.
        colour = _COLOURS.get(name) or next(cycle)
        fmd = frequency_magnitude(mags, dm)
        if fmd.empty:
            continue
        s = summaries[name]
        label = f"{labels.get(name, name)} (N={s['n']}"
        if s["b"] is not None:
            label += f", Mc={s['mc']:.1f}, b={s['b']:.2f}±{s['b_sigma']:.2f}"
        label += ")"
        ax.semilogy(fmd["magnitude"], fmd["cumulative"], "o", ms=4, color=colour, label=label)
        nonzero = fmd[fmd["incremental"] > 0]
        ax.semilogy(nonzero["magnitude"], nonzero["incremental"], "s", ms=4, mfc="none", color=colour)
        if s["mc"] is not None:
            ax.axvline(s["mc"], ls="--", lw=1, color=colour)
        if s["b"] is not None:
            m = np.linspace(s["mc"], fmd["magnitude"].max(), 50)
            ax.semilogy(m, 10 ** (s["a"] - s["b"] * m), "-", lw=0.8, color=colour)
    ax.set_xlabel("Magnitude")
    ax.set_ylabel("Number of events (filled: N ≥ M, open: per bin)")
    ax.set_title("Gutenberg-Richter frequency-magnitude distribution")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_map(catalog: pd.DataFrame, reference: pd.DataFrame, path: str | os.PathLike,
             stations: pd.DataFrame | None = None, missed: pd.DataFrame | None = None,
             labels: dict | None = None) -> None:
    """Epicentres of both catalogs (size by magnitude), missed reference events and stations."""
    labels = labels or {}
    fig, ax = plt.subplots(figsize=(6.5, 6.0))

    def size(df):
        m = df["magnitude"].to_numpy(dtype="float64")
        return np.where(np.isfinite(m), 4.0 * 2.0 ** np.clip(m, -1, 6), 6.0)

    ax.scatter(reference["longitude"], reference["latitude"], s=size(reference), facecolors="none",
               edgecolors="0.3", lw=0.6, label=f"{labels.get('reference', 'reference')} ({len(reference)})")
    ax.scatter(catalog["longitude"], catalog["latitude"], s=size(catalog) * 0.5, color="tab:red", alpha=0.6,
               lw=0, label=f"{labels.get('catalog', 'catalog')} ({len(catalog)})")
    if missed is not None and len(missed):
        ax.scatter(missed["longitude"], missed["latitude"], marker="x", s=18, color="tab:blue", lw=0.8,
                   label=f"missed ({len(missed)})")
    if stations is not None and len(stations):
        ax.scatter(stations["longitude"], stations["latitude"], marker="^", s=60, color="tab:green",
                   edgecolors="k", lw=0.5, label=f"stations ({len(stations)})", zorder=5)
        for row in stations.itertuples(index=False):
            code = str(row.station_id).split(".")[1] if "." in str(row.station_id) else str(row.station_id)
            ax.annotate(code, (row.longitude, row.latitude), xytext=(3, 3), textcoords="offset points", fontsize=7)
    lat0 = np.nanmean(np.concatenate([reference["latitude"].to_numpy(), catalog["latitude"].to_numpy()]))
    ax.set_aspect(1.0 / np.cos(np.radians(lat0)))
    ax.set_xlabel("Longitude (°)")
    ax.set_ylabel("Latitude (°)")
    ax.set_title("Epicentres")
    ax.legend(fontsize=8, loc="best")
    ax.grid(True, lw=0.3, alpha=0.5)
    save_figure(fig, path)


def plot_recall(by_magnitude: list[dict], path: str | os.PathLike) -> None:
    """Recall (by reference magnitude) and precision (by catalog magnitude) per magnitude bin,
    with the number of reference events per bin written above each point."""
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    if by_magnitude:
        table = pd.DataFrame(by_magnitude)
        centre = (table["magnitude_min"] + table["magnitude_max"]) / 2
        ok = table["n_reference"] > 0
        ax.plot(centre[ok], table["recall"][ok], "o-", color="black", label="recall (reference magnitude)")
        ok_c = table["n_catalog"] > 0
        ax.plot(centre[ok_c], table["precision"][ok_c], "s--", color="tab:red", mfc="none",
                label="precision (catalog magnitude)")
        for x, y, n in zip(centre[ok], table["recall"][ok], table["n_reference"][ok]):
            ax.annotate(str(n), (x, y), xytext=(0, 5), textcoords="offset points", ha="center", fontsize=7)
    ax.set_ylim(-0.05, 1.1)
    ax.set_xlabel("Magnitude")
    ax.set_ylabel("Fraction")
    ax.set_title("Recall versus magnitude")
    ax.grid(True, lw=0.3, alpha=0.5)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def plot_differences(pairs: pd.DataFrame, path: str | os.PathLike) -> None:
    """Histograms of the matched pairs' time, epicentral, depth and magnitude differences."""
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.0))
    spec = [("dt_s", "Origin time difference (s)"), ("distance_km", "Epicentral distance (km)"),
            ("ddepth_km", "Depth difference (km)"), ("dmagnitude", "Magnitude difference")]
    for ax, (column, label) in zip(axes, spec):
        values = pairs[column].to_numpy(dtype="float64") if len(pairs) else np.zeros(0)
        values = values[np.isfinite(values)]
        if values.size:
            ax.hist(values, bins=40, color="0.4")
            ax.axvline(np.median(values), color="tab:red", lw=1)
        ax.set_xlabel(label)
    axes[0].set_ylabel("Matched pairs")
    fig.suptitle("Catalog minus reference, matched events (red: median)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
