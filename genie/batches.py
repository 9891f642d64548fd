"""Training batches drawn on the fly from the synthetic pick generator.

Each batch is one synthetic stretch of picks (``chunk_s`` long, event rate drawn log-uniformly
between ``rate_factor`` times the generator's rate, false picks included, plus incoherent
arrivals: picks of extra events shifted per station, which must not make an event) and ``B``
windows on it.
With ``burst_fraction`` > 0, that fraction of the stretches also holds clustered sequences (on
average one mainshock per stretch with tens to hundreds of Omori-Utsu aftershocks within a few km),
whose picks crowd the same stations within seconds, as in a swarm or an aftershock sequence.
Every window gets its own random station subset (``station_fraction`` of the network), and about
``event_fraction`` of the windows are centred near an event. An event is *labelled* in a window
when it lies in the model's region of interest and has at least ``min_picks`` picks on at least
``min_stations`` of the window's active stations: the model is asked to find what the picks can
support, nothing more.

Queries (continuous source likelihood) per window: slot 0 is the window's event (perturbed by
``query_jitter_km`` / ``query_jitter_s``, the error of a first location), the association source
of event windows; in the other windows slot 0 is a decoy anywhere, whose association target is
"no pick" at every station. Half of the remaining queries lie near the event closest in time,
the others anywhere in the source graph's box.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from catalogs.schema import seconds_since
from generator.network import Network
from generator.params import GeneratorParams
from generator.synthesize import generate
from generator.traveltimes import TravelTimes
from genie.features import PickTable
from genie.labels import source_labels
from genie.model import GenieModel

START = pd.Timestamp("2020-01-01T00:00:00Z")
NO_EVENT = -1  # association target of a decoy query: no pick belongs to it
SKIP = -2  # query slot 0 neither at an event nor clear of one: no association loss
UNKNOWN = -3  # a real pick no confident event explains: it may be an arrival, so never a "no pick" target


@dataclass
class BatchSettings:
    """How training windows are drawn (units in each field's metadata)."""

    windows: int = field(default=16, metadata={"unit": "1", "doc": "windows per batch"})
    chunk_s: float = field(default=1200.0, metadata={"unit": "s", "doc": "synthetic stretch per batch"})
    rate_factor: tuple = field(default=(1.0, 8.0), metadata={
        "unit": "1", "doc": "event rate drawn log-uniformly between these multiples of the generator's rate"})
    min_rate_per_day: float = field(default=500.0, metadata={"unit": "1/day", "doc": "floor of the drawn event rate"})
    incoherent_fraction: tuple = field(default=(0.0, 1.0), metadata={
        "unit": "1", "doc": "incoherent arrivals (station-shifted picks of extra events, false) per event, uniform "
                            "between these: the model learns that per-station P-S pairs without moveout are no event"})
    station_fraction: tuple = field(default=(0.35, 1.0), metadata={
        "unit": "1", "doc": "fraction of stations active in a window, uniform between these"})
    event_fraction: float = field(default=0.6, metadata={"unit": "1", "doc": "fraction of windows centred near an event"})
    queries: int = field(default=16, metadata={"unit": "1", "doc": "continuous queries per window"})
    min_picks: int = field(default=4, metadata={"unit": "1", "doc": "an event is labelled with at least this many picks"})
    min_stations: int = field(default=3, metadata={"unit": "1", "doc": "... on at least this many active stations"})
    query_jitter_km: float = field(default=2.0, metadata={"unit": "km", "doc": "error of the association source's position"})
    query_jitter_s: float = field(default=0.3, metadata={"unit": "s", "doc": "error of the association source's time"})
    burst_fraction: float = field(default=0.0, metadata={
        "unit": "1", "doc": "fraction of batches whose stretch also holds clustered sequences (a mainshock and its "
                            "Omori-Utsu aftershocks, on average one per stretch): events that share the same "
                            "stations within seconds, as in a swarm or an aftershock sequence"})
    burst_size: tuple = field(default=(10.0, 300.0), metadata={
        "unit": "1", "doc": "mean aftershocks per sequence, drawn log-uniformly between these"})
    burst_radius_km: tuple = field(default=(1.0, 5.0), metadata={
        "unit": "km", "doc": "std of the aftershock hypocentres around the mainshock, uniform between these"})


@dataclass
class Batch:
    """Tensors of one training batch (on the model's device). ``B`` windows, ``Q`` queries."""

    picks: PickTable
    pick_event: torch.Tensor  # [n] long, -1 false, UNKNOWN (-3) a real pick no confident event explains
    pick_phase: torch.Tensor  # [n] long, true phase 0 P / 1 S, -1 false
    centre_s: torch.Tensor  # [B] float64
    active: torch.Tensor  # [B, S] bool
    grid_labels: torch.Tensor  # [B, X]
    query_xyz: torch.Tensor  # [B, Q, 3] km
    query_dt: torch.Tensor  # [B, Q] s from the centre
    query_labels: torch.Tensor  # [B, Q]
    assoc_event: torch.Tensor  # [B] long: event of query slot 0, NO_EVENT (-1) a decoy, SKIP (-2) neither
    n_events_labelled: int
    # Loss weights of the grid [B, X] and query [B, Q] labels (None: all 1). Real windows
    # labelled by confident events weigh 0 where an unconfirmed event may lie.
    grid_weight: torch.Tensor | None = None
    query_weight: torch.Tensor | None = None
    start_s: float = 0.0  # time of the batch's zero on the source's clock (real picks: s from their epoch)


@dataclass
class Truth:
    """Picks and events of a synthetic stretch as arrays (times in s from its start)."""

    station: np.ndarray  # [n] station index
    time_s: np.ndarray
    phase: np.ndarray  # label 0 P / 1 S
    event: np.ndarray  # -1 false
    true_phase: np.ndarray  # -1 false
    events_xyz: np.ndarray  # [E, 3]
    events_s: np.ndarray  # [E]
    magnitude: np.ndarray  # [E]

    def pick_counts(self, n_stations: int) -> np.ndarray:
        """True picks per event and station ``[E, S]``."""
        counts = np.zeros((len(self.events_s), n_stations), dtype=np.int64)
        real = self.event >= 0
        np.add.at(counts, (self.event[real], self.station[real]), 1)
        return counts


def synthetic_truth(network: Network, travel_times: TravelTimes, params: GeneratorParams, duration_s: float,
                    rng: np.random.Generator) -> Truth:
    """Generate ``duration_s`` of picks with ``params`` and return them as arrays."""
    picks, events = generate(network, travel_times, params, duration_s, rng, start=START)
    station = pd.Index(network.ids).get_indexer(picks["station_id"])
    true_phase = picks["true_phase"].map({"P": 0, "S": 1}).fillna(-1).to_numpy(dtype=np.int64)
    return Truth(station.astype(np.int64), seconds_since(picks["time"], START),
                 (picks["phase"] == "S").to_numpy(dtype=np.int64), picks["event_id"].to_numpy(dtype=np.int64),
                 true_phase, events[["x_km", "y_km", "depth_km"]].to_numpy(dtype="float64"),
                 events["origin_s"].to_numpy(dtype="float64"), events["magnitude"].to_numpy(dtype="float64"))


def inside_roi(model: GenieModel, xyz: np.ndarray) -> np.ndarray:
    x0, x1, y0, y1 = model.roi
    return (xyz[:, 0] >= x0) & (xyz[:, 0] <= x1) & (xyz[:, 1] >= y0) & (xyz[:, 1] <= y1)


def labelled_events(model: GenieModel, truth: Truth, active: np.ndarray, min_picks: int, min_stations: int) -> np.ndarray:
    """``[B, E]`` bool: event ``e`` is labelled in window ``b`` (see module doc); ``active [B, S]``."""
    counts = truth.pick_counts(model.n_stations)
    a = active.astype(np.int64)
    enough = (a @ counts.T >= min_picks) & (a @ (counts > 0).T.astype(np.int64) >= min_stations)
    return enough & inside_roi(model, truth.events_xyz)[None, :]


def random_queries(model: GenieModel, windows: int, queries: int, rng: np.random.Generator):
    """Queries anywhere in the source graph's box: ``(xyz [B, Q, 3] km, dt [B, Q] s from the
    window centre, half the window's origin span (s), (box low [3], box high [3]))``."""
    c = model.config
    half_span = max(c.offset_step_s * (c.n_offsets - 1) / 2, c.offset_step_s / 2)
    nodes = model.source_xyz.cpu().numpy()
    low, high = nodes.min(0), nodes.max(0)
    query_xyz = low + rng.random((windows, queries, 3)) * (high - low)
    query_dt = rng.uniform(-half_span, half_span, (windows, queries))
    return query_xyz, query_dt, half_span, (low, high)


def draw_batch(model: GenieModel, network: Network, travel_times: TravelTimes, params: GeneratorParams,
               settings: BatchSettings, rng: np.random.Generator) -> Batch:
    """One training batch (see module doc); deterministic for a given ``rng`` state."""
    c, s = model.config, settings
    lo, hi = np.log(s.rate_factor[0]), np.log(s.rate_factor[1])
    rate = max(params.event_rate_per_day * float(np.exp(rng.uniform(lo, hi))), s.min_rate_per_day)
    incoherent = float(rng.uniform(*s.incoherent_fraction))
    stretch = params.replace(event_rate_per_day=rate, incoherent_fraction=incoherent)
    # Short-circuit: with no bursts asked for, no draw is made, so such batches are the same
    # whatever the burst settings.
    if s.burst_fraction > 0 and rng.random() < s.burst_fraction:
        stretch = stretch.replace(burst_rate_per_day=86400.0 / s.chunk_s, burst_duration_hours=s.chunk_s / 3600.0,
                                  burst_size=float(np.exp(rng.uniform(*np.log(s.burst_size)))),
                                  burst_radius_km=float(rng.uniform(*s.burst_radius_km)))
    truth = synthetic_truth(network, travel_times, stretch, s.chunk_s, rng)
    b, n_sta = s.windows, model.n_stations

    n_active = np.maximum(np.round(rng.uniform(*s.station_fraction, b) * n_sta), min(s.min_stations, n_sta))
    active = rng.random((b, n_sta)).argsort(1).argsort(1) < n_active[:, None]
    labelled = labelled_events(model, truth, active, s.min_picks, s.min_stations)

    # Windows near events, the rest anywhere; the last seconds miss the S picks of late events.
    tail = float(travel_times(np.array([[0.0, 0.0, c.depth_max_km]]), np.array([[c.padding_km * 2, 0.0, 0.0]]))[0, 0, 1])
    span = max(s.chunk_s - tail, 1.0)
    centre = rng.uniform(0.0, span, b)
    candidates = np.flatnonzero(labelled.any(0) & (truth.events_s < span))
    event_window = (rng.random(b) < s.event_fraction) & (len(candidates) > 0)
    target = np.full(b, -1)
    if len(candidates):
        target[event_window] = rng.choice(candidates, event_window.sum())
        centre[event_window] = truth.events_s[target[event_window]] + rng.uniform(
            -c.offset_step_s, c.offset_step_s, event_window.sum())
    if len(candidates):
        target = np.where((target >= 0) & labelled[np.arange(b), np.maximum(target, 0)], target, -1)

    # Queries: slot 0 the association source, then near the closest labelled event, then anywhere.
    q = s.queries
    query_xyz, query_dt, half_span, (low, high) = random_queries(model, b, q, rng)
    gap = np.where(labelled, np.abs(truth.events_s[None, :] - centre[:, None]), np.inf)
    nearest = gap.argmin(1) if gap.size else np.zeros(b, dtype=int)
    near = np.isfinite(gap.min(1)) if gap.size else np.zeros(b, dtype=bool)
    n_near = (q - 1) // 2
    if near.any():
        ev = nearest[near]
        query_xyz[near, 1:1 + n_near] = truth.events_xyz[ev][:, None, :] + rng.normal(0, c.label_sigma_km, (len(ev), n_near, 3))
        query_dt[near, 1:1 + n_near] = (truth.events_s[ev] - centre[near])[:, None] + rng.normal(0, c.label_sigma_s, (len(ev), n_near))
    has = target >= 0
    if has.any():
        ev = target[has]
        query_xyz[has, 0] = truth.events_xyz[ev] + rng.normal(0, s.query_jitter_km, (len(ev), 3))
        query_dt[has, 0] = truth.events_s[ev] - centre[has] + rng.normal(0, s.query_jitter_s, len(ev))
    query_xyz[..., 2] = np.clip(query_xyz[..., 2], low[2], high[2])
    query_dt = np.clip(query_dt, -half_span, half_span)

    dev = model.device
    ev_xyz = torch.tensor(truth.events_xyz, dtype=torch.float32, device=dev)
    ev_s = torch.tensor(truth.events_s, device=dev)  # a copy: the array may be read-only
    lab = torch.as_tensor(labelled, device=dev)
    centre_t = torch.as_tensor(centre, device=dev)
    qxyz = torch.as_tensor(query_xyz, dtype=torch.float32, device=dev)
    qdt = torch.as_tensor(query_dt, device=dev)
    query_labels = source_labels(qxyz, centre_t[:, None] + qdt, ev_xyz, ev_s, c.label_sigma_km, c.label_sigma_s, lab)
    # Slot 0 of the other windows is a decoy anywhere: its association target is "no pick" at
    # every station (the head must learn to reject a source that is not there), unless it fell
    # near a labelled event by chance, which the association loss then skips.
    decoy_near_event = query_labels[:, 0].cpu().numpy() > 0.1
    assoc_event = np.where(target >= 0, target, np.where(decoy_near_event, SKIP, NO_EVENT))
    return Batch(
        picks=PickTable(truth.station, truth.time_s, truth.phase, n_sta, device=dev),
        pick_event=torch.as_tensor(np.array(truth.event), device=dev),
        pick_phase=torch.as_tensor(truth.true_phase, device=dev),
        centre_s=centre_t,
        active=torch.as_tensor(active, device=dev),
        grid_labels=source_labels(model.source_xyz, centre_t, ev_xyz, ev_s, c.label_sigma_km, c.label_sigma_s, lab),
        query_xyz=qxyz,
        query_dt=qdt.to(torch.float32),
        query_labels=query_labels,
        assoc_event=torch.as_tensor(assoc_event, device=dev),
        n_events_labelled=int(labelled.any(0).sum()),
    )
