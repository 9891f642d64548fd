"""Sizing a model to its network: which station-source pairs the product graph holds, how many
source nodes, and how wide the labels and pick kernels are.

The rule (applied by :func:`size_model` when training a new model; a saved model keeps its sizes):

1. **Detection range.** The product graph keeps the (station, source) pairs within ``D`` km
   epicentral distance: the distance within which 95 % (``RANGE_QUANTILE``) of the generator's
   detectable events (its magnitude law, detection law with noise and ellipses, events uniform in
   its region and depths; picked at 4 stations or more) have their 8 nearest picking stations
   (all of them when fewer pick), plus one label width of margin (an event lies up to about half
   a node spacing from its node). It is not the range of the largest magnitude: an M 5 is picked
   everywhere (``pdist`` reaches its 500 km cap), which would keep every pair on any network,
   while its 8 nearest stations detect it as well as all of them would (the detection
   thresholds ask for 4 to 6, twice that is 8). The association head still looks at every
   station. When ``D`` keeps at least
   ``FULL_FRACTION`` (80 %) of the pairs, the product is the full one: its factor-graph
   aggregation is about twice as fast per node as a sparse one, so cutting fewer pairs saves nothing.
2. **Source nodes.** Nodes are spaced about one spatial label width ``sigma`` apart, so that the
   Gaussian labels are resolved: ``n = A * max(H, sigma) / sigma^3`` for the padded region's area
   ``A`` (km^2) and depth range ``H`` (km), and never fewer than the configuration's
   ``n_sources`` (unless the budget cuts them).
3. **Budget.** A step costs in proportion to the product nodes, ``n`` times the mean number of
   stations within ``D`` of a point of the region. Where that exceeds ``product_budget``, ``n`` is
   cut to the budget and ``sigma`` widened to the spacing those nodes reach; the pick kernels
   (``kernel_s``, ``wide_kernel_s``), the time label width (``label_sigma_s``) and the step
   between windows (``offset_step_s``, kept at the same fraction of it) widen by the same factor:
   an event between coarser nodes misses their predicted arrivals, and the origin time that fits
   their moveout best, by proportionally more.

On the Salton Sea network (16 stations, ~100 km) the rule keeps ``small`` as configured (300
nodes, 8 km, every pair); on a 100-station network over 300 km x 300 km it gives a sparse graph
with wider labels (README, "A new network").
"""

from __future__ import annotations

import logging

import numpy as np

from generator.detection import sample_selections
from generator.events import gutenberg_richter
from generator.network import Network
from generator.params import GeneratorParams

logger = logging.getLogger(__name__)

RANGE_QUANTILE = 0.95
RANGE_EVENTS = 4000  # events simulated to find the range (the quantile moves < 1 % between seeds)
RANGE_STATIONS = 8  # an event seen at its 8 nearest picking stations is detected as by all (thresholds ask 4-6)
RANGE_MIN_STATIONS = 4  # events picked at fewer stations cannot be detected (small's min_stations)
MIN_SOURCES = 50  # a budget never cuts the source graph below this
FULL_FRACTION = 0.8  # a range keeping this share of the pairs gives the full product (faster per node)


def region_box(network: Network, padding_km: float, depth_min_km: float, depth_max_km: float):
    """``(x0, x1, y0, y1, z0, z1)`` km: the station box padded horizontally, and the depths."""
    x, y = network.xyz[:, 0], network.xyz[:, 1]
    return (x.min() - padding_km, x.max() + padding_km, y.min() - padding_km, y.max() + padding_km,
            depth_min_km, depth_max_km)


