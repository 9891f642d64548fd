"""Graphs of the GENIE model: a spatial source graph X, the station graph S and their Cartesian
product S x X.

* X: a few hundred to a few thousand source nodes packed into the padded region by Lloyd's
  algorithm (k-means on uniform samples, depth scaled by ``depth_scale`` so that the packing is
  even in the scaled space), with k-nearest-neighbour edges.
* S: k-nearest-neighbour edges between stations.
* S x X: one node per (station, source) pair, numbered ``p = x * n_stations + s`` (source-major,
  so each source's stations are contiguous); edges copy S's edges within each source and X's
  edges within each station. A sparse product keeps only the pairs within ``max_distance_km``
  (GENIE's subgraph mode): far stations carry no information about a source.

Edges follow PyTorch Geometric's convention, ``edge_index[0]`` = source (neighbour),
``edge_index[1]`` = target, as ``int64`` arrays ``[2, E]``; coordinates are km in the network frame
(x east, y north, depth down). kNN uses scipy's cKDTree (no torch-cluster needed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


def knn_edges(points: np.ndarray, k: int) -> np.ndarray:
    """Directed edges ``[2, n * k']`` from each point's ``k' = min(k, n - 1)`` nearest neighbours
    to the point itself (no self loops)."""
    points = np.asarray(points, dtype="float64")
    n = len(points)
    kk = min(k, n - 1)
    if kk <= 0:
        return np.zeros((2, 0), dtype=np.int64)
    _, idx = cKDTree(points).query(points, k=kk + 1)
    idx = np.asarray(idx).reshape(n, kk + 1)
    # The nearest hit is normally the point itself, but with duplicate points it may not be:
    # move each row's self index to the end, then keep the first kk.
    is_self = idx == np.arange(n)[:, None]
    neighbours = np.take_along_axis(idx, np.argsort(is_self, axis=1, kind="stable"), axis=1)[:, :kk]
    target = np.repeat(np.arange(n), kk)
    return np.stack([neighbours.ravel(), target]).astype(np.int64)


def lloyd_nodes(bounds, n_nodes: int, rng: np.random.Generator, depth_scale: float = 1.0,
                samples_per_node: int = 30, iterations: int = 20) -> np.ndarray:
    """``n_nodes`` points ``[n, 3]`` (x, y, depth km) evenly packed in the box
    ``bounds = (x0, x1, y0, y1, z0, z1)`` by Lloyd iterations on uniform samples.

    Depth is multiplied by ``depth_scale`` while packing (values > 1 place nodes more densely in
    depth, as GENIE does for a thin seismogenic layer)."""
    x0, x1, y0, y1, z0, z1 = bounds
    lows = np.array([x0, y0, z0 * depth_scale])
    highs = np.array([x1, y1, z1 * depth_scale])
    samples = lows + rng.random((n_nodes * samples_per_node, 3)) * (highs - lows)
    centres = samples[rng.choice(len(samples), n_nodes, replace=False)]
    for _ in range(iterations):
        _, owner = cKDTree(centres).query(samples)
        counts = np.bincount(owner, minlength=n_nodes)
        sums = np.zeros_like(centres)
        np.add.at(sums, owner, samples)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    centres[:, 2] /= depth_scale
    return centres


@dataclass
class ProductGraph:
    """The Cartesian product of a station graph and a source graph (see module doc).

    ``pairs [P, 2]``: (station, source) of each product node; ``station_edges`` and
    ``source_edges``: ``[2, E]`` edges between product nodes; ``n_stations``, ``n_sources``.
    """

    pairs: np.ndarray
    station_edges: np.ndarray
    source_edges: np.ndarray
    n_stations: int
    n_sources: int

    @property
    def n_nodes(self) -> int:
        return len(self.pairs)


def product_graph(station_edges: np.ndarray, source_edges: np.ndarray, n_stations: int, n_sources: int,
                  keep: np.ndarray | None = None) -> ProductGraph:
    """Product of S (``station_edges``) and X (``source_edges``).

    ``keep [n_sources, n_stations]`` (bool) selects the pairs to keep (all when None); an edge is
    kept when both its ends are.
    """
    if keep is None:
        keep = np.ones((n_sources, n_stations), dtype=bool)
    node_of = np.full(keep.shape, -1, dtype=np.int64)
    src_idx, sta_idx = np.nonzero(keep)  # row-major: source-major numbering
    node_of[src_idx, sta_idx] = np.arange(len(src_idx))
    pairs = np.column_stack([sta_idx, src_idx]).astype(np.int64)

    # S edges inside every source: (s_a -> s_b) at source x.
    x = np.repeat(np.arange(n_sources), station_edges.shape[1])
    a = np.tile(station_edges[0], n_sources)
    b = np.tile(station_edges[1], n_sources)
    s_edges = np.stack([node_of[x, a], node_of[x, b]])
    s_edges = s_edges[:, (s_edges >= 0).all(0)]

    # X edges inside every station: (x_a -> x_b) at station s.
    s = np.repeat(np.arange(n_stations), source_edges.shape[1])
    a = np.tile(source_edges[0], n_stations)
    b = np.tile(source_edges[1], n_stations)
    x_edges = np.stack([node_of[a, s], node_of[b, s]])
    x_edges = x_edges[:, (x_edges >= 0).all(0)]
    return ProductGraph(pairs, s_edges.astype(np.int64), x_edges.astype(np.int64), n_stations, n_sources)


def within_range(sources: np.ndarray, stations: np.ndarray, max_distance_km: float) -> np.ndarray:
    """``[n_sources, n_stations]`` mask of pairs within ``max_distance_km`` epicentral distance."""
    d = np.sqrt(((sources[:, None, :2] - stations[None, :, :2]) ** 2).sum(-1))
    return d <= max_distance_km
