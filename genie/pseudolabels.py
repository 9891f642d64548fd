"""Pseudo-labels: confident events of a first association become training labels on real picks.

* :class:`ConfidenceSettings` / :func:`confident_events`: which associated events are trusted as
  labels. Each test has a reason that does not depend on the network (the defaults):

  - at least ``min_picks`` (8) picks on ``min_stations`` (5) stations, ``min_p_and_s`` (3) of
    them with both phases: a hypocentre and origin time are four unknowns; with twice as many
    picks and S-P times at three stations the location is over-determined, not just solvable
    (the detector's own minimum is 6 picks on 4 stations);
  - ``chance_log10 <= max_chance_log10`` (-8): a search over ~10^6 source hypotheses a day
    (source nodes times window steps) then expects fewer than 0.01 chance alignments a day;
  - ``rms_s <= max_rms_s`` (0.3 s): twice the picking error of PhaseNet on local events
    (~0.1-0.15 s); larger misfits mean mixed events or wrong phases;
  - horizontal and depth 1-sigma uncertainties at most ``max_horizontal_fraction`` (0.25) and
    ``max_depth_fraction`` (0.5) of the model's label width ``label_sigma_km``: the label is a
    Gaussian of that width, so a label misplaced by less than a quarter of it barely moves it;
  - ``score >= min_score`` (0.5): the source likelihood peaks at 1 on a labelled event; half of
    it is the label's value one width (1.2 sigma) away, a detection the model itself stands by.

* :func:`holdout_mask`: the time split that guards against confirmation drift; blocks of
  ``block_hours`` alternate so that every ``holdout_every``-th block is held out (it never
  supplies labels and is where each round is scored).

* :class:`RealPicks` / :func:`draw_real_batch`: training windows on real picks. Picks assigned
  to a confident event carry its index and assigned phase; every other pick is ``UNKNOWN``
  (never "noise": it may be an arrival of an event not yet confident). Source labels are the
  confident events' Gaussians. Loss weights are zero where a source label could be wrong:
  at grid nodes and queries near (within the label's reach of) an associated event that did not
  pass the confidence tests, and at nodes whose predicted arrivals would explain a coherent
  unassociated pick (:func:`calibration.background.coherent_picks`: a pick lined up with picks
  on several other stations but in no event) at the window's origin times. Association targets
  are the confident events' assigned picks; "no pick" is not taught at a station where an
  ``UNKNOWN`` pick is a candidate (see :func:`genie.train.batch_losses`).

* :func:`draw_shifted_batch` (a fraction ``shifted_fraction`` of the real batches): the same
  harvest picks with each station's moved by its own 20-120 s, so that nothing lines up. These
  are certain negatives with the real stream's statistics: labels 0 everywhere and every pick
  noise to a decoy. Positives alone would teach the model to say yes more often; the shifted
  windows teach it what the real background looks like when no event is there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch

from catalogs.schema import seconds_since
from genie.batches import NO_EVENT, SKIP, UNKNOWN, Batch, BatchSettings, random_queries
from genie.features import PickTable
from genie.labels import source_labels
from genie.model import GenieModel


def _s(default, unit: str, doc: str):
    return field(default=default, metadata={"unit": unit, "doc": doc})


@dataclass
class ConfidenceSettings:
    """Tests an associated event passes to become a pseudo-label (reasons in the module doc)."""

    min_picks: int = _s(8, "1", "P + S picks")
    min_stations: int = _s(5, "1", "stations with a pick")
    min_p_and_s: int = _s(3, "1", "stations with both P and S")
    max_chance_log10: float = _s(-8.0, "log10", "chance-alignment probability")
    max_rms_s: float = _s(0.3, "s", "travel-time residual RMS")
    max_horizontal_fraction: float = _s(0.25, "1", "horizontal 1-sigma uncertainty / label_sigma_km")
    max_depth_fraction: float = _s(0.5, "1", "depth 1-sigma uncertainty / label_sigma_km")
    min_score: float = _s(0.5, "1", "source likelihood")

    def to_dict(self) -> dict:
        return asdict(self)


def confident_events(events: pd.DataFrame, settings: ConfidenceSettings, label_sigma_km: float) -> pd.Series:
    """Boolean Series over ``events`` (the :class:`genie.associate.Associator` table): passes
    every test of ``settings``. ``label_sigma_km``: the model's label width (km)."""
    s = settings
    n = events["n_p"] + events["n_s"]
    ok = ((n >= s.min_picks) & (events["n_stations"] >= s.min_stations) & (events["n_p_and_s"] >= s.min_p_and_s)
          & (events["rms_s"] <= s.max_rms_s) & (events["score"] >= s.min_score)
          & (events["horizontal_uncertainty_km"] <= s.max_horizontal_fraction * label_sigma_km)
          & (events["depth_uncertainty_km"] <= s.max_depth_fraction * label_sigma_km))
    if "chance_log10" in events:
        ok &= events["chance_log10"].fillna(-np.inf) <= s.max_chance_log10
    return ok.fillna(False).astype(bool)


