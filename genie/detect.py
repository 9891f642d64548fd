"""Detecting sources and associating picks with a trained model over a stretch of picks.

1. Windows every ``offset_step_s`` (the model's offset spacing, so each window's embedding is
   computed once and shared by the K centre times that use it). Windows are evaluated only
   around centre times where some source node has enough coincident picks for an event the
   acceptance rules could accept (:func:`coincident_windows`); elsewhere the likelihood is 0.
   Source likelihood on the grid ``[T, X]``
   by temporal attention. Embeddings of windows around centres that reach ``threshold`` are
   kept (:class:`WindowStore`) for the queries of the later steps.
2. Peaks: grid values above ``threshold`` that are the maximum over ``+-label_sigma_s`` in time
   and over their graph neighbours in space; peaks closer than ``merge_km`` and ``merge_s`` to a
   stronger one are dropped (unless set, one label width and half a window step: :func:`suppress`,
   on time-sorted neighbourhoods).
3. Each peak is refined by continuous queries on a small space-time lattice around it (half a
   label width in space, half a window step in time; depth anywhere in the travel-time table),
   keeping the most likely point.
4. Picks are scored for each source by the association head (candidates nearest the predicted P
   and S arrivals, station statics included). In rounds, each source takes per station and
   phase its most likely candidate (probability >= ``assoc_threshold``; a pick claimed twice
   goes to the most probable), is relocated by grid search (:func:`genie.locate.locate`, each
   residual capped at the step-5 residual gate, so that one wrong candidate does not drag a
   small event away from its other picks), converged duplicates keep the one with most picks,
   and picks are scored again at the relocated sources (embeddings from the windows nearest the
   new time), until every source has settled (it holds the picks it was located with and moved
   less than the search's fine spacing) or after ``relocation_rounds`` rounds
   (:func:`_relocation_rounds`).
5. Final round: the ``candidates_per_phase`` most likely candidates per source, station and
   phase within the residual gate ``max(max_residual_s, residual_fraction * travel time)`` (times
   ``s_residual_factor`` for S; from the generator's timing errors, :meth:`DetectSettings.for_generator`) go
   into the exact competitive assignment (:mod:`genie.assign`: each pick to at most one source,
   sources kept only with ``min_picks`` picks, ``min_stations`` stations, ``min_p_picks`` P
   picks and ``min_probability_sum`` summed probability). Kept sources are relocated by robust
   least squares (:func:`genie.locate.relocate`, with uncertainties and azimuthal gap), picks
   outside the gate at the final location are released and the thresholds checked again.
   Every location, from step 3 on, stays within the source graph's extent
   (:func:`source_bounds`).
6. Passes (``passes``): steps 1-5 run again on the picks no earlier pass assigned. An event
   whose picks interleave with a stronger neighbour's scores low on the grid while those picks
   are there, or loses them to it; once the neighbour's picks are gone it stands alone. Picks
   are never shared between passes, and the events of all passes form one catalog.

Times are s on the pick table's epoch; coordinates km in the model's frame. ``activity`` (a
function of times ``[T]`` giving ``[T, S]`` bool) marks the stations active at each time; all
stations are active when it is None.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from catalogs.schema import InputError
from genie.assign import AssignmentRules, counts, meets, resolve
from genie.features import PickTable, kernel_reach_s
from genie.fragments import close_in_time, fragment_events
from genie.locate import locate, relocate
from genie.model import GenieModel

Activity = Callable[[np.ndarray], np.ndarray]


@dataclass
class DetectSettings:
    """Thresholds of :func:`detect` (units in each field's metadata)."""

    threshold: float = field(default=0.4, metadata={"unit": "1", "doc": "grid likelihood a peak must reach"})
    assoc_threshold: float = field(default=0.5, metadata={"unit": "1", "doc": "association probability to keep a pick"})
    min_picks: int = field(default=4, metadata={"unit": "1", "doc": "a source needs this many associated picks"})
    min_stations: int = field(default=3, metadata={"unit": "1", "doc": "... on at least this many stations"})
    min_p_picks: int = field(default=0, metadata={"unit": "1", "doc": "... and at least this many P picks"})
    min_p_and_s_stations: int = field(default=0, metadata={
        "unit": "1", "doc": "... and at least this many stations with both a P and an S pick"})
    min_probability_sum: float = field(default=0.0, metadata={
        "unit": "1", "doc": "... and at least this summed association probability"})
    passes: int = field(default=2, metadata={
        "unit": "1", "doc": "detection passes: each after the first runs on the picks no earlier pass assigned, "
                            "where events hidden by a stronger neighbour's picks stand alone"})
    relocation_rounds: int = field(default=10, metadata={
        "unit": "1", "doc": "most rounds of association at the relocated sources (merging converged duplicates); "
                            "fewer once every source has settled"})
    max_residual_s: float | None = field(default=None, metadata={
        "unit": "s", "doc": "residual gate floor: picks farther from the predicted arrival are released (default: kernel_s)"})
    residual_fraction: float | None = field(default=0.0, metadata={
        "unit": "1", "doc": "the P residual gate grows to this fraction of the travel time (None: timing_sigmas "
                            "times the generator's timing_fraction, set by for_generator at training)"})
    s_residual_factor: float | None = field(default=1.0, metadata={
        "unit": "1", "doc": "the S gate is this multiple of the P gate at the same travel time (None: the "
                            "generator's s_timing_factor, set by for_generator at training)"})
    timing_sigmas: float = field(default=3.0, metadata={
        "unit": "1", "doc": "gate width in standard deviations of the generator's timing error (for_generator)"})
    pick_sigma_floor_s: float | None = field(default=None, metadata={
        "unit": "s", "doc": "a priori timing error (std) of a pick at short travel times, for the location "
                            "uncertainties (None: the generator's independent floor and correlated residual "
                            "combined, set by for_generator; DEFAULT_PICK_SIGMA_S without a generator)"})
    origin_bias_s: float | None = field(default=None, metadata={
        "unit": "s", "doc": "std of a timing error common to all of an event's picks (a picker's delay), which "
                            "only the origin time absorbs: added to its uncertainty (None: the generator's "
                            "event_bias_s, set by for_generator; 0 without a generator)"})
    candidates_per_phase: int = field(default=2, metadata={
        "unit": "1", "doc": "candidate picks per source, station and phase offered to the competitive assignment"})
    source_cost: float = field(default=0.5, metadata={
        "unit": "1", "doc": "cost of a source in the competitive assignment (summed probability it must exceed)"})
    merge_km: float | None = field(default=None, metadata={"unit": "km", "doc": "peak separation in space (default 1 label width)"})
    merge_s: float | None = field(default=None, metadata={
        "unit": "s", "doc": "peak separation in time (default half a window step: the refinement lattice's spacing)"})
    merge_fragments: bool = field(default=True, metadata={
        "unit": "-", "doc": "an event whose picks are mostly a larger event's arrivals (within its residual gate, at "
                            "stations where it has no pick of that phase) and whose other picks fail the rules is a "
                            "fragment of it: the explained picks go to the larger event, the rest are released "
                            "(genie.fragments)"})
    batch_windows: int | None = field(default=None, metadata={
        "unit": "1", "doc": "windows per GNN forward pass (None: sized to the device, windows_per_pass)"})

    def __post_init__(self):
        if isinstance(self.passes, bool) or not isinstance(self.passes, (int, np.integer)) or self.passes < 1:
            raise InputError(f"detection setting passes = {self.passes!r}: needs a whole number >= 1")
        if not isinstance(self.merge_fragments, (bool, np.bool_)):
            raise InputError(f"detection setting merge_fragments = {self.merge_fragments!r}: needs true or false")

    def for_generator(self, params) -> "DetectSettings":
        """These settings with the unset (None) gate terms taken from the timing-error model of the
        generator ``params`` (:class:`~generator.params.GeneratorParams`): its arrival errors have a
        standard deviation of ``timing_fraction * travel time`` (P; ``s_timing_factor`` times that
        for S), so a gate of ``timing_sigmas`` of them keeps 98.6 % of the arrivals of a well-located
        event (Laplace errors; 99.7 % normal) however large the network, while a fixed fraction
        written for short paths drops the S picks of distant stations."""
        fraction = self.residual_fraction
        if fraction is None:
            fraction = self.timing_sigmas * params.timing_fraction
        factor = self.s_residual_factor if self.s_residual_factor is not None else params.s_timing_factor
        floor = self.pick_sigma_floor_s
        if floor is None:
            floor = float(np.hypot(params.timing_floor_s, params.timing_corr_s))
        bias = self.origin_bias_s if self.origin_bias_s is not None else params.event_bias_s
        return dataclasses.replace(self, residual_fraction=float(fraction), s_residual_factor=float(factor),
                                   pick_sigma_floor_s=float(floor), origin_bias_s=float(bias))

    def rules(self) -> AssignmentRules:
        return AssignmentRules(min_picks=self.min_picks, min_stations=self.min_stations, min_p_picks=self.min_p_picks,
                               min_p_and_s_stations=self.min_p_and_s_stations,
                               min_probability_sum=self.min_probability_sum, source_cost=self.source_cost)


# A priori pick timing error (s) where no generator gave one: PhaseNet's picks of local events
# scatter by about 0.1 s (Zhu & Beroza 2019: P 0.05-0.1 s, S 0.1-0.2 s before the S factor).
DEFAULT_PICK_SIGMA_S = 0.1

EVENT_COLUMNS = ["origin_s", "x_km", "y_km", "depth_km", "likelihood", "probability_sum", "misfit_s", "rms_s",
                 "n_p", "n_s", "n_stations", "n_p_and_s", "horizontal_uncertainty_km", "min_horizontal_uncertainty_km",
                 "azimuth_max_horizontal_uncertainty_deg", "depth_uncertainty_km", "time_uncertainty_s", "gap_deg"]
ASSIGNMENT_COLUMNS = ["pick_index", "event_index", "phase", "probability", "residual_s", "station"]


# Size of one product-graph activation [P, W, hidden] (float32 bytes) a CPU forward pass aims
# at, so that the few activations alive in a pass stay in cache. On both benchmark networks
# (about 600 kB per window) passes of 64 windows spill to memory and cost 1.7-1.8x more per
# window on the 2-core CI machine (32 MB L3); 4-16 windows are within 10 % of the best.
CPU_PASS_BYTES = 8 * 2 ** 20
GPU_PASS_WINDOWS = 64
# Windows per block of the grid stage (at least one pass): each block recomputes the k - 1
# windows it shares with the next, so blocks as small as a CPU pass would waste passes.
GRID_BLOCK_WINDOWS = 64


def windows_per_pass(model: GenieModel, requested: int | None = None) -> int:
    """Windows per GNN forward pass: ``requested`` when given; else ``GPU_PASS_WINDOWS`` on a
    GPU, and on a CPU as many as keep one product-graph activation within ``CPU_PASS_BYTES``
    (at least 1)."""
    if requested is not None:
        return max(int(requested), 1)
    if model.device.type != "cpu":
        return GPU_PASS_WINDOWS
    per_window = model.pairs.shape[0] * max(model.config.hidden, model.config.latent) * 4
    return int(max(CPU_PASS_BYTES // per_window, 1))


class WindowStore:
    """Embeddings ``[X, C]`` of the windows at origin times ``first_s + j * offset_step_s``
    (``j = 0 .. n - 1``), computed on demand in passes of ``batch_windows`` windows
    (:func:`windows_per_pass` when None) and kept for reuse.

    ``get(centre)`` returns the K windows around centre indices (centre ``c`` uses windows
    ``c .. c + K - 1``, whose middle one has origin ``first_s + (c + (K - 1) / 2) * step``)."""

    def __init__(self, model: GenieModel, picks: PickTable, first_s: float, n: int,
                 activity: Activity | None = None, batch_windows: int | None = None):
        self.model, self.picks, self.first_s, self.n = model, picks, float(first_s), int(n)
        self.activity, self.batch = activity, windows_per_pass(model, batch_windows)
        self.step = model.config.offset_step_s
        self.slot = np.full(self.n, -1, dtype=np.int64)
        # Stored embeddings fill the first `used` columns; capacity doubles when full.
        self.z = torch.zeros((model.n_sources, 64, model.config.latent), device=model.device)
        self.used = 0
        self.n_computed = 0

    def origins(self, windows: np.ndarray) -> np.ndarray:
        return self.first_s + np.asarray(windows) * self.step

    def active(self, times: np.ndarray) -> torch.Tensor | None:
        if self.activity is None:
            return None
        return torch.as_tensor(self.activity(np.asarray(times)), device=self.model.device)

    @torch.no_grad()
    def embed(self, windows: np.ndarray) -> torch.Tensor:
        """Embeddings ``[X, W, C]`` of ``windows [W]`` (computed, not stored)."""
        model, out = self.model, []
        for lo in range(0, len(windows), self.batch):
            times = self.origins(windows[lo:lo + self.batch])
            features = model.features(self.picks, torch.as_tensor(times, device=model.device), self.active(times))
            out.append(model.embed(features))
        self.n_computed += len(windows)
        if not out:
            return torch.zeros((model.n_sources, 0, model.config.latent), device=model.device)
        return torch.cat(out, dim=1)

    def keep(self, windows: np.ndarray, z: torch.Tensor) -> None:
        """Store embeddings ``z [X, W, C]`` of ``windows [W]`` (those not stored yet)."""
        new = self.slot[windows] < 0
        if not new.any():
            return
        windows, z = windows[new], z[:, torch.as_tensor(np.flatnonzero(new), device=z.device)]
        end = self.used + len(windows)
        if end > self.z.shape[1]:
            grown = torch.zeros((self.z.shape[0], max(2 * self.z.shape[1], end), self.z.shape[2]), device=self.z.device)
            grown[:, :self.used] = self.z[:, :self.used]
            self.z = grown
        self.z[:, self.used:end] = z
        self.slot[windows] = self.used + np.arange(len(windows))
        self.used = end

    def get(self, centre: np.ndarray) -> torch.Tensor:
        """``[X, D, K, C]``: the K windows around each centre index ``centre [D]``."""
        k = self.model.config.n_offsets
        windows = np.clip(np.asarray(centre, dtype=np.int64)[:, None] + np.arange(k)[None, :], 0, self.n - 1)
        missing = np.unique(windows[self.slot[windows] < 0])
        if len(missing):
            self.keep(missing, self.embed(missing))
        index = torch.as_tensor(self.slot[windows].reshape(-1), device=self.z.device)
        return self.z[:, index].view(self.z.shape[0], len(windows), k, -1)


def residual_gate(settings: DetectSettings, kernel_s: float, tt_s, phase=None):
    """The residual gate (s) at travel times ``tt_s`` (s): ``max(floor, residual_fraction * tt)``
    with the floor ``max_residual_s`` (the model's kernel width when None), times
    ``s_residual_factor`` for S. ``phase`` (0 P / 1 S) broadcasts with ``tt_s``; None: the last
    axis of ``tt_s`` is (P, S). Unresolved terms (None, see :meth:`DetectSettings.for_generator`)
    count as fraction 0 and factor 1."""
    floor = settings.max_residual_s if settings.max_residual_s is not None else kernel_s
    gate = np.maximum(floor, (settings.residual_fraction or 0.0) * np.asarray(tt_s, dtype="float64"))
    factor = settings.s_residual_factor if settings.s_residual_factor is not None else 1.0
    scale = np.array([1.0, factor]) if phase is None else np.where(np.asarray(phase) == 1, factor, 1.0)
    return gate * scale


def pick_sigma(settings: DetectSettings, tt_s) -> np.ndarray:
    """``[..., 2]`` a priori timing errors (std, s) of P and S picks at travel times ``tt_s
    [..., 2]`` (s): ``hypot(pick_sigma_floor_s, fraction * tt)`` with ``fraction =
    residual_fraction / timing_sigmas`` (the gate is ``timing_sigmas`` of these), times
    ``s_residual_factor`` for S: the generator's timing-error model (its independent floor and
    correlated station residual in one floor, which overstates its spread by up to 15 % where
    the fraction reaches the independent floor), velocity-model error included where the
    calibration fitted it against agency locations."""
    floor = settings.pick_sigma_floor_s if settings.pick_sigma_floor_s is not None else DEFAULT_PICK_SIGMA_S
    fraction = (settings.residual_fraction or 0.0) / settings.timing_sigmas
    factor = settings.s_residual_factor if settings.s_residual_factor is not None else 1.0
    return np.hypot(floor, fraction * np.asarray(tt_s, dtype="float64")) * np.array([1.0, factor])


@torch.no_grad()
def coincident_windows(model: GenieModel, picks: PickTable, first_s: float, n: int, settings: DetectSettings,
                       activity: Activity | None = None) -> np.ndarray:
    """``[n]`` bool: the centre times ``first_s + j * offset_step_s`` where some source node
    could hold an event that meets the acceptance rules; the GNN runs only there.

    At a node and centre time, a station counts for P (S) when it is active and has a pick of
    any label within ``tau`` of the node's predicted P (S) arrival, ``tau`` = the pair's
    :meth:`~genie.model.GenieModel.cell_tolerance_s` (an event's arrivals against its nearest
    node's) + half the window step (its origin against the nearest centre) + the residual
    gate. A centre is kept where some node has ``min_stations`` stations, ``min_p_picks`` for P,
    ``min_p_and_s_stations`` for both and ``min_picks`` counts of P and S together: every event
    the rules accept (located inside the source nodes' box) passes at its nearest node and
    centre, so the screen only skips windows that could not give one.

    Counts come from cumulative pick counts per station on cells of about 0.1 s (intervals
    widened to whole cells), laid out so that each pair's counts for consecutive centres are
    contiguous; no loop over picks, pairs or centres. Only centres with enough picks of any
    station between their earliest and latest interval (:func:`_pick_count_floor`) are counted,
    in blocks that skip the stretches without one: sparse picks cost little."""
    keep = np.zeros(n, dtype=bool)
    if picks.n_picks == 0 or n == 0:
        return keep
    dev, c = model.device, model.config
    step = c.offset_step_s
    ratio = max(int(round(step / 0.1)), 1)  # cells per window step
    cell = step / ratio
    tt = model.pair_tt.cpu().numpy().astype("float64")  # [P, 2], statics included
    tau = model.cell_tolerance_s() + step / 2 + residual_gate(settings, c.kernel_s, tt)
    station = model.pairs[:, 0].cpu().numpy()
    source = model.pairs[:, 1].to(dev)
    n_pairs, n_sta = len(station), model.n_stations
    order = np.argsort(picks.time_s, kind="stable")
    p_time, p_station = picks.time_s[order], picks.station[order]
    lead = float((tt - tau).min()) - cell
    # Whole-centre test first: fewer picks of all stations together than any node needs rules
    # the centre out without counting per pair.
    centre_s = first_s + np.arange(n) * step
    in_reach = (np.searchsorted(p_time, centre_s + float((tt + tau).max()) + cell, "right")
                - np.searchsorted(p_time, centre_s + lead, "left"))
    candidate = in_reach >= _pick_count_floor(settings)
    block = int(max(64, min(2048, 2 ** 22 // n_pairs)))
    for j0, j1 in _runs(candidate, block, RUN_GAP_CENTRES):
        j = j1 - j0
        base = first_s + j0 * step + lead
        lo_cell = np.floor((first_s + j0 * step + tt - tau - base) / cell).astype(np.int64)  # [P, 2]
        hi_cell = np.floor((first_s + j0 * step + tt + tau - base) / cell).astype(np.int64) + 1
        n_rows = int(hi_cell.max()) // ratio + j + 1  # cells per station: n_rows * ratio
        length = n_rows * ratio
        a, b = np.searchsorted(p_time, [base, base + length * cell])
        pick_cell = np.floor((p_time[a:b] - base) / cell).astype(np.int64).clip(0, length - 1)
        # cum[s, k]: picks of station s in cells < k.
        counts = np.bincount(p_station[a:b] * length + pick_cell, minlength=n_sta * length).reshape(n_sta, length)
        cum = np.concatenate([np.zeros((n_sta, 1), np.int64), np.cumsum(counts, 1)[:, :-1]], 1)
        # cum[s, m + ratio * q] at [s, m, q]: a pair's cells for consecutive centres are a row.
        rows = torch.as_tensor(cum.reshape(n_sta, n_rows, ratio).transpose(0, 2, 1).reshape(-1).astype(np.int32),
                               device=dev).unfold(0, j, 1)

        def at(k):
            first = (station[:, None] * ratio + k % ratio) * n_rows + k // ratio  # [P, 2]
            return rows.index_select(0, torch.as_tensor(first.reshape(-1), device=dev)).view(n_pairs, 2, j)

        has = at(hi_cell) > at(lo_cell)  # [P, 2, J]
        if activity is not None:
            active = torch.as_tensor(activity(first_s + (j0 + np.arange(j)) * step), device=dev)  # [J, S]
            has &= active.T[torch.as_tensor(station, device=dev)][:, None, :]

        def per_source(v):
            return torch.zeros((model.n_sources, j), device=dev).index_add_(0, source, v.to(torch.float32))

        n_p, n_s = per_source(has[:, 0]), per_source(has[:, 1])
        ok = ((per_source(has[:, 0] | has[:, 1]) >= settings.min_stations) & (n_p >= settings.min_p_picks)
              & (per_source(has[:, 0] & has[:, 1]) >= settings.min_p_and_s_stations)
              & (n_p + n_s >= settings.min_picks))
        keep[j0:j0 + j] = ok.any(0).cpu().numpy()
    return keep


# Candidate centres further apart than this are screened in separate blocks: a block costs its
# whole span of centres, so one block over two events a day apart would cost the day.
RUN_GAP_CENTRES = 64


def _pick_count_floor(settings: DetectSettings) -> int:
    """The fewest picks (of all stations together) a node's counts in :func:`coincident_windows`
    can pass the rules with: ``min_stations`` and ``min_p_picks`` count distinct stations, each
    with a pick, and one pick may count for both P and S of ``min_picks``."""
    return max(settings.min_stations, settings.min_p_picks, -(-settings.min_picks // 2), 1)


def _runs(mask: np.ndarray, longest: int, gap: int) -> list[tuple[int, int]]:
    """``[(j0, j1)]``: ranges of at most ``longest`` indices covering every True of ``mask [n]``,
    a new range where ``gap`` or more False lie between two Trues; none without a True."""
    index = np.flatnonzero(mask)
    if len(index) == 0:
        return []
    # A range also ends where the fixed grid of ``longest`` does, so none is longer.
    new = np.r_[True, (np.diff(index) > gap) | (np.diff(index // longest) != 0)]
    first = np.flatnonzero(new)
    last = np.r_[first[1:], len(index)] - 1
    return list(zip(index[first].tolist(), (index[last] + 1).tolist()))


@torch.no_grad()
def grid_likelihood(model: GenieModel, store: WindowStore, need: np.ndarray, keep_above: float,
                    progress: bool = False) -> np.ndarray:
    """Source likelihood ``[T, X]`` at the centres ``0 .. T - 1`` of ``store`` where ``need [T]``
    (0 elsewhere); the windows of centres whose maximum reaches ``keep_above`` stay in the store."""
    k = model.config.n_offsets
    n = len(need)
    out = np.zeros((n, model.n_sources), dtype=np.float32)
    block = max(max(store.batch, GRID_BLOCK_WINDOWS) - (k - 1), 1)
    starts = [j0 for j0 in range(0, n, block) if need[j0:j0 + block].any()]
    for j0 in tqdm(starts, desc="windows", unit="block", disable=not progress):
        j1 = min(j0 + block, n)
        centre = np.flatnonzero(need[j0:j1]) + j0
        windows = np.unique(centre[:, None] + np.arange(k)[None, :])
        z = store.embed(windows)  # [X, W, C]
        position = np.searchsorted(windows, centre[:, None] + np.arange(k)[None, :])
        stacked = z[:, torch.as_tensor(position.reshape(-1), device=z.device)].view(z.shape[0], len(centre), k, -1)
        lk = torch.sigmoid(model.grid_logits(stacked)).cpu().numpy()
        out[centre] = lk
        strong = lk.max(1) >= keep_above
        if strong.any():
            used = np.unique(position[strong])
            store.keep(windows[used], z[:, torch.as_tensor(used, device=z.device)])
    return out


def _merge_distances(model: GenieModel, settings: DetectSettings) -> tuple[float, float]:
    """``(merge_km, merge_s)``: the settings', or where they are None one label width in space
    (the radius within which a grid peak is a maximum, so that merging removes no peak the grid
    itself resolves) and half a window step in time (the refinement lattice's time spacing:
    refined sources further apart than that in origin time are separate answers of the
    refinement, and a swarm's events come that close; a label width, 4.8 s on the benchmark's
    grid, merged an M 6 mainshock into an aftershock source 3.6 s from it). Duplicates of one
    event are left to the relocation rounds, where they converge, and to the competitive
    assignment."""
    c = model.config
    return (settings.merge_km if settings.merge_km is not None else c.label_sigma_km,
            settings.merge_s if settings.merge_s is not None else c.offset_step_s / 2)


def find_peaks(model: GenieModel, likelihood: np.ndarray, threshold: float, merge_km: float,
               merge_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Peaks ``(time index, source node)`` of ``likelihood [T, X]``, strongest first."""
    step = model.config.offset_step_s
    radius = max(int(round(model.config.label_sigma_s / step)), 1)
    rows = np.flatnonzero(likelihood.max(1) >= threshold) if len(likelihood) else np.zeros(0, dtype=np.int64)
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # Only the rows near a strong value matter; pooling runs on them and their neighbours.
    near = np.unique(np.clip(rows[:, None] + np.arange(-radius, radius + 1)[None, :], 0, len(likelihood) - 1))
    lk = torch.as_tensor(likelihood[near])
    gaps = np.r_[True, np.diff(near) > 1, True]
    # Rows not adjacent in time must not pool together: pad each run with a -inf row.
    run = np.cumsum(gaps[:-1]) - 1
    padded_index = np.arange(len(near)) + run
    padded = torch.full((len(near) + run[-1] + 1, lk.shape[1]), -torch.inf)
    padded[torch.as_tensor(padded_index)] = lk
    in_time = torch.nn.functional.max_pool1d(padded.T[None], 2 * radius + 1, stride=1, padding=radius)[0].T
    in_time = in_time[torch.as_tensor(padded_index)]
    edges = model.source_graph_edges.cpu()
    in_space = lk.clone()
    if edges.shape[1]:
        in_space = in_space.index_reduce(1, edges[1], lk[:, edges[0]], "amax", include_self=True)
    peak = (lk >= threshold) & (lk >= in_time) & (lk >= in_space)
    t_local, x_idx = (a.numpy() for a in torch.nonzero(peak, as_tuple=True))
    t_idx = near[t_local]
    order = np.argsort(-likelihood[t_idx, x_idx], kind="stable")
    t_idx, x_idx = t_idx[order], x_idx[order]
    keep = suppress(t_idx * step, model.source_xyz.cpu().numpy()[x_idx], merge_s, merge_km)
    return t_idx[keep], x_idx[keep]


def suppress(times_s: np.ndarray, xyz: np.ndarray, merge_s: float, merge_km: float) -> np.ndarray:
    """Keep-mask of sources ordered strongest first: a source within ``merge_s`` and
    ``merge_km`` (epicentral) of a stronger kept one is dropped (greedy non-maximum
    suppression). Neighbour pairs come from time-sorted windows, and the greedy decisions are
    made for all sources at once, round by round (a source is kept once every stronger
    neighbour is dropped, dropped once one is kept), so the cost follows the pairs, not n^2."""
    n = len(times_s)
    keep = np.ones(n, dtype=bool)
    if n < 2:
        return keep
    a, b = close_in_time(times_s, merge_s)
    close = (np.abs(times_s[a] - times_s[b]) < merge_s) & (
        np.linalg.norm(xyz[a, :2] - xyz[b, :2], axis=1) < merge_km)
    a, b = a[close], b[close]
    strong, weak = np.minimum(a, b), np.maximum(a, b)  # index order is strength order
    state = np.zeros(n, dtype=np.int8)  # 0 undecided, 1 kept, -1 dropped
    while (state == 0).any():
        beaten = np.zeros(n, dtype=bool)
        beaten[weak[state[strong] == 1]] = True
        pending = np.zeros(n, dtype=bool)
        pending[weak[state[strong] == 0]] = True
        undecided = state == 0
        state[undecided & beaten] = -1
        state[undecided & ~beaten & ~pending] = 1
    return state == 1


def source_bounds(model: GenieModel) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` minimum and maximum (km) of the source graph's nodes: the region the model
    searches (the station box padded by ``padding_km``). Every location stays inside it: the
    model is trained to find no event beyond ``roi_padding_km`` outside the stations, so a
    source that a few picks would pull farther out is one the model cannot vouch for."""
    xyz = model.source_xyz.cpu().numpy().astype("float64")
    return xyz[:, :2].min(0), xyz[:, :2].max(0)


def _lattice(model: GenieModel) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of the refinement lattice: ``[L, 3]`` km and ``[L]`` s."""
    a = model.config.label_sigma_km / 2
    d = model.config.offset_step_s / 2
    grid = np.array(np.meshgrid([-a, 0, a], [-a, 0, a], [-a, 0, a], [-d, 0, d], indexing="ij")).reshape(4, -1).T
    return grid[:, :3], grid[:, 3]


def _embeddings(model: GenieModel, store: WindowStore, origin_s: np.ndarray, positions: np.ndarray,
                dt_s: np.ndarray | None = None) -> torch.Tensor:
    """Query embeddings ``[D, L, latent]`` of sources at ``positions [D, L, 3]`` (km) near the
    times ``origin_s [D]`` (plus ``dt_s [D, L]``), from the store's windows nearest each time."""
    k = model.config.n_offsets
    centre = np.rint((np.asarray(origin_s) - store.first_s) / store.step - (k - 1) / 2).astype(np.int64)
    centre = np.clip(centre, 0, store.n - k)
    centre_s = store.first_s + (centre + (k - 1) / 2) * store.step
    offset = (np.asarray(origin_s) - centre_s)[:, None] + (0.0 if dt_s is None else dt_s)
    out = []
    per = 256
    for lo in range(0, len(centre), per):
        sl = slice(lo, lo + per)
        z = store.get(centre[sl])
        out.append(model.query_embedding(z, torch.as_tensor(positions[sl], dtype=torch.float32, device=model.device),
                                         torch.as_tensor(offset[sl], dtype=torch.float32, device=model.device)))
    if not out:
        return torch.zeros((0, positions.shape[1], model.config.latent), device=model.device)
    return torch.cat(out)


# Candidate slots (source x station x candidate) scored at once by _entries: the association
# head's hidden activations [sources, S, M, hidden] stay at a few MB however many sources a long
# dense stretch proposes (all at once, 20,000 sources on 100 stations held gigabytes).
ENTRY_CHUNK_SLOTS = 1 << 16


@torch.no_grad()
def _entries(model: GenieModel, picks: PickTable, xyz: np.ndarray, origin: np.ndarray, embedding: torch.Tensor,
             threshold: float, per_phase: int, activity: Activity | None) -> pd.DataFrame:
    """Candidate entries ``(source, station, phase, pick_index, probability, tt_s)``: per source,
    station and phase the ``per_phase`` most likely candidate picks with probability >=
    ``threshold``; ``tt_s`` is the predicted travel time (statics included). Sources are scored
    in chunks of ``ENTRY_CHUNK_SLOTS`` candidate slots."""
    per = max(ENTRY_CHUNK_SLOTS // (model.n_stations * model.config.assoc_candidates), 1)
    parts = [_entries_chunk(model, picks, xyz[lo:lo + per], origin[lo:lo + per], embedding[lo:lo + per], threshold,
                            per_phase, activity, lo) for lo in range(0, len(origin), per)]
    if not parts:
        return _no_entries()
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _no_entries() -> pd.DataFrame:
    return pd.DataFrame({c: np.zeros(0, dtype=t) for c, t in
                         (("source", np.int64), ("station", np.int64), ("phase", np.int64),
                          ("pick_index", np.int64), ("probability", "float64"), ("tt_s", "float64"))})


def _entries_chunk(model: GenieModel, picks: PickTable, xyz: np.ndarray, origin: np.ndarray,
                   embedding: torch.Tensor, threshold: float, per_phase: int, activity: Activity | None,
                   first: int) -> pd.DataFrame:
    """:func:`_entries` of the sources ``first, first + 1, ...`` given (their rows)."""
    active = None if activity is None else torch.as_tensor(activity(origin), device=model.device)
    pos = torch.as_tensor(xyz, dtype=torch.float32, device=model.device)
    index, valid, station_attr, pick_attr, _ = model.candidates(picks, pos, torch.as_tensor(origin, device=model.device),
                                                                active)
    prob = torch.softmax(model.association_logits(embedding, station_attr, pick_attr, valid), dim=-2)  # [D, S, M+1, 2]
    m = model.config.assoc_candidates
    top = prob[:, :, :m, :].topk(min(per_phase, m), dim=2)  # [D, S, k, 2]
    hit = (top.values >= threshold) & (top.values > 0)  # probability 0: an empty candidate slot
    d_idx, s_idx, r_idx, k_idx = (a.cpu().numpy() for a in torch.nonzero(hit, as_tuple=True))
    if len(d_idx) == 0:
        return _no_entries()
    slot = top.indices[d_idx, s_idx, r_idx, k_idx].cpu().numpy()
    tt = model.arrival_times(pos).cpu().numpy()  # [D, S, 2]
    return pd.DataFrame({"source": d_idx + first, "station": s_idx, "phase": k_idx,
                         "pick_index": index[d_idx, s_idx, slot].cpu().numpy(),
                         "probability": top.values[d_idx, s_idx, r_idx, k_idx].cpu().numpy().astype("float64"),
                         "tt_s": tt[d_idx, s_idx, k_idx]})


def _greedy(entries: pd.DataFrame) -> pd.DataFrame:
    """Per source, station and phase the most likely entry; a pick claimed twice goes to the
    most probable (source, phase)."""
    best = entries.sort_values("probability", ascending=False, kind="stable")
    best = best.drop_duplicates(["source", "station", "phase"]).drop_duplicates("pick_index")
    return best.sort_values(["source", "station", "phase"], kind="stable")


def _arrivals(entries: pd.DataFrame, picks: PickTable, statics: np.ndarray, n_sources: int, n_stations: int) -> np.ndarray:
    """``[D, S, 2]`` pick times minus station statics (NaN where no pick) of one entry per slot."""
    arrivals = np.full((n_sources, n_stations, 2), np.nan)
    s, k = entries["station"].to_numpy(), entries["phase"].to_numpy()
    arrivals[entries["source"].to_numpy(), s, k] = picks.time_s[entries["pick_index"].to_numpy()] - statics[s, k]
    return arrivals


def _pick_set_signature(source: np.ndarray, pick_index: np.ndarray, n_sources: int) -> np.ndarray:
    """``[n_sources]`` uint64: a hash of each source's set of pick indices (0 for none), equal
    for equal sets whatever their order (sum of splitmix64 hashes, wrapping)."""
    with np.errstate(over="ignore"):
        h = np.asarray(pick_index, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
        signature = np.zeros(n_sources, dtype=np.uint64)
        np.add.at(signature, np.asarray(source, dtype=np.int64), h)
    return signature


@torch.no_grad()
def _relocation_rounds(model: GenieModel, picks: PickTable, store: WindowStore, xyz: np.ndarray, origin: np.ndarray,
                       likelihood: np.ndarray, embedding: torch.Tensor, settings: DetectSettings,
                       activity: Activity | None, gate) -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor]:
    """Step 4 of the module doc: sources ``xyz [D, 3]`` (km), ``origin [D]`` (s) with their
    ``likelihood [D]`` and query ``embedding [D, C]`` after at most ``relocation_rounds`` rounds
    of association and relocation, fewer once they converge (returned in the same form, merged
    duplicates dropped).

    A source is relocated until it settles: it holds the picks it was last located with, and
    that relocation moved it less than the fine grid spacing (a source without picks is not
    moved and settles at once); a round that relocates none ends the loop. A peak of the coarse
    grid can sit a label width from a small event, where it takes only some of the event's
    picks, or a neighbour's: each relocation moves it toward the picks it holds and each
    association then finds the rest, so the picks settle over several rounds. Sources that did
    not move keep their entries and embeddings, so late rounds cost only the sources still
    moving. ``gate(tt_s, phase)`` is the residual gate (s) each location residual is capped at."""
    c = model.config
    stations = model.station_xyz.cpu().numpy().astype("float64")
    statics = model.statics.cpu().numpy()
    depth_range = model.location_depths_km
    bounds = source_bounds(model)
    merge_km, merge_s = _merge_distances(model, settings)
    n = len(origin)
    fresh = np.ones(n, dtype=bool)  # sources whose entries must be (re)computed
    located_with = np.zeros(n, dtype=np.uint64)  # signature of the picks each source was last located with
    settled = np.zeros(n, dtype=bool)  # located, and the last relocation moved it less than the fine spacing
    fine_km = max(1.0, c.label_sigma_km / 10)
    cached = None
    for _ in range(settings.relocation_rounds):
        rows = np.flatnonzero(fresh)
        entries = cached
        if len(rows):
            new = _entries(model, picks, xyz[rows], origin[rows], embedding[rows], settings.assoc_threshold, 1,
                           activity)
            new = new.assign(source=rows[new["source"].to_numpy()])
            entries = new if cached is None else pd.concat([cached[~fresh[cached["source"].to_numpy()]], new],
                                                            ignore_index=True)
        cached = entries
        table = _greedy(entries)
        source = table["source"].to_numpy()
        signature = _pick_set_signature(source, table["pick_index"].to_numpy(), n)
        stale = ~settled | (signature != located_with)
        if not stale.any():
            break
        rows = np.flatnonzero(stale)
        local = np.full(n, -1)
        local[rows] = np.arange(len(rows))
        mine = table[stale[source]]
        arrivals = _arrivals(mine.assign(source=local[mine["source"].to_numpy()]), picks, statics, len(rows),
                             model.n_stations)
        # The search spans two label widths around the source; its grid coarsens with the width
        # (wider labels come with coarser source graphs), so it grows from 1,352 points for 8 km
        # labels to 2,312 for 24 km instead of 12,168; the final round's least squares refines it.
        new_xyz, new_origin, _ = locate(model.travel_times, stations, arrivals, xyz[rows], depth_range,
                                        radius_km=2 * c.label_sigma_km, coarse_km=max(2.5, c.label_sigma_km / 4),
                                        fine_km=fine_km, gate=gate, xy_bounds_km=bounds)
        located = np.isfinite(new_origin)
        # Every located source gets its entries and embedding anew: even one that stayed put
        # was scored with its refinement-lattice embedding, not the one at its location.
        moved = np.zeros(n, dtype=bool)
        moved[rows[located]] = True
        settled[rows] = ~located | (np.linalg.norm(new_xyz - xyz[rows], axis=1) < fine_km)
        xyz[rows[located]], origin[rows[located]] = new_xyz[located], new_origin[located]
        located_with[rows] = signature[rows]
        # Halves of a split event converge on relocation: keep the one with more picks.
        n_picks = np.bincount(source, minlength=n)
        order = np.lexsort((-likelihood, -n_picks))
        chosen = np.sort(order[suppress(origin[order], xyz[order], merge_s, merge_km)])
        renumber = np.full(n, -1)
        renumber[chosen] = np.arange(len(chosen))
        xyz, origin, likelihood, embedding = xyz[chosen], origin[chosen], likelihood[chosen], embedding[chosen]
        located_with, settled, fresh = located_with[chosen], settled[chosen], moved[chosen]
        cached = cached.assign(source=renumber[cached["source"].to_numpy()])
        cached = cached[cached["source"].to_numpy() >= 0]
        n = len(chosen)
        if fresh.any():
            embedding = embedding.clone()
            embedding[torch.as_tensor(np.flatnonzero(fresh), device=embedding.device)] = _embeddings(
                model, store, origin[fresh], xyz[fresh][:, None, :])[:, 0]
    return xyz, origin, likelihood, embedding


@torch.no_grad()
def locate_and_associate(model: GenieModel, picks: PickTable, store: WindowStore, centres_s: np.ndarray,
                         nodes: np.ndarray, settings: DetectSettings, activity: Activity | None = None,
                         lap: Callable[[str], None] = lambda name: None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Refine peaks at centre times ``centres_s [D]`` and source nodes ``nodes [D]``, then
    associate and locate (steps 3-5 of the module doc); ``lap(stage)`` is called after each
    stage (timing)."""
    c = model.config
    empty = pd.DataFrame({col: pd.Series(dtype="float64") for col in EVENT_COLUMNS}), \
        pd.DataFrame({col: pd.Series(dtype="float64") for col in ASSIGNMENT_COLUMNS})
    if len(nodes) == 0:
        return empty
    depth_range = model.location_depths_km
    dxyz, dts = _lattice(model)
    bounds = source_bounds(model)
    positions = model.source_xyz.cpu().numpy()[nodes][:, None, :] + dxyz[None]  # [D, L, 3]
    positions[..., :2] = np.clip(positions[..., :2], *bounds)
    positions[..., 2] = np.clip(positions[..., 2], *depth_range)
    lattice = _embeddings(model, store, centres_s, positions, np.broadcast_to(dts, positions.shape[:2]))
    like = torch.sigmoid(model.query_head(lattice).squeeze(-1))
    best = like.argmax(1)
    rows = torch.arange(len(best), device=model.device)
    embedding, likelihood = lattice[rows, best], like[rows, best].cpu().numpy()
    best = best.cpu().numpy()
    xyz, origin = positions[np.arange(len(best)), best].astype("float64"), centres_s + dts[best]
    order = np.argsort(-likelihood, kind="stable")
    merge_km, merge_s = _merge_distances(model, settings)
    chosen = np.sort(order[suppress(origin[order], xyz[order], merge_s, merge_km)])
    xyz, origin, likelihood, embedding = xyz[chosen], origin[chosen], likelihood[chosen], embedding[chosen]
    lap("refine_s")

    stations = model.station_xyz.cpu().numpy().astype("float64")
    statics = model.statics.cpu().numpy()
    n_sta = model.n_stations

    def gate(tt_s, phase):
        return residual_gate(settings, c.kernel_s, tt_s, phase)

    xyz, origin, likelihood, embedding = _relocation_rounds(model, picks, store, xyz, origin, likelihood, embedding,
                                                            settings, activity, gate)
    lap("relocation_rounds_s")

    # Final round: gated candidates, exact competitive assignment, least-squares relocation.
    entries = _entries(model, picks, xyz, origin, embedding, settings.assoc_threshold, settings.candidates_per_phase,
                       activity)
    residual = picks.time_s[entries["pick_index"].to_numpy()] - origin[entries["source"].to_numpy()] - entries["tt_s"]
    entries = entries[np.abs(residual.to_numpy()) <= gate(entries["tt_s"].to_numpy(), entries["phase"].to_numpy())]
    rules = settings.rules()
    lap("association_s")
    kept = entries[resolve(entries["source"], entries["pick_index"], entries["station"], entries["phase"],
                           entries["probability"], rules)]
    lap("assignment_s")
    sources = np.unique(kept["source"].to_numpy())
    if len(sources) == 0:
        return empty
    renumber = np.full(len(origin), -1)
    renumber[sources] = np.arange(len(sources))
    kept = kept.assign(source=renumber[kept["source"].to_numpy()])
    xyz, origin, likelihood = xyz[sources], origin[sources], likelihood[sources]
    arrivals = _arrivals(kept, picks, statics, len(sources), n_sta)
    loc = relocate(model.travel_times, stations, arrivals, xyz, origin, depth_range, xy_bounds_km=bounds,
                   pick_sigma_s=pick_sigma(settings, model.travel_times(xyz, stations)),
                   origin_bias_s=settings.origin_bias_s or 0.0)
    e, s, k = (kept[col].to_numpy() for col in ("source", "station", "phase"))
    tt = model.travel_times(loc.xyz, stations)[e, s, k] + statics[s, k]
    kept = kept.assign(residual_s=loc.residual_s[e, s, k])
    kept = kept[np.abs(kept["residual_s"].to_numpy()) <= gate(tt, k)]
    lap("location_s")

    # Released picks may leave a source below the thresholds: it is dropped.
    e, s, k = (kept[col].to_numpy() for col in ("source", "station", "phase"))
    tally, stats = _pick_statistics(e, s, k, kept["probability"].to_numpy(), kept["residual_s"].to_numpy(),
                                    len(sources))
    good = meets(tally, stats["probability_sum"], rules)
    events = pd.DataFrame({"origin_s": loc.origin_s, "x_km": loc.xyz[:, 0], "y_km": loc.xyz[:, 1],
                           "depth_km": loc.xyz[:, 2], "likelihood": likelihood, **stats,
                           "horizontal_uncertainty_km": loc.horizontal_km, "min_horizontal_uncertainty_km": loc.minor_km,
                           "azimuth_max_horizontal_uncertainty_deg": loc.azimuth_deg, "depth_uncertainty_km": loc.depth_km,
                           "time_uncertainty_s": loc.time_s, "gap_deg": loc.gap_deg})[EVENT_COLUMNS]
    good_idx = np.flatnonzero(good)
    events = events.iloc[good_idx]
    order = np.argsort(events["origin_s"].to_numpy(), kind="stable")
    final = np.full(len(sources), -1)
    final[good_idx[order]] = np.arange(len(good_idx))
    events = events.iloc[order].reset_index(drop=True)
    kept = kept.assign(event_index=final[kept["source"].to_numpy()])
    kept = kept[kept["event_index"] >= 0]
    assignments = pd.DataFrame({"pick_index": kept["pick_index"].to_numpy(), "event_index": kept["event_index"].to_numpy(),
                                "phase": np.array(["P", "S"])[kept["phase"].to_numpy()],
                                "probability": kept["probability"].to_numpy(),
                                "residual_s": kept["residual_s"].to_numpy(), "station": kept["station"].to_numpy()})
    return events, assignments.sort_values(["event_index", "pick_index"]).reset_index(drop=True)


def detect(model: GenieModel, picks: PickTable, start_s: float, end_s: float, settings: DetectSettings | None = None,
           progress: bool = False, activity: Activity | None = None,
           timings: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sources with origin times in ``[start_s, end_s)`` and their picks, in ``settings.passes``
    passes (module doc, step 6).

    Windows are evaluated over ``[start_s - margin, end_s + margin)`` (two label widths in time)
    so that peaks at the edges are found as in a longer run; sources are kept when their final
    origin falls inside ``[start_s, end_s)``.

    Returns ``(events, assignments)``: events with ``origin_s`` (s), ``x_km, y_km, depth_km``,
    ``likelihood`` (0-1), ``probability_sum`` (summed association probability of its picks),
    ``misfit_s`` (mean absolute residual), ``rms_s``, ``n_p, n_s, n_stations``, 1-sigma
    ``horizontal_uncertainty_km`` (semi-major axis), ``min_horizontal_uncertainty_km`` (semi-minor),
    ``azimuth_max_horizontal_uncertainty_deg`` (of the semi-major axis), ``depth_uncertainty_km``,
    ``time_uncertainty_s`` and ``gap_deg``; assignments with ``pick_index`` (row of the arrays
    the pick table was built from), ``event_index`` (row of events), ``phase``,
    ``probability``, ``residual_s`` (pick minus predicted arrival, statics included) and
    ``station``."""
    settings = settings or DetectSettings()
    timings = {} if timings is None else timings
    parts_e, parts_a = [], []
    rows = np.arange(picks.n_picks)
    removed = None
    for number in range(settings.passes):
        table = picks if number == 0 else picks.subset(rows)
        events, assignments = _detect_pass(model, table, start_s, end_s, settings, progress, activity, timings,
                                           removed)
        assigned = rows[assignments["pick_index"].to_numpy(dtype=np.int64)]
        removed = (picks.station[assigned], picks.time_s[assigned])
        parts_e.append(events)
        parts_a.append(assignments.assign(pick_index=assigned,
                                          event_index=assignments["event_index"] + sum(len(e) for e in parts_e[:-1])))
        timings[f"events_pass_{number + 1}"] = len(events)
        rows = np.setdiff1d(rows, assigned, assume_unique=True)
        if len(events) == 0 or len(rows) == 0:
            break
    events = pd.concat(parts_e, ignore_index=True)
    assignments = pd.concat(parts_a, ignore_index=True)
    if settings.merge_fragments and len(events) > 1:
        events, assignments = _merge_fragments(model, picks, events, assignments, settings)
        timings["fragments"] = timings.get("fragments", 0) + sum(len(e) for e in parts_e) - len(events)
    order = np.argsort(events["origin_s"].to_numpy(), kind="stable")
    renumber = np.empty_like(order)
    renumber[order] = np.arange(len(order))
    assignments = assignments.assign(event_index=renumber[assignments["event_index"].to_numpy(dtype=np.int64)])
    return (events.iloc[order].reset_index(drop=True),
            assignments.sort_values(["event_index", "pick_index"], kind="stable").reset_index(drop=True))


def _pick_statistics(event: np.ndarray, station: np.ndarray, phase: np.ndarray, probability: np.ndarray,
                     residual_s: np.ndarray, n_events: int) -> tuple[dict, dict]:
    """Per event ``[n_events]`` from its assigned picks (``phase`` 0 P / 1 S, residuals in s): the
    counts of :func:`genie.assign.counts`, and the event columns ``probability_sum``,
    ``misfit_s`` (mean absolute residual), ``rms_s``, ``n_p``, ``n_s``, ``n_stations`` and
    ``n_p_and_s``."""
    tally = counts(event, station, phase, n_events)
    n = np.maximum(np.bincount(event, minlength=n_events), 1)
    return tally, {"probability_sum": np.bincount(event, weights=probability, minlength=n_events),
                   "misfit_s": np.bincount(event, weights=np.abs(residual_s), minlength=n_events) / n,
                   "rms_s": np.sqrt(np.bincount(event, weights=residual_s ** 2, minlength=n_events) / n),
                   "n_p": tally["n_p"], "n_s": tally["n"] - tally["n_p"], "n_stations": tally["n_stations"],
                   "n_p_and_s": tally["n_p_and_s"]}


def _merge_fragments(model: GenieModel, picks: PickTable, events: pd.DataFrame, assignments: pd.DataFrame,
                     settings: DetectSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``events`` and ``assignments`` with the fragments of larger events
    (:func:`genie.fragments.fragment_events`) merged into them: a fragment's picks that its
    parent explains go to the parent (one per station and phase, the smallest residual; the
    parent is not relocated, they lie within its gate), its other picks are released."""
    xyz = events[["x_km", "y_km", "depth_km"]].to_numpy(dtype="float64")
    tt = model.arrival_times(torch.tensor(xyz)).cpu().numpy()  # [E, S, 2]

    def gate(tt_s, phase):
        return residual_gate(settings, model.config.kernel_s, tt_s, phase)

    parent, residual = fragment_events(events, assignments, picks.time_s, tt, gate, settings.rules(),
                                       float(tt.max()))
    fragment = parent >= 0
    if not fragment.any():
        return events, assignments
    event = assignments["event_index"].to_numpy(dtype=np.int64)
    target = np.where(fragment[event], parent[event], event)
    # Picks go only to a parent that stays (not itself a fragment of a third event).
    moved = fragment[event] & np.isfinite(residual) & ~fragment[target]
    out = assignments.assign(event_index=target, residual_s=np.where(moved, residual,
                                                                     assignments["residual_s"].to_numpy()))
    out = out[~fragment[event] | moved]
    # Two fragments of one parent may offer a pick for the same station and phase.
    order = np.lexsort((np.abs(out["residual_s"].to_numpy()), out["phase"].to_numpy(), out["station"].to_numpy(),
                        out["event_index"].to_numpy()))
    out = out.iloc[order].drop_duplicates(["event_index", "station", "phase"]).sort_index()
    events = events.copy()
    gained = np.unique(out["event_index"].to_numpy()[moved[out.index.to_numpy()]])
    mine = out[np.isin(out["event_index"].to_numpy(), gained)]
    _, stats = _pick_statistics(np.searchsorted(gained, mine["event_index"].to_numpy()), mine["station"].to_numpy(),
                                (mine["phase"].to_numpy() == "S").astype(np.int64), mine["probability"].to_numpy(),
                                mine["residual_s"].to_numpy(), len(gained))
    for column, values in stats.items():
        events.loc[gained, column] = values
    renumber = np.cumsum(~fragment) - 1
    out = out.assign(event_index=renumber[out["event_index"].to_numpy()])
    return events[~fragment].reset_index(drop=True), out.reset_index(drop=True)


def changed_windows(model: GenieModel, first_s: float, n: int, station: np.ndarray, time_s: np.ndarray) -> np.ndarray:
    """``[n]`` bool: the windows at origin times ``first_s + j * offset_step_s`` whose features
    change when the picks at ``station [R]``, ``time_s [R]`` (s) are removed: those with a
    predicted arrival at the pick's station within :func:`~genie.features.kernel_reach_s` of it.
    Every other window has the same features, so the same embedding, as before the removal."""
    step = model.config.offset_step_s
    reach = kernel_reach_s(model.kernel_widths)
    pair_station = model.pairs[:, 0].cpu().numpy()
    tt = model.pair_tt.cpu().numpy().astype("float64")
    earliest = np.full(model.n_stations, np.inf)
    latest = np.full(model.n_stations, -np.inf)
    np.minimum.at(earliest, pair_station, tt.min(1))
    np.maximum.at(latest, pair_station, tt.max(1))
    station, time_s = np.asarray(station, dtype=np.int64), np.asarray(time_s, dtype="float64")
    has = np.isfinite(earliest[station])
    station, time_s = station[has], time_s[has]
    # Window j sees the pick when first_s + j * step + travel time lies within reach of it.
    lo = np.ceil((time_s - latest[station] - reach - first_s) / step).astype(np.int64)
    hi = np.floor((time_s - earliest[station] + reach - first_s) / step).astype(np.int64)
    inside = (hi >= 0) & (lo < n)
    # Each pick opens its range of windows at lo and closes it after hi: a running count.
    edges = (np.bincount(np.clip(lo[inside], 0, n), minlength=n + 1)
             - np.bincount(np.clip(hi[inside] + 1, 0, n), minlength=n + 1))
    return np.cumsum(edges[:-1]) > 0


def _detect_pass(model: GenieModel, picks: PickTable, start_s: float, end_s: float, settings: DetectSettings,
                 progress: bool, activity: Activity | None, timings: dict,
                 removed: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One pass of :func:`detect` over all of ``picks`` (stage timings added to ``timings``).
    ``removed``: ``(station, time_s)`` of the picks the previous pass assigned and took out;
    only centres with a window they changed are evaluated (elsewhere the grid is the previous
    pass's, whose peaks that pass has already decided)."""
    clock = [time.perf_counter()]

    def lap(name):
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock[0]
        clock[0] = now

    merge_km, merge_s = _merge_distances(model, settings)
    step, k = model.config.offset_step_s, model.config.n_offsets
    margin = 2 * model.config.label_sigma_s + step
    # Centres on multiples of the step from the picks' epoch: every chunk of a run shares one grid.
    centres = step * np.arange(np.ceil((start_s - margin) / step), np.ceil((end_s + margin) / step))
    store = WindowStore(model, picks, (centres[0] if len(centres) else start_s) - (k - 1) / 2 * step,
                        len(centres) + k - 1, activity, settings.batch_windows)
    need = coincident_windows(model, picks, float(centres[0]) if len(centres) else 0.0, len(centres), settings,
                              activity)
    if removed is not None and len(need):
        changed = changed_windows(model, store.first_s, store.n, *removed)
        # Centre c uses windows c .. c + k - 1.
        need &= np.lib.stride_tricks.sliding_window_view(changed, k).any(1)[:len(need)]
    timings["windows"] = timings.get("windows", 0) + int(need.sum())
    timings["windows_skipped"] = timings.get("windows_skipped", 0) + int((~need).sum())
    lap("screen_s")
    likelihood = grid_likelihood(model, store, need, settings.threshold, progress)
    lap("grid_s")
    t_idx, nodes = find_peaks(model, likelihood, settings.threshold, merge_km, merge_s)
    timings["peaks"] = timings.get("peaks", 0) + len(t_idx)
    lap("peaks_s")
    events, assignments = locate_and_associate(model, picks, store, centres[t_idx], nodes, settings, activity, lap)
    inside = np.flatnonzero((events["origin_s"] >= start_s) & (events["origin_s"] < end_s))
    renumber = np.full(len(events), -1)
    renumber[inside] = np.arange(len(inside))
    assignments = assignments.assign(event_index=renumber[assignments["event_index"].to_numpy(dtype=np.int64)])
    assignments = assignments[assignments["event_index"] >= 0].reset_index(drop=True)
    return events.iloc[inside].reset_index(drop=True), assignments
