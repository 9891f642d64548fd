"""Figures of the detection model: one event's selection maps and real-versus-synthetic panels.

Drawn in the network's local frame (km); written atomically with the Agg backend.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from catalogs.plots import save_figure  # noqa: E402
from generator.detection import (  # noqa: E402
    Selections,
    normalised_distance,
    pdist_km,
    radial_function,
    sample_ellipses,
    sample_selections,
)
from generator.network import Network  # noqa: E402
from generator.params import GeneratorParams  # noqa: E402


def _probability_field(network: Network, source, magnitude, params, rng, grid_n=120):
    """Noise-free selection probability on a grid for P and S (the ellipse of this event)."""
    x0, x1, y0, y1 = network.region(params.region_padding_km)
    gx, gy = np.meshgrid(np.linspace(x0, x1, grid_n), np.linspace(y0, y1, grid_n))
    points = np.column_stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)])
    ell_p, ell_s = sample_ellipses(1, params, rng)
    base = pdist_km([magnitude], params) / 3.0
    fields = []
    for factor, ell in ((params.radial_factor_p, ell_p), (params.radial_factor_s, ell_s)):
        u = normalised_distance(np.asarray(source, float)[None], points, factor * base, ell, params)
        fields.append(((1.0 - params.miss_pick_rate) * radial_function(u, 1.0, params.p_exp)).reshape(gx.shape))
    return (x0, x1, y0, y1), fields


def _panel(ax, network, selected, prob, source, extent, field, title):
    if field is not None:
        im = ax.imshow(field, origin="lower", extent=extent, cmap="Greys", vmin=0, vmax=1, alpha=0.8)
    else:
        im = None
    x, y = network.xyz[:, 0], network.xyz[:, 1]
    colour = prob if prob is not None else np.where(selected, 1.0, 0.0)
    ax.scatter(x, y, c=colour, cmap="viridis", vmin=0, vmax=1, marker="^", s=70, edgecolors="k", lw=0.5, zorder=3)
    ax.scatter(x[selected], y[selected], marker="o", s=220, facecolors="none", edgecolors="tab:red", lw=1.5, zorder=4)
    ax.plot(source[0], source[1], "*", color="tab:orange", ms=16, mec="k", zorder=5)
    ax.set_title(f"{title}: {int(selected.sum())}/{len(selected)} stations", fontsize=10)
    ax.set_aspect("equal")
    ax.set_xlabel("x (km)")
    return im


def plot_selection(network: Network, source, magnitude: float, params: GeneratorParams, path: str | os.PathLike,
                   rng: np.random.Generator | int = 0) -> Selections:
    """P and S panels for one event (report Fig. 3.7 style): the noise-free selection probability
    (grey), each station's probability including the correlated noise (colour), the stations
    picked (red circles) and the epicentre (star). Returns the drawn selections."""
    rng = np.random.default_rng(rng)
    source = np.asarray(source, dtype="float64")
    extent, fields = _probability_field(network, source, magnitude, params, np.random.default_rng(rng.integers(1 << 31)))
    sel = sample_selections(network, source[None], [magnitude], params, rng)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, phase, chosen, prob, field in zip(axes, "PS", (sel.p[0], sel.s[0]), (sel.prob_p[0], sel.prob_s[0]), fields):
        im = _panel(ax, network, chosen, prob, source, extent, field, f"{phase} selection, M {magnitude:.1f}")
    axes[0].set_ylabel("y (km)")
    fig.colorbar(im, ax=axes, shrink=0.8, label="selection probability")
    fig.suptitle(f"Synthetic station selection (depth {source[2]:.1f} km; lambda_noise={params.lambda_noise:g}, "
                 f"sigma_noise={params.sigma_noise:g} km, p_exp={params.p_exp:g})", fontsize=10)
    save_figure(fig, path, dpi=120)
    return sel


def plot_real_vs_synthetic(network: Network, source, magnitude: float, real_p, real_s, params: GeneratorParams,
                           path: str | os.PathLike, rng: np.random.Generator | int = 0, title: str = "") -> Selections:
    """Real P and S station selections of one event beside a synthetic draw at the same source
    and magnitude (report Fig. 3.8 / 3.12 style). ``real_p``/``real_s``: boolean ``[M]`` or ids."""
    rng = np.random.default_rng(rng)
    source = np.asarray(source, dtype="float64")

    def mask(sel):
        sel = np.asarray(sel)
        return sel.astype(bool) if sel.dtype == bool and len(sel) == len(network) else np.isin(network.ids, sel)

    real = (mask(real_p), mask(real_s))
    syn = sample_selections(network, source[None], [magnitude], params, rng)
    fig, axes = plt.subplots(2, 2, figsize=(10, 10))
    for row, phase in enumerate("PS"):
        _panel(axes[row, 0], network, real[row], None, source, None, None, f"real {phase}")
        chosen = (syn.p if phase == "P" else syn.s)[0]
        prob = (syn.prob_p if phase == "P" else syn.prob_s)[0]
        _panel(axes[row, 1], network, chosen, prob, source, None, None, f"synthetic {phase}")
        axes[row, 0].set_ylabel("y (km)")
    fig.suptitle(title or f"Real versus synthetic selections, M {magnitude:.1f}, depth {source[2]:.1f} km", fontsize=11)
    save_figure(fig, path, dpi=120)
    return syn