def holdout_mask(times: pd.Series, epoch: pd.Timestamp, block_hours: float, holdout_every: int) -> np.ndarray:
    """Boolean ``[n]``: ``times`` (UTC) falling in a held-out block (every ``holdout_every``-th
    block of ``block_hours`` counted from ``epoch``, starting with the last of each cycle)."""
    block = np.floor(seconds_since(times, epoch) / (block_hours * 3600.0)).astype(np.int64)
    return np.mod(block, holdout_every) == holdout_every - 1


@dataclass
class RealPicks:
    """Real picks with pseudo-labels (times in s from ``epoch``; see module doc)."""

    station: np.ndarray  # [n] station index of the model
    time_s: np.ndarray  # [n] s, sorted
    phase: np.ndarray  # [n] label 0 P / 1 S
    event: np.ndarray  # [n] confident event index, or UNKNOWN
    event_phase: np.ndarray  # [n] assigned phase 0 / 1, or -1
    events_xyz: np.ndarray  # [E, 3] km, confident events
    events_s: np.ndarray  # [E]
    uncertain_xyz: np.ndarray  # [U, 3] km, associated events that are not confident
    uncertain_s: np.ndarray  # [U]
    coherent: np.ndarray  # [K] rows of the picks: coherent and unassociated
    spans: np.ndarray  # [H, 2] s: stretches windows may be centred in (harvest blocks)
    node_tt: np.ndarray  # [X, S, 2] s: predicted arrivals (statics included) from the source nodes
    epoch: pd.Timestamp
    shifted_fraction: float = 0.0  # of the batches drawn on station-shifted picks (draw_shifted_batch)


def real_picks(model: GenieModel, station: np.ndarray, time_s: np.ndarray, phase: np.ndarray,
               assigned_event: np.ndarray, assigned_phase: np.ndarray, events_xyz: np.ndarray, events_s: np.ndarray,
               confident: np.ndarray, coherent: np.ndarray, spans: np.ndarray, epoch: pd.Timestamp,
               shifted_fraction: float = 0.0) -> RealPicks:
    """Build :class:`RealPicks`: picks (``station``, ``time_s`` s from ``epoch``, ``phase`` 0/1)
    with the event row they are assigned to (``assigned_event``, -1 none; ``assigned_phase``),
    all associated events (``events_xyz [N, 3]`` km, ``events_s [N]``) and which of them are
    ``confident [N]`` (only those inside harvest ``spans [H, 2]`` should be); ``coherent [n]``
    bool marks coherent picks. Picks of events that are not confident become ``UNKNOWN``."""
    order = np.argsort(time_s, kind="stable")
    confident = np.asarray(confident, bool)
    new_index = np.full(len(confident) + 1, UNKNOWN, dtype=np.int64)
    new_index[np.flatnonzero(confident)] = np.arange(int(confident.sum()))
    ev = np.asarray(assigned_event, dtype=np.int64)[order]
    label = new_index[np.where(ev >= 0, ev, len(confident))]
    ev_phase = np.where(label >= 0, np.asarray(assigned_phase)[order], -1)
    unassigned = ev < 0
    coherent_rows = np.flatnonzero(np.asarray(coherent, bool)[order] & unassigned)
    with torch.no_grad():
        node_tt = model.arrival_times(model.source_xyz).cpu().numpy()
    return RealPicks(np.asarray(station, np.int64)[order], np.asarray(time_s, "float64")[order],
                     np.asarray(phase, np.int64)[order], label, ev_phase.astype(np.int64),
                     events_xyz[confident], events_s[confident], events_xyz[~confident], events_s[~confident],
                     coherent_rows, np.asarray(spans, "float64").reshape(-1, 2), node_tt, epoch, shifted_fraction)