def detection_range_km(network: Network, params: GeneratorParams, bounds, seed: int = 0) -> float:
    """Epicentral distance (km) within which :data:`RANGE_QUANTILE` of the generator's detectable
    events (picked at :data:`RANGE_MIN_STATIONS` stations or more) have their
    :data:`RANGE_STATIONS` nearest picking stations (all of them when fewer pick), for events
    uniform in ``bounds = (x0, x1, y0, y1, z0, z1)`` with the generator's magnitude law."""
    rng = np.random.default_rng(seed)
    lo, hi = np.array(bounds[0::2]), np.array(bounds[1::2])
    sources = lo + rng.random((RANGE_EVENTS, 3)) * (hi - lo)
    magnitudes = gutenberg_richter(RANGE_EVENTS, params.b_value, params.magnitude_min, params.magnitude_max, rng)
    sel = sample_selections(network, sources, magnitudes, params, rng)
    picked = sel.p | sel.s
    distance = network.epicentral_km(sources)
    n_picked = picked.sum(1)
    detectable = n_picked >= RANGE_MIN_STATIONS
    if not detectable.any():
        return float(distance.max())
    ordered = np.sort(np.where(picked, distance, np.inf)[detectable], axis=1)
    needed = ordered[np.arange(len(ordered)), np.minimum(n_picked[detectable], RANGE_STATIONS) - 1]
    return float(np.quantile(needed, RANGE_QUANTILE))


def mean_stations_within(network: Network, bounds, distance_km: float, n_points: int = 2000, seed: int = 0) -> float:
    """Mean number of stations within ``distance_km`` of points uniform in the box ``bounds``."""
    rng = np.random.default_rng(seed)
    lo, hi = np.array(bounds[0:4:2]), np.array(bounds[1:4:2])
    points = lo + rng.random((n_points, 2)) * (hi - lo)
    distance = network.epicentral_km(points)
    return float((distance <= distance_km).sum(1).mean())


def size_model(values: dict, network: Network, params: GeneratorParams) -> dict:
    """Model settings ``values`` (a complete :class:`~genie.model.ModelConfig` dict) sized to
    ``network`` by the rule of the module doc. A ``max_distance_km`` already set is kept; a
    ``product_budget`` of None keeps the node count and widths as given."""
    out = dict(values)
    bounds = region_box(network, out["padding_km"], out["depth_min_km"], out["depth_max_km"])
    sigma = float(out["label_sigma_km"])
    reach = float(np.hypot(bounds[1] - bounds[0], bounds[3] - bounds[2]))
    detected = detection_range_km(network, params, bounds) if out.get("max_distance_km") is None else None

    def pair_range(width: float) -> float | None:
        if detected is None:
            return out["max_distance_km"]
        distance = round(float(detected + width), 1)
        if distance >= reach or mean_stations_within(network, bounds, distance) >= FULL_FRACTION * len(network):
            return None
        return distance

    out["max_distance_km"] = pair_range(sigma)
    budget = out.get("product_budget")
    if budget is None:
        return out
    area = (bounds[1] - bounds[0]) * (bounds[3] - bounds[2])
    height = bounds[5] - bounds[4]
    wanted = max(int(out["n_sources"]), int(np.ceil(area * max(height, sigma) / sigma**3)))
    n, width = wanted, sigma
    for _ in range(2):  # the range's margin grows with the width, the width with the range
        distance = pair_range(width)
        within = len(network) if distance is None else max(mean_stations_within(network, bounds, distance), 1.0)
        n = max(min(wanted, int(budget // within)), MIN_SOURCES)
        if n < wanted:
            # The spacing n nodes reach: the cube root of the volume per node while the depth
            # range holds more than one layer of nodes, else the square root of the area per node.
            spacing = (area * height / n) ** (1 / 3)
            width = max(spacing if spacing <= height else (area / n) ** 0.5, sigma)
    factor = width / sigma
    out["label_sigma_km"] = round(float(width), 2)
    for key in ("kernel_s", "wide_kernel_s", "label_sigma_s", "offset_step_s"):
        if out.get(key) is not None and factor > 1:
            out[key] = round(float(out[key] * factor), 2)
    out["max_distance_km"] = pair_range(width)
    out["n_sources"] = n
    pairs = "every pair" if out["max_distance_km"] is None else f"pairs within {out['max_distance_km']:g} km"
    logger.info("model sized to the network: %d source nodes, label width %.1f km, %s (about %.0f stations per "
                "source node)", n, width, pairs, within)
    return out
