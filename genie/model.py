"""The assembled GENIE model: configuration, graphs on a network, forward passes, save/load.

Data flow for a batch of ``B`` windows, each evaluated at ``K`` origin-time offsets
``(k - (K - 1) / 2) * offset_step_s`` around its centre time:

1. pick features on the product graph ``[P, B*K, F]`` (:mod:`genie.features`; ``F = 5``, or 9
   with a second kernel width);
2. ``n_product_layers`` x :class:`~genie.layers.ProductConv`;
3. :class:`~genie.layers.ReadIn` to the source graph ``[X, B*K, latent]``;
4. ``n_source_layers`` x :class:`~genie.layers.SourceConv`;
5. :class:`~genie.layers.TemporalAttention` over the K offsets -> source likelihood logits on the
   grid ``[B, X]`` at the centre times;
6. continuous queries (:class:`~genie.layers.QueryAttention` over the ``k_query`` nearest source
   nodes, after temporal attention to the query's own time) -> likelihood anywhere in space-time;
7. :class:`~genie.layers.AssociationHead` scoring the picks near a source's predicted P and S
   arrivals at every station.

Coordinates are km in the network's local frame (x east, y north, depth down); times are s.
``save(dir)`` writes ``model.json`` (configuration, stations, velocity model) next to
``model.pt`` (weights, graphs, travel-time table and the cell tolerances of
:meth:`GenieModel.cell_tolerance_s`); ``load(dir)`` rebuilds the identical model without
recomputing anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from catalogs.fileio import atomic_path, read_json_object, write_text_atomic
from catalogs.projection import LocalProjection
from catalogs.schema import STATION_COLUMNS, InputError
from generator.network import Network
from generator.traveltimes import TravelTimes
from generator.velocity import VelocityModel
from genie.features import PickTable, n_features, window_features
from genie.graphs import knn_edges, lloyd_nodes, product_graph, within_range
from genie.layers import (AssociationHead, ProductConv, QueryAttention, ReadIn, SourceConv, SparseMean,
                          StructuredMean, TemporalAttention, mean_adjacency)

MODEL_FORMAT_VERSION = 2
PAIR_CHANNELS = 4
STATION_CHANNELS = 5
PICK_CHANNELS = 6
# Key of the cell tolerances in model.pt (not a buffer: checkpoints and older models lack it).
CELL_TOLERANCE_KEY = "cell_tolerance_s"
# Elements (point, station, phase) of one chunk of GenieModel.cell_tolerance_s: 1 MiB of float64 per
# array, small enough for a CPU cache (chunks of 20,000 points took twice as long).
CELL_CHUNK_ELEMENTS = 1 << 17


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda (got {name!r})")
    return torch.device(name)


def _c(default, unit: str, doc: str):
    return field(default=default, metadata={"unit": unit, "doc": doc})


@dataclass
class ModelConfig:
    """Architecture and graph settings (units in each field's metadata). Defaults are the GENIE
    reference values (McBrearty & Beroza 2023 code) for a regional network."""

    n_sources: int = _c(500, "1", "source graph nodes")
    k_sources: int = _c(15, "1", "kNN edges per source node")
    k_stations: int = _c(8, "1", "kNN edges per station")
    padding_km: float = _c(20.0, "km", "source graph covers the station box padded by this")
    roi_padding_km: float = _c(10.0, "km", "events farther than this outside the station box are labelled 0")
    depth_min_km: float = _c(0.0, "km", "shallowest source node")
    depth_max_km: float = _c(20.0, "km", "deepest source node")
    depth_scale: float = _c(1.0, "1", "depth stretch while packing source nodes (>1: denser in depth)")
    max_distance_km: float | None = _c(None, "km", "keep only product pairs within this epicentral distance (None: all; "
                                                   "training fills it from the generator, genie.sizing)")
    product_budget: int | None = _c(None, "1", "most product-graph nodes training may size the model to (genie.sizing; "
                                               "None: n_sources and widths as given)")
    hidden: int = _c(30, "1", "hidden width")
    latent: int = _c(15, "1", "latent width of source embeddings")
    n_product_layers: int = _c(2, "1", "message-passing rounds on the product graph")
    n_source_layers: int = _c(2, "1", "message-passing rounds on the source graph")
    kernel_s: float = _c(5.0, "s", "pick kernel width (Gaussian std)")
    wide_kernel_s: float | None = _c(None, "s", "a second, wider pick kernel (None: only kernel_s)")
    label_sigma_km: float = _c(15.0, "km", "source label width in space")
    label_sigma_s: float = _c(6.5, "s", "source label width in time")
    n_offsets: int = _c(3, "1", "origin-time offsets per window (odd)")
    offset_step_s: float = _c(2.0, "s", "spacing of the offsets = step between windows when associating")
    k_query: int = _c(8, "1", "source nodes a continuous query attends to")
    assoc_window_s: float = _c(10.0, "s", "candidate picks lie within this of the predicted P to S arrivals")
    assoc_candidates: int = _c(8, "1", "candidate picks per station and source")
    seed: int = _c(0, "1", "seed of the source-node packing")

    def validate(self, source: str = "model configuration") -> None:
        if self.n_offsets < 1 or self.n_offsets % 2 == 0:
            raise InputError(f"{source}: n_offsets must be odd and positive (got {self.n_offsets})")
        for name in ("n_sources", "k_sources", "k_stations", "hidden", "latent", "k_query", "assoc_candidates"):
            if getattr(self, name) < 1:
                raise InputError(f"{source}: {name} must be at least 1 (got {getattr(self, name)})")
        for name in ("kernel_s", "label_sigma_km", "label_sigma_s", "offset_step_s", "assoc_window_s"):
            if not getattr(self, name) > 0:
                raise InputError(f"{source}: {name} must be positive (got {getattr(self, name)})")
        if not self.depth_max_km > self.depth_min_km:
            raise InputError(f"{source}: depth_max_km must exceed depth_min_km")

    @classmethod
    def from_dict(cls, values: dict, source: str = "model configuration") -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InputError(f"{source}: unknown model setting(s) {unknown}; known: {sorted(names)}")
        config = cls(**values)
        config.validate(source)
        return config

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Graphs:
    """Arrays defining the model's graphs on one network (all numpy; see :mod:`genie.graphs`)."""

    station_xyz: np.ndarray  # [S, 3] km
    source_xyz: np.ndarray  # [X, 3] km
    pairs: np.ndarray  # [P, 2] (station, source)
    station_edges: np.ndarray  # [2, E] product station edges
    source_edges: np.ndarray  # [2, E] product source edges
    source_graph_edges: np.ndarray  # [2, E] edges of X
    roi: np.ndarray  # (x0, x1, y0, y1) km: region whose events are labelled

    @classmethod
    def build(cls, config: ModelConfig, station_xyz: np.ndarray) -> "Graphs":
        rng = np.random.default_rng(config.seed)
        x, y = station_xyz[:, 0], station_xyz[:, 1]
        pad = config.padding_km
        bounds = (x.min() - pad, x.max() + pad, y.min() - pad, y.max() + pad, config.depth_min_km, config.depth_max_km)
        sources = lloyd_nodes(bounds, config.n_sources, rng, depth_scale=config.depth_scale)
        source_graph = knn_edges(sources * [1.0, 1.0, config.depth_scale], config.k_sources)
        station_graph = knn_edges(station_xyz[:, :2], config.k_stations)
        keep = None
        if config.max_distance_km is not None:
            keep = within_range(sources, station_xyz, config.max_distance_km)
        prod = product_graph(station_graph, source_graph, len(station_xyz), len(sources), keep)
        r = config.roi_padding_km
        roi = np.array([x.min() - r, x.max() + r, y.min() - r, y.max() + r])
        return cls(station_xyz, sources, prod.pairs, prod.station_edges, prod.source_edges, source_graph, roi)


class GenieModel(nn.Module):
    """GENIE on one station network (see module doc). Build with :meth:`build`, or :meth:`load`."""

    def __init__(self, config: ModelConfig, graphs: Graphs, travel_times: TravelTimes, stations: pd.DataFrame,
                 statics_s: np.ndarray | None = None, projection: LocalProjection | None = None):
        super().__init__()
        config.validate()
        self.config = config
        self.stations = stations[list(STATION_COLUMNS)].reset_index(drop=True)
        self.projection = projection or LocalProjection.from_stations(self.stations)
        self.station_ids = [str(s) for s in self.stations["station_id"]]
        self.velocity_model = travel_times.model
        self.travel_times = travel_times
        self.roi = tuple(float(v) for v in graphs.roi)
        c = config

        def buffer(name, array, dtype):
            self.register_buffer(name, torch.as_tensor(np.asarray(array), dtype=dtype))

        buffer("station_xyz", graphs.station_xyz, torch.float32)
        buffer("source_xyz", graphs.source_xyz, torch.float32)
        buffer("pairs", graphs.pairs, torch.int64)
        buffer("station_edges", graphs.station_edges, torch.int64)
        buffer("source_edges", graphs.source_edges, torch.int64)
        buffer("source_graph_edges", graphs.source_graph_edges, torch.int64)
        buffer("tt_table", travel_times.times, torch.float64)
        statics = np.zeros((len(graphs.station_xyz), 2)) if statics_s is None else np.asarray(statics_s, dtype="float64")
        buffer("statics", statics, torch.float64)
        sta = graphs.station_xyz[graphs.pairs[:, 0]]
        src = graphs.source_xyz[graphs.pairs[:, 1]]
        tt = travel_times(graphs.source_xyz, graphs.station_xyz) + statics[None]  # [X, S, 2]
        buffer("pair_tt", tt[graphs.pairs[:, 1], graphs.pairs[:, 0]], torch.float32)
        offset = (sta - src) / c.label_sigma_km
        buffer("pair_attr", np.column_stack([offset, np.hypot(offset[:, 0], offset[:, 1])]), torch.float32)
        nb = graphs.source_graph_edges
        mean_offset = np.zeros_like(graphs.source_xyz)
        if nb.shape[1]:
            np.add.at(mean_offset, nb[1], graphs.source_xyz[nb[0]] - graphs.source_xyz[nb[1]])
            mean_offset /= np.maximum(np.bincount(nb[1], minlength=len(mean_offset)), 1)[:, None]
        buffer("source_offset", mean_offset / c.label_sigma_km, torch.float32)
        self._adjacency = {}
        self._network = None
        self._cell_tolerance = None

        n_in = n_features(len(self.kernel_widths))
        self.product_layers = nn.ModuleList(
            [ProductConv(n_in if i == 0 else c.hidden, c.hidden) for i in range(c.n_product_layers)])
        self.read_in = ReadIn(c.hidden if c.n_product_layers else n_in, PAIR_CHANNELS, c.hidden, c.latent)
        self.source_layers = nn.ModuleList([SourceConv(c.latent) for _ in range(c.n_source_layers)])
        self.temporal = TemporalAttention(c.latent, c.offset_step_s)
        self.grid_head = nn.Sequential(nn.Linear(c.latent, c.hidden), nn.PReLU(), nn.Linear(c.hidden, 1))
        self.query_attention = QueryAttention(c.latent)
        self.query_head = nn.Sequential(nn.Linear(c.latent, c.hidden), nn.PReLU(), nn.Linear(c.hidden, 1))
        self.association = AssociationHead(c.latent, STATION_CHANNELS, PICK_CHANNELS, c.hidden)

    # ------------------------------------------------------------------ construction, save/load
    @classmethod
    def build(cls, config: ModelConfig, network: Network, travel_times: TravelTimes,
              statics_s: np.ndarray | None = None) -> "GenieModel":
        """Graphs sized by ``config`` on ``network``; weights initialised from ``torch``'s global
        generator (seed it for reproducible weights). ``statics_s [S, 2]``: station static
        corrections (s, P and S) added to every predicted arrival (zero when None)."""
        graphs = Graphs.build(config, network.xyz)
        reach = float(np.hypot(np.ptp(graphs.source_xyz[:, 0]), np.ptp(graphs.source_xyz[:, 1])))
        if travel_times.max_distance_km < reach or travel_times.max_depth_km < config.depth_max_km:
            raise InputError(f"travel-time table covers {travel_times.max_distance_km:g} km x "
                             f"{travel_times.max_depth_km:g} km; the model needs {reach:.0f} km x "
                             f"{config.depth_max_km:g} km")
        return cls(config, graphs, travel_times, network.stations, statics_s, network.projection)

    @property
    def kernel_widths(self) -> tuple[float, ...]:
        """Pick kernel widths (s) of the input features."""
        c = self.config
        return (c.kernel_s,) if c.wide_kernel_s is None else (c.kernel_s, c.wide_kernel_s)

    @property
    def n_stations(self) -> int:
        return len(self.station_ids)

    @property
    def n_sources(self) -> int:
        return self.source_xyz.shape[0]

    @property
    def device(self) -> torch.device:
        return self.station_xyz.device

    @property
    def offsets_s(self) -> torch.Tensor:
        """Origin-time offsets ``[K]`` (s) of the windows evaluated around each centre time."""
        k = self.config.n_offsets
        return (torch.arange(k, device=self.device, dtype=torch.float64) - (k - 1) / 2) * self.config.offset_step_s

    @property
    def network(self) -> Network:
        """The stations the model was built on, in its own local frame."""
        if self._network is None:
            self._network = Network.from_stations(self.stations, self.projection)
        return self._network

    def metadata(self) -> dict:
        vm = self.velocity_model
        stations = self.stations.assign(station_id=self.stations["station_id"].astype(str))
        return {"format": "genie-model", "version": MODEL_FORMAT_VERSION, "config": self.config.to_dict(),
                "station_ids": self.station_ids, "stations": stations.to_dict("list"),
                "projection": [self.projection.latitude0, self.projection.longitude0], "roi_km": list(self.roi),
                "velocity_model": {"name": vm.name, "depth_km": list(vm.depth_km), "vp": list(vm.vp),
                                   "vs": list(vm.vs)},
                "travel_time_spacing_km": self.travel_times.spacing_km}

    def save(self, directory: str | os.PathLike) -> None:
        """Write ``model.json`` and ``model.pt`` into ``directory`` (atomically each). The cell
        tolerances go into ``model.pt`` beside the weights: a setup cost of about a second that
        every detection run would otherwise pay again."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        state[CELL_TOLERANCE_KEY] = torch.as_tensor(self.cell_tolerance_s())
        with atomic_path(directory / "model.pt") as tmp:
            torch.save(state, tmp)
        write_text_atomic(directory / "model.json", json.dumps(self.metadata(), indent=2) + "\n")

    @classmethod
    def from_state(cls, meta: dict, state: dict, source: str = "model") -> "GenieModel":
        """The model described by ``meta`` (see :meth:`metadata`) with weights ``state`` (and the
        cell tolerances where :meth:`save` wrote them; a model saved before they were is still
        read, and computes them when first needed)."""
        state = dict(state)
        tolerance = state.pop(CELL_TOLERANCE_KEY, None)
        if meta.get("version") != MODEL_FORMAT_VERSION or "stations" not in meta:
            raise InputError(f"{source}: written by an older genie (model format {meta.get('version')}, this is "
                             f"{MODEL_FORMAT_VERSION}); retrain it with genie train")
        config = ModelConfig.from_dict(meta["config"], source)
        vm = meta["velocity_model"]
        model = VelocityModel(tuple(vm["depth_km"]), tuple(vm["vp"]), tuple(vm["vs"]), vm["name"])
        tt = TravelTimes(model, state["tt_table"].numpy(), meta["travel_time_spacing_km"])
        graphs = Graphs(state["station_xyz"].numpy().astype("float64"), state["source_xyz"].numpy().astype("float64"),
                        state["pairs"].numpy(), state["station_edges"].numpy(), state["source_edges"].numpy(),
                        state["source_graph_edges"].numpy(), np.asarray(meta["roi_km"]))
        net = cls(config, graphs, tt, pd.DataFrame(meta["stations"]), state["statics"].numpy(),
                  LocalProjection(*meta["projection"]))
        net.load_state_dict(state)
        if tolerance is not None:
            if tuple(tolerance.shape) != (graphs.pairs.shape[0], 2):
                raise InputError(f"{source}: its weights file holds cell tolerances of shape "
                                 f"{tuple(tolerance.shape)} for {graphs.pairs.shape[0]} product pairs")
            net._cell_tolerance = tolerance.numpy().astype("float64")
        return net

    @classmethod
    def load(cls, directory: str | os.PathLike, device="cpu") -> "GenieModel":
        """Read a model written by :meth:`save`."""
        directory = Path(directory)
        meta_path, weights_path = directory / "model.json", directory / "model.pt"
        for path in (meta_path, weights_path):
            if not path.is_file():
                raise InputError(f"{path}: not found (a model directory holds model.json and model.pt)")
        meta = read_json_object(meta_path, "genie model description")
        if meta.get("format") != "genie-model":
            raise InputError(f"{meta_path}: not a genie model description")
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        return cls.from_state(meta, state, str(meta_path)).to(device)

    # ------------------------------------------------------------------ forward passes
    @property
    def full_product(self) -> bool:
        """Every (station, source) pair is a product node, numbered ``x * S + s``."""
        s, x = self.n_stations, self.n_sources
        if self.pairs.shape[0] != s * x:
            return False
        expected = torch.arange(s * x, device=self.pairs.device)
        return bool(((self.pairs[:, 1] * s + self.pairs[:, 0]) == expected).all())

    def _adjacencies(self):
        """Mean aggregations ``(station, source, read-in, source graph)``: on the factor graphs
        (:class:`~genie.layers.StructuredMean`) for a full product graph, else sparse matrices
        (:class:`~genie.layers.SparseMean`)."""
        key = str(self.device)
        if key not in self._adjacency:
            n_pairs, s, x = self.pairs.shape[0], self.n_stations, self.n_sources
            graph = mean_adjacency(self.source_graph_edges, x, device=self.device)
            if self.full_product:
                # S's edges are those of the product inside source 0.
                inside = self.pairs[self.station_edges[1], 1] == 0
                edges = self.pairs[self.station_edges[:, inside], 0]
                station = mean_adjacency(edges, s, device=self.device).to_dense()
                adjacency = (StructuredMean("station", s, x, station), StructuredMean("source", s, x, graph),
                             StructuredMean("readin", s, x), graph)
            else:
                readin = torch.stack([torch.arange(n_pairs, device=self.device), self.pairs[:, 1]])
                adjacency = (SparseMean(mean_adjacency(self.station_edges, n_pairs, device=self.device)),
                             SparseMean(mean_adjacency(self.source_edges, n_pairs, device=self.device)),
                             SparseMean(mean_adjacency(readin, x, n_pairs, device=self.device)), graph)
            self._adjacency = {key: adjacency}
        return self._adjacency[key]

    @property
    def location_depths_km(self) -> tuple[float, float]:
        """Depths (km) events are located in: the surface to 1 km above the travel-time table's
        deepest node (so every trial point interpolates inside the table). The detection's
        location searches and the cell tolerances of the coincidence screen share this range."""
        return 0.0, float(self.travel_times.max_depth_km) - 1.0

    def cell_tolerance_s(self, max_points: int = 200_000) -> np.ndarray:
        """``[P, 2]`` s: per product pair, the largest change of the predicted P and S arrival
        at its station between its source node and any point of the location domain (the
        source nodes' horizontal box, depths 0 to the travel-time table's deepest less 1 km)
        nearer to that node than to any other: how far the arrivals of an event may lie from
        those of its nearest node. Sampled on a regular grid of at most ``max_points`` points,
        plus the most the travel time can change over half the grid's diagonal (the slowest
        velocity of the model bounds its gradient). Computed once per model."""
        if self._cell_tolerance is not None:
            return self._cell_tolerance
        from scipy.spatial import cKDTree

        src = self.source_xyz.cpu().numpy().astype("float64")
        sta = self.station_xyz.cpu().numpy().astype("float64")
        lo = np.array([src[:, 0].min(), src[:, 1].min(), self.location_depths_km[0]])
        hi = np.array([src[:, 0].max(), src[:, 1].max(), self.location_depths_km[1]])
        spacing = max(float(np.prod(hi - lo) / max_points) ** (1 / 3), 0.5)
        axes = [np.linspace(a, b, max(int(np.ceil((b - a) / spacing)), 1) + 1) for a, b in zip(lo, hi)]
        cell = np.array([(b - a) / max(len(ax) - 1, 1) for a, b, ax in zip(lo, hi, axes)])
        xy = np.stack(np.meshgrid(axes[0], axes[1], indexing="ij"), -1).reshape(-1, 2)  # [H, 2]
        depth = axes[2]  # [Z]
        points = np.concatenate([np.repeat(xy, len(depth), 0), np.tile(depth, len(xy))[:, None]], 1)
        nearest = cKDTree(src).query(points)[1].reshape(len(xy), len(depth))
        # Columns (phase, station), phase-major, as travel_times.paired_grid takes them.
        station, phase = np.tile(np.arange(len(sta)), 2), np.repeat([0, 1], len(sta))
        at_nodes = self.travel_times(src, sta).transpose(0, 2, 1).reshape(len(src), -1)  # [X, 2S]
        worst = np.zeros_like(at_nodes)
        # The grid is epicentres x depths: its travel times come as a product (the distance terms
        # once per epicentre), a few epicentres at a time so that the arrays stay in a CPU cache.
        step = max(CELL_CHUNK_ELEMENTS // (len(depth) * len(station)), 1)
        for first_xy in range(0, len(xy), step):
            part = slice(first_xy, first_xy + step)
            tt = self.travel_times.paired_grid(xy[None, part], depth[None], sta[station][None], phase[None])[0]
            # Points grouped by their nearest node, one maximum per group.
            near = nearest[part].ravel()
            order = np.argsort(near, kind="stable")
            node = near[order]
            first = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
            change = np.abs(tt.reshape(len(near), -1)[order] - at_nodes[node])
            worst[node[first]] = np.maximum(worst[node[first]], np.maximum.reduceat(change, first, axis=0))
        worst = worst.reshape(len(src), 2, len(sta)).transpose(0, 2, 1)  # [X, S, 2]
        worst += self.travel_times.max_change_s(0.5 * float(np.linalg.norm(cell)))
        pairs = self.pairs.cpu().numpy()
        self._cell_tolerance = worst[pairs[:, 1], pairs[:, 0]]
        return self._cell_tolerance

    def window_times(self, centre_s: torch.Tensor) -> torch.Tensor:
        """Origin times ``[B, K]`` (s, float64) of the windows around centre times ``[B]``."""
        return centre_s.to(self.device, torch.float64)[:, None] + self.offsets_s[None, :]

    def features(self, picks: PickTable, origin_s: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """Pick features ``[P, W, F]`` for windows at ``origin_s [W]`` (s); ``active [W, S]``."""
        f = window_features(picks, self.pairs[:, 0], self.pair_tt, origin_s.to(self.device), self.kernel_widths,
                            active)
        return f.transpose(0, 1).contiguous()

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Source embeddings ``[X, W, latent]`` from product-graph features ``[P, W, F]``."""
        station_adj, source_adj, readin_adj, graph_adj = self._adjacencies()
        h = features
        for layer in self.product_layers:
            h = layer(h, station_adj, source_adj)
        z = self.read_in(h, readin_adj, self.pair_attr, self.n_sources)
        for layer in self.source_layers:
            z = layer(z, graph_adj, self.source_offset)
        return z

    def grid_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Source likelihood logits ``[B, X]`` at the centre times from embeddings
        ``[X, B, K, latent]`` of each centre's K offset windows."""
        centre = self.temporal(z, self.offsets_s.to(z.dtype))
        return self.grid_head(centre).squeeze(-1).transpose(0, 1)

    def query_embedding(self, z: torch.Tensor, positions: torch.Tensor, dt_s: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, Q, latent]`` of sources at ``positions [B, Q, 3]`` (km) and times
        ``dt_s [B, Q]`` (s) relative to the centre times, from ``z [X, B, K, latent]``."""
        b, q = positions.shape[:2]
        scale = self.config.label_sigma_km
        positions = positions.to(self.device, torch.float32)
        d2 = torch.cdist(positions.reshape(-1, 3), self.source_xyz)  # [B*Q, X]
        k = min(self.config.k_query, self.n_sources)
        nearest = d2.topk(k, dim=-1, largest=False).indices.view(b, q, k)
        zb = z.permute(1, 0, 2, 3)  # [B, X, K, C]
        batch = torch.arange(b, device=self.device)[:, None, None]
        gathered = zb[batch, nearest]  # [B, Q, k, K, C]
        dt = self.offsets_s.to(z.dtype)[None, None, None, :] - dt_s.to(self.device, z.dtype)[:, :, None, None]
        at_time = self.temporal(gathered, dt)  # [B, Q, k, C]
        offset = (self.source_xyz[nearest] - positions[:, :, None, :]) / scale
        return self.query_attention(at_time, offset)

    def query_logits(self, z: torch.Tensor, positions: torch.Tensor, dt_s: torch.Tensor) -> torch.Tensor:
        """Source likelihood logits ``[B, Q]`` anywhere in space-time (see :meth:`query_embedding`)."""
        return self.query_head(self.query_embedding(z, positions, dt_s)).squeeze(-1)

    def arrival_times(self, positions: torch.Tensor) -> torch.Tensor:
        """Predicted P and S travel times ``[N, S, 2]`` (s, float64, station statics included)
        from sources at ``positions [N, 3]`` (km) to every station."""
        pos = positions.to(self.device, torch.float64).reshape(-1, 3)
        return self.travel_times.torch(pos, self.station_xyz.to(torch.float64)) + self.statics[None]

    def candidates(self, picks: PickTable, positions: torch.Tensor, origin_s: torch.Tensor,
                   active: torch.Tensor | None = None):
        """Candidate picks for sources at ``positions [..., 3]`` (km) and absolute origin times
        ``origin_s [...]`` (s): at each station the ``assoc_candidates / 2`` picks (any label)
        nearest the predicted P arrival and as many nearest the predicted S arrival, each within
        ``assoc_window_s`` of it (a pick near both counts once, in the P half). Nearest, not
        first in time: in a swarm the true S lies behind many other picks.

        Returns ``(pick_index, valid, station_attr, pick_attr, residual_s)`` with shapes
        ``[..., S, M]``, ``[..., S, M]``, ``[..., S, 5]``, ``[..., S, M, 6]`` and
        ``[..., S, M, 2]`` (pick time minus predicted P and S arrival). ``active [..., S]``
        (bool) drops stations."""
        c = self.config
        lead = positions.shape[:-1]
        pos = positions.to(self.device, torch.float32).reshape(-1, 3)
        arrival = origin_s.to(self.device, torch.float64).reshape(-1, 1, 1) + self.arrival_times(pos)  # [N, S, 2]
        station = torch.arange(self.n_stations, device=self.device)[None, :]
        half = max(c.assoc_candidates // 2, 1)
        near_p = picks.nearest_k(station, arrival[..., 0], half, c.assoc_window_s)
        near_s = picks.nearest_k(station, arrival[..., 1], c.assoc_candidates - half, c.assoc_window_s)
        index, times, phase, valid = (torch.cat(pair, dim=-1) for pair in zip(near_p, near_s))
        seen = (near_s[0].unsqueeze(-1) == near_p[0].unsqueeze(-2)) & near_p[3].unsqueeze(-2)
        valid = valid & ~torch.cat([torch.zeros_like(near_p[3]), seen.any(-1)], dim=-1)
        if active is not None:
            valid = valid & active.to(self.device).reshape(-1, self.n_stations, 1)
        residual = times[..., None] - arrival[:, :, None, :]  # [N, S, M, 2]
        r = (residual / c.kernel_s).to(torch.float32)
        pick_attr = torch.cat([r.clamp(-5.0, 5.0), torch.exp(-0.5 * r.square()),
                               torch.nn.functional.one_hot(phase, 2).to(torch.float32)], dim=-1)
        offset = (self.station_xyz[None] - pos[:, None, :]) / c.label_sigma_km  # [N, S, 3]
        station_on = (torch.ones_like(offset[..., 0]) if active is None
                      else active.to(self.device).reshape(-1, self.n_stations).to(torch.float32))
        station_attr = torch.cat([offset, offset[..., :2].norm(dim=-1, keepdim=True), station_on[..., None]], dim=-1)
        s, m = self.n_stations, c.assoc_candidates
        return (index.view(*lead, s, m), valid.view(*lead, s, m), station_attr.view(*lead, s, STATION_CHANNELS),
                pick_attr.view(*lead, s, m, PICK_CHANNELS), residual.view(*lead, s, m, 2))

    def association_logits(self, embedding: torch.Tensor, station_attr: torch.Tensor, pick_attr: torch.Tensor,
                           valid: torch.Tensor) -> torch.Tensor:
        """Logits ``[..., S, M + 1, 2]`` (slot M = null) of candidate picks against sources with
        embeddings ``[..., latent]`` (see :meth:`candidates`)."""
        return self.association(embedding, station_attr, pick_attr, valid)

    def forward(self, features: torch.Tensor, n_windows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Grid logits ``[B, X]`` and embeddings ``[X, B, K, latent]`` from features
        ``[P, B*K, F]`` of ``B = n_windows`` windows with K offsets each."""
        z = self.embed(features).view(self.n_sources, n_windows, self.config.n_offsets, self.config.latent)
        return self.grid_logits(z), z