def _uncertain_weight(model: GenieModel, points: torch.Tensor, origin_s: torch.Tensor, confident_label: torch.Tensor,
                      other_xyz: np.ndarray, other_s: np.ndarray, coherent: tuple | None = None,
                      node_tt: np.ndarray | None = None) -> torch.Tensor:
    """Loss weights ``[B, P]`` for points ``[P, 3]`` (nodes) or ``[B, P, 3]`` (queries) at
    ``origin_s`` (``[B]`` or ``[B, P]``, s): 0 where the label of an unconfirmed event
    (``other_xyz [U, 3]`` km, ``other_s [U]`` s) would reach 0.01, unless the confident label
    there is larger; for nodes, also where a coherent unassociated pick (``coherent = (time_s,
    station, phase)``) could be an arrival from the node (``node_tt [X, S, 2]``) at the window's
    origin times."""
    c = model.config
    dev = model.device
    other = source_labels(points, origin_s, torch.as_tensor(other_xyz, dtype=torch.float32, device=dev),
                          torch.as_tensor(other_s, device=dev), c.label_sigma_km, c.label_sigma_s)
    keep = (other < 0.01) | (confident_label >= other)
    if coherent is not None and len(coherent[0]):
        # The window's origin span (its offsets) plus the reach of the time label.
        reach = c.offset_step_s * (c.n_offsets - 1) / 2 + 3 * c.label_sigma_s
        t, sta, ph = coherent
        implied = t[None, :] - node_tt[:, sta, ph]  # [X, K] origin times the picks imply
        near = np.abs(implied[None, :, :] - origin_s.cpu().numpy()[:, None, None]) <= reach  # [B, X, K]
        keep &= ~torch.as_tensor(near.any(-1), device=dev)
    return keep.to(torch.float32)


def _stretch(real: RealPicks, s: BatchSettings, rng: np.random.Generator) -> tuple[int, float, float]:
    """A harvest span (index), a stretch length (s) and its start (s from the epoch)."""
    tail = float(real.node_tt.max())
    lengths = np.maximum(real.spans[:, 1] - real.spans[:, 0] - tail, 0.0)
    if lengths.sum() <= 0:
        raise ValueError("no harvest span is longer than the longest travel time")
    span = int(rng.choice(len(lengths), p=lengths / lengths.sum()))
    chunk = float(min(s.chunk_s, lengths[span]))
    return span, chunk, float(real.spans[span, 0] + rng.uniform(0.0, max(lengths[span] - chunk, 0.0)))


def _active(station: np.ndarray, s: BatchSettings, n_sta: int, rng: np.random.Generator) -> np.ndarray:
    """``[B, S]`` station subsets drawn among the stations with picks, as for synthetic batches."""
    seen = np.bincount(station, minlength=n_sta) > 0
    n_seen = max(int(seen.sum()), 1)
    n_active = np.maximum(np.round(rng.uniform(*s.station_fraction, s.windows) * n_seen), min(s.min_stations, n_seen))
    rank = np.where(seen[None, :], rng.random((s.windows, n_sta)), 2.0).argsort(1).argsort(1)
    return rank < n_active[:, None]


