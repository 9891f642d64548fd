"""The calibration objective (report section 3.2.4): real versus synthetic selection metrics per
magnitude bin.

``f(theta) = sum_metrics mean_bins |metric_real(m) - metric_syn(m; theta)| / (|metric_real(m)| + eps_metric)``

The per-bin table also reports the mean normalised symmetric difference between each real
event's union selection and its synthetic replicates at the same source and magnitude
(``|A_real Δ A_syn| / (|A_real| + 1)``, metric ``symdiff_union``). It is a diagnostic by default
(``use_symdiff=False``): Bernoulli draws make it large even for a perfect generator, so adding
it to ``f`` mostly adds a floor.

Real events are sampled uniformly over magnitude bins (stratified); each gets ``replicates``
synthetic draws. The synthetic draws use a fixed seed (common random numbers), so ``f`` changes
smoothly with ``theta`` and two evaluations at the same ``theta`` agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from calibration.metrics import METRICS, compare_selections, default_moran_length, moran_weights, selection_metrics
from calibration.reference import ReferenceEvents
from generator.detection import sample_selections
from generator.network import Network
from generator.params import GeneratorParams

EPSILON = {"n_p": 1.0, "n_s": 1.0, "n_ps": 1.0, "inertia_p": 10.0, "inertia_s": 10.0, "inertia_union": 10.0,
           "moran_p": 0.1, "moran_s": 0.1}


def magnitude_bins(magnitudes, width: float = 0.5, min_events: int = 5) -> np.ndarray:
    """Bin edges of ``width`` covering the magnitudes; sparse bins at either end are merged into
    their neighbour so every bin has at least ``min_events`` events (when possible)."""
    m = np.asarray(magnitudes, dtype="float64")
    edges = np.arange(np.floor(m.min() / width) * width, m.max() + width, width)
    edges[-1] = max(edges[-1], m.max() + 1e-9)
    counts = np.histogram(m, edges)[0]
    while len(edges) > 2 and counts[0] < min_events:
        edges = np.delete(edges, 1)
        counts = np.histogram(m, edges)[0]
    while len(edges) > 2 and counts[-1] < min_events:
        edges = np.delete(edges, -2)
        counts = np.histogram(m, edges)[0]
    return edges


def stratified_sample(magnitudes, edges, per_bin: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices: up to ``per_bin`` events drawn without replacement from each bin, sorted."""
    m = np.asarray(magnitudes, dtype="float64")
    which = np.clip(np.digitize(m, edges) - 1, 0, len(edges) - 2)
    rows = [rng.permutation(np.flatnonzero(which == b))[:per_bin] for b in range(len(edges) - 1)]
    return np.sort(np.concatenate(rows))


@dataclass
class Objective:
    """Callable ``f(params) -> float`` comparing real and synthetic selections (module doc)."""

    network: Network
    reference: ReferenceEvents
    edges: np.ndarray
    replicates: int = 5
    seed: int = 0
    metrics: tuple = tuple(METRICS)
    use_symdiff: bool = False
    moran_length_km: float | None = None
    min_stations: int = 3
    _weights: np.ndarray = field(init=False, repr=False)
    _bin: np.ndarray = field(init=False, repr=False)
    _real: pd.DataFrame = field(init=False, repr=False)

    def __post_init__(self):
        xy = self.network.xyz[:, :2]
        self.moran_length_km = self.moran_length_km or default_moran_length(xy)
        self._weights = moran_weights(xy, self.moran_length_km)
        self._bin = np.clip(np.digitize(self.reference.magnitudes, self.edges) - 1, 0, len(self.edges) - 2)
        real = selection_metrics(self.reference.selected_p, self.reference.selected_s, xy, self._weights)
        self._real = real.groupby(self._bin).mean()

    @classmethod
    def from_reference(cls, network: Network, reference: ReferenceEvents, per_bin: int = 100,
                       bin_width: float = 0.5, replicates: int = 5, seed: int = 0, **kwargs) -> "Objective":
        """Stratified sample of ``reference`` (``per_bin`` events per magnitude bin)."""
        edges = magnitude_bins(reference.magnitudes, bin_width)
        rows = stratified_sample(reference.magnitudes, edges, per_bin, np.random.default_rng(seed))
        kwargs.setdefault("min_stations", int(reference.summary.get("min_stations", 1)))
        return cls(network, reference.subset(rows), edges, replicates=replicates, seed=seed, **kwargs)

    def synthetic(self, params: GeneratorParams):
        """Synthetic selections ``[N * replicates, M]`` (P, S) at the reference sources, replicate
        ``r`` of event ``i`` at row ``i * replicates + r``."""
        src = np.repeat(self.reference.sources, self.replicates, axis=0)
        mag = np.repeat(self.reference.magnitudes, self.replicates)
        sel = sample_selections(self.network, src, mag, params, np.random.default_rng(self.seed))
        return sel.p, sel.s

    def evaluate(self, params: GeneratorParams) -> tuple[float, pd.DataFrame]:
        """The objective and its per-metric, per-bin table (``metric, bin, magnitude_min,
        magnitude_max, real, synthetic, term``)."""
        syn_p, syn_s = self.synthetic(params)
        xy = self.network.xyz[:, :2]
        bins = np.repeat(self._bin, self.replicates)
        # Real events were kept only when picked on >= min_stations stations; condition the
        # synthetic replicates the same way, or small-magnitude bins are compared unfairly.
        seen = (syn_p | syn_s).sum(1) >= self.min_stations
        syn = selection_metrics(syn_p, syn_s, xy, self._weights)[seen].groupby(bins[seen]).mean()
        rows = []
        for metric in self.metrics:
            real, synthetic = self._real[metric], syn[metric].reindex(self._real.index)
            term = (real - synthetic).abs() / (real.abs() + EPSILON[metric])
            # Undefined synthetic metric where the real one is defined: a full penalty, so that
            # degenerate selections (all or no stations) are not rewarded.
            term = term.where(synthetic.notna() | real.isna(), 1.0)
            rows.append(pd.DataFrame({"metric": metric, "bin": real.index, "real": real.to_numpy(),
                                      "synthetic": synthetic.to_numpy(), "term": term.to_numpy()}))
        real_p = np.repeat(self.reference.selected_p, self.replicates, axis=0)
        real_s = np.repeat(self.reference.selected_s, self.replicates, axis=0)
        cmp = compare_selections(real_p, real_s, syn_p, syn_s)
        normalised = cmp["symdiff_union"] / ((real_p | real_s).sum(1) + 1.0)
        per_bin = normalised[seen].groupby(bins[seen]).mean().reindex(self._real.index)
        rows.append(pd.DataFrame({"metric": "symdiff_union", "bin": per_bin.index, "real": 0.0,
                                  "synthetic": per_bin.to_numpy(), "term": per_bin.to_numpy()}))
        table = pd.concat(rows, ignore_index=True)
        table.insert(2, "magnitude_min", self.edges[table["bin"].to_numpy()])
        table.insert(3, "magnitude_max", self.edges[table["bin"].to_numpy() + 1])
        # A bin where a metric is undefined for both (e.g. Moran's I with every station selected) is skipped.
        summed = list(self.metrics) + (["symdiff_union"] if self.use_symdiff else [])
        value = float(table[table["metric"].isin(summed)].groupby("metric", sort=False)["term"].mean().sum())
        return value, table

    def __call__(self, params: GeneratorParams) -> float:
        return self.evaluate(params)[0]