def draw_shifted_batch(model: GenieModel, real: RealPicks, settings: BatchSettings, rng: np.random.Generator) -> Batch:
    """Windows on real picks of one harvest stretch with each station's picks moved by its own
    20-120 s (either sign): the real stream's rates, P-S pairs, glitches and overlapping
    arrivals, with the moveout of every event destroyed. No source lies anywhere (labels 0 at
    full weight) and every pick is noise to the decoy source of each window: the model learns
    that real pick statistics alone make no event (the false-detection test, as training data)."""
    s = settings
    b, n_sta = s.windows, model.n_stations
    tail = float(real.node_tt.max())
    span, chunk, t0 = _stretch(real, s, rng)
    shift = 120.0
    a0, a1 = max(t0 - tail - shift, real.spans[span, 0]), min(t0 + chunk + tail + shift, real.spans[span, 1])
    lo, hi = np.searchsorted(real.time_s, [a0, a1])
    offset = rng.uniform(20.0, shift, n_sta) * rng.choice([-1.0, 1.0], n_sta)
    moved = real.time_s[lo:hi] + offset[real.station[lo:hi]] - t0
    keep = np.flatnonzero((moved >= -tail) & (moved < chunk + tail))
    keep = keep[np.argsort(moved[keep], kind="stable")]
    station, times, phase = real.station[lo:hi][keep], moved[keep], real.phase[lo:hi][keep]
    active = _active(station, s, n_sta, rng)
    centre = rng.uniform(0.0, chunk, b)
    query_xyz, query_dt, _, _ = random_queries(model, b, s.queries, rng)
    dev = model.device
    return Batch(
        picks=PickTable(station, times, phase, n_sta, device=dev),
        pick_event=torch.full((len(times),), NO_EVENT, dtype=torch.int64, device=dev),
        pick_phase=torch.full((len(times),), -1, dtype=torch.int64, device=dev),
        centre_s=torch.as_tensor(centre, device=dev),
        active=torch.as_tensor(active, device=dev),
        grid_labels=torch.zeros((b, model.n_sources), device=dev),
        query_xyz=torch.as_tensor(query_xyz, dtype=torch.float32, device=dev),
        query_dt=torch.as_tensor(query_dt, dtype=torch.float32, device=dev),
        query_labels=torch.zeros((b, s.queries), device=dev),
        assoc_event=torch.full((b,), NO_EVENT, dtype=torch.int64, device=dev),
        n_events_labelled=0,
        start_s=t0,
    )


def draw_real_batch(model: GenieModel, real: RealPicks, settings: BatchSettings, rng: np.random.Generator) -> Batch:
    """One batch of windows on real picks (module doc): ``settings.windows`` windows in one
    stretch of ``settings.chunk_s`` inside a harvest span, ``event_fraction`` of them centred on
    confident events; station subsets drawn as for synthetic batches among the stations with
    picks in the stretch. Times in the batch are seconds from the stretch's start."""
    if real.shifted_fraction > 0 and rng.random() < real.shifted_fraction:
        return draw_shifted_batch(model, real, settings, rng)
    c, s = model.config, settings
    b, n_sta = s.windows, model.n_stations
    tail = float(real.node_tt.max())
    span, chunk, t0 = _stretch(real, s, rng)
    t1 = t0 + chunk
    lo, hi = np.searchsorted(real.time_s, [t0 - tail, t1 + tail])
    station, times, phase = real.station[lo:hi], real.time_s[lo:hi] - t0, real.phase[lo:hi]
    # Events that can own a pick of the stretch, renumbered; picks of the others are unknown here.
    local = np.flatnonzero((real.events_s >= t0 - 2 * tail) & (real.events_s < t1 + tail))
    renumber = np.full(len(real.events_s) + 1, UNKNOWN, dtype=np.int64)
    renumber[local] = np.arange(len(local))
    glob = real.event[lo:hi]
    event = renumber[np.where(glob >= 0, glob, len(real.events_s))]
    event_phase = np.where(event >= 0, real.event_phase[lo:hi], -1)
    ev_xyz_np, ev_s_np = real.events_xyz[local], real.events_s[local] - t0
    near_u = (real.uncertain_s >= t0 - 2 * tail) & (real.uncertain_s < t1 + tail)
    u_xyz, u_s = real.uncertain_xyz[near_u], real.uncertain_s[near_u] - t0
    k0, k1 = np.searchsorted(real.time_s[real.coherent], [t0 - tail, t1 + 2 * tail])
    rows = real.coherent[k0:k1]
    coherent = (real.time_s[rows] - t0, real.station[rows], real.phase[rows])

    active = _active(station, s, n_sta, rng)

    # A confident event seen on too few of a window's stations cannot be asked for there.
    counts = np.zeros((len(local), n_sta), dtype=np.int64)
    mine = event >= 0
    np.add.at(counts, (event[mine], station[mine]), 1)
    a = active.astype(np.int64)
    labelled = (a @ counts.T >= s.min_picks) & (a @ (counts > 0).T.astype(np.int64) >= s.min_stations)

    centre = rng.uniform(0.0, chunk, b)
    target = np.full(b, SKIP)
    in_chunk = np.flatnonzero((ev_s_np >= 0.0) & (ev_s_np < chunk))
    event_window = (rng.random(b) < s.event_fraction) & (len(in_chunk) > 0)
    if event_window.any():
        target[event_window] = rng.choice(in_chunk, event_window.sum())
        centre[event_window] = ev_s_np[target[event_window]] + rng.uniform(
            -c.offset_step_s, c.offset_step_s, event_window.sum())
    has = target >= 0
    target[has] = np.where(labelled[np.flatnonzero(has), target[has]], target[has], SKIP)

    q = s.queries
    query_xyz, query_dt, half_span, (low, high) = random_queries(model, b, q, rng)
    has = target >= 0
    n_near = (q - 1) // 2
    if has.any():
        ev = target[has]
        query_xyz[has, 0] = ev_xyz_np[ev] + rng.normal(0, s.query_jitter_km, (len(ev), 3))
        query_dt[has, 0] = ev_s_np[ev] - centre[has] + rng.normal(0, s.query_jitter_s, len(ev))
        query_xyz[has, 1:1 + n_near] = ev_xyz_np[ev][:, None, :] + rng.normal(0, c.label_sigma_km, (len(ev), n_near, 3))
        query_dt[has, 1:1 + n_near] = (ev_s_np[ev] - centre[has])[:, None] + rng.normal(
            0, c.label_sigma_s, (len(ev), n_near))
    query_xyz[..., 2] = np.clip(query_xyz[..., 2], low[2], high[2])
    query_dt = np.clip(query_dt, -half_span, half_span)

    dev = model.device
    lab = torch.as_tensor(labelled, device=dev)
    ev_xyz = torch.as_tensor(ev_xyz_np, dtype=torch.float32, device=dev)
    ev_s = torch.as_tensor(ev_s_np, device=dev)
    centre_t = torch.as_tensor(centre, device=dev)
    qxyz = torch.as_tensor(query_xyz, dtype=torch.float32, device=dev)
    qdt = torch.as_tensor(query_dt, device=dev)
    sig_km, sig_s = c.label_sigma_km, c.label_sigma_s
    grid_labels = source_labels(model.source_xyz, centre_t, ev_xyz, ev_s, sig_km, sig_s, lab)
    query_labels = source_labels(qxyz, centre_t[:, None] + qdt, ev_xyz, ev_s, sig_km, sig_s, lab)
    # Confident events a window's stations cannot support count as unconfirmed there.
    weak = ~lab
    grid_weight = _uncertain_weight(model, model.source_xyz, centre_t, grid_labels, u_xyz, u_s, coherent, real.node_tt)
    query_weight = _uncertain_weight(model, qxyz, centre_t[:, None] + qdt, query_labels, u_xyz, u_s)
    if len(local):
        grid_unsupported = source_labels(model.source_xyz, centre_t, ev_xyz, ev_s, sig_km, sig_s, weak)
        query_unsupported = source_labels(qxyz, centre_t[:, None] + qdt, ev_xyz, ev_s, sig_km, sig_s, weak)
        grid_weight = grid_weight * ((grid_unsupported < 0.01) | (grid_labels >= grid_unsupported)).float()
        query_weight = query_weight * ((query_unsupported < 0.01) | (query_labels >= query_unsupported)).float()
    return Batch(
        picks=PickTable(station, times, phase, n_sta, device=dev),
        pick_event=torch.as_tensor(event, device=dev),
        pick_phase=torch.as_tensor(event_phase, device=dev),
        centre_s=centre_t,
        active=torch.as_tensor(active, device=dev),
        grid_labels=grid_labels,
        query_xyz=qxyz,
        query_dt=qdt.to(torch.float32),
        query_labels=query_labels,
        assoc_event=torch.as_tensor(target, device=dev),
        n_events_labelled=int(labelled.any(0).sum()),
        grid_weight=grid_weight,
        query_weight=query_weight,
        start_s=float(t0),
    )
