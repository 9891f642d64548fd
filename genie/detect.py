"""Detecting sources and associating picks with a trained model over a stretch of picks.

1. Windows every ``offset_step_s`` (the model's offset spacing, so each window's embedding is
   computed once and shared by the K centre times that use it); source likelihood on the grid
   ``[T, X]`` by temporal attention.
2. Peaks: grid values above ``threshold`` that are the maximum over ``+-label_sigma_s`` in time
   and over their graph neighbours in space; peaks closer than ``merge_km`` and ``merge_s`` to a
   stronger one are dropped.
3. Each peak is refined by continuous queries on a small space-time lattice around it (half the
   label widths), keeping the most likely point; refined sources closer than the merge distances
   to a more likely one are dropped.
4. Picks are associated to each source by the association head: per station and phase, the most
   likely candidate when its probability is at least ``assoc_threshold``. A pick claimed by
   several sources or phases stays with the most probable.
5. Each source is relocated from its picks (:mod:`genie.locate`, L1 grid search); for
   ``relocation_rounds`` more rounds, sources that converged within the merge distances keep
   only the one with most picks and the picks are associated again at the relocated sources
   (the halves of a split event find each other). Finally picks whose residual exceeds
   ``max_residual_s`` are released, and sources left with fewer than
   ``min_picks`` picks, ``min_stations`` stations or ``min_p_picks`` P picks are dropped.

Times are s on the pick table's epoch; coordinates km in the model's frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from genie.features import PickTable
from genie.locate import locate
from genie.model import GenieModel


@dataclass
class DetectSettings:
    """Thresholds of :func:`detect` (units in each field's metadata)."""

    threshold: float = field(default=0.4, metadata={"unit": "1", "doc": "grid likelihood a peak must reach"})
    assoc_threshold: float = field(default=0.5, metadata={"unit": "1", "doc": "association probability to keep a pick"})
    min_picks: int = field(default=4, metadata={"unit": "1", "doc": "a source needs this many associated picks"})
    min_stations: int = field(default=3, metadata={"unit": "1", "doc": "... on at least this many stations"})
    min_p_picks: int = field(default=0, metadata={"unit": "1", "doc": "... and at least this many P picks"})
    relocation_rounds: int = field(default=1, metadata={
        "unit": "1", "doc": "extra rounds of association at the relocated sources (merging converged duplicates)"})
    max_residual_s: float | None = field(default=None, metadata={
        "unit": "s", "doc": "drop associated picks farther than this from the relocated arrival (default: kernel_s)"})
    merge_km: float | None = field(default=None, metadata={"unit": "km", "doc": "peak separation in space (default 2 label widths)"})
    merge_s: float | None = field(default=None, metadata={"unit": "s", "doc": "peak separation in time (default 2 label widths)"})
    batch_windows: int = field(default=64, metadata={"unit": "1", "doc": "windows per forward pass"})


EVENT_COLUMNS = ["origin_s", "x_km", "y_km", "depth_km", "likelihood", "misfit_s", "n_p", "n_s", "n_stations"]
ASSIGNMENT_COLUMNS = ["pick_index", "event_index", "phase", "probability", "residual_s"]


@torch.no_grad()
def grid_likelihood(model: GenieModel, picks: PickTable, centres_s: np.ndarray, batch_windows: int = 64,
                    progress: bool = False) -> np.ndarray:
    """Source likelihood ``[T, X]`` on the grid at centre times ``centres_s [T]`` spaced by the
    model's ``offset_step_s``."""
    k = model.config.n_offsets
    h = (k - 1) // 2
    step = model.config.offset_step_s
    n = len(centres_s)
    out = np.zeros((n, model.n_sources), dtype=np.float32)
    if n == 0:
        return out
    origins = torch.as_tensor(centres_s[0] + (np.arange(-h, n + h)) * step, device=model.device)
    block = max(batch_windows - 2 * h, 1)
    starts = range(0, n, block)
    for j0 in tqdm(starts, desc="windows", unit="block", disable=not progress):
        j1 = min(j0 + block, n)
        z = model.embed(model.features(picks, origins[j0:j1 + 2 * h]))  # [X, W, C]
        stacked = z.unfold(1, k, 1).permute(0, 1, 3, 2)  # [X, j1 - j0, K, C]
        out[j0:j1] = torch.sigmoid(model.grid_logits(stacked)).cpu().numpy()
    return out


def _merge_distances(model: GenieModel, settings: DetectSettings) -> tuple[float, float]:
    """``(merge_km, merge_s)``: the settings', or two label widths where they are None."""
    c = model.config
    return (settings.merge_km if settings.merge_km is not None else 2 * c.label_sigma_km,
            settings.merge_s if settings.merge_s is not None else 2 * c.label_sigma_s)


def find_peaks(model: GenieModel, likelihood: np.ndarray, threshold: float, merge_km: float,
               merge_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Peaks ``(time index, source node)`` of ``likelihood [T, X]``, strongest first."""
    step = model.config.offset_step_s
    radius = max(int(round(model.config.label_sigma_s / step)), 1)
    lk = torch.as_tensor(likelihood)
    in_time = torch.nn.functional.max_pool1d(lk.T[None], 2 * radius + 1, stride=1, padding=radius)[0].T
    edges = model.source_graph_edges.cpu()
    in_space = lk.clone()
    if edges.shape[1]:
        neighbours = lk[:, edges[0]]
        in_space = in_space.index_reduce(1, edges[1], neighbours, "amax", include_self=True)
    peak = (lk >= threshold) & (lk >= in_time) & (lk >= in_space)
    t_idx, x_idx = (a.numpy() for a in torch.nonzero(peak, as_tuple=True))
    order = np.argsort(-likelihood[t_idx, x_idx], kind="stable")
    t_idx, x_idx = t_idx[order], x_idx[order]
    keep = suppress(t_idx * step, model.source_xyz.cpu().numpy()[x_idx], merge_s, merge_km)
    return t_idx[keep], x_idx[keep]


def suppress(times_s: np.ndarray, xyz: np.ndarray, merge_s: float, merge_km: float) -> np.ndarray:
    """Keep-mask of sources ordered strongest first: a source within ``merge_s`` and
    ``merge_km`` (epicentral) of a stronger kept one is dropped."""
    keep = np.ones(len(times_s), dtype=bool)
    # Greedy over candidate sources (a handful per event), not over picks or nodes.
    for i in range(len(times_s)):
        if keep[i]:
            close = (np.abs(times_s - times_s[i]) < merge_s) & (np.linalg.norm(xyz[:, :2] - xyz[i, :2], axis=1) < merge_km)
            close[: i + 1] = False
            keep &= ~close
    return keep


def _lattice(model: GenieModel) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of the refinement lattice: ``[L, 3]`` km and ``[L]`` s."""
    a = model.config.label_sigma_km / 2
    d = model.config.offset_step_s / 2
    grid = np.array(np.meshgrid([-a, 0, a], [-a, 0, a], [-a, 0, a], [-d, 0, d], indexing="ij")).reshape(4, -1).T
    return grid[:, :3], grid[:, 3]


@torch.no_grad()
def _query_embeddings(model: GenieModel, picks: PickTable, centres_s: np.ndarray, positions: np.ndarray,
                      dt_s: np.ndarray, batch_windows: int) -> torch.Tensor:
    """Query embeddings ``[D, L, latent]`` at ``positions [D, L, 3]`` (km) and times ``dt_s [D, L]``
    (s) relative to the centre times ``centres_s [D]``, from windows around those centres."""
    out = []
    per = max(batch_windows // model.config.n_offsets, 1)
    for d0 in range(0, len(centres_s), per):
        sl = slice(d0, d0 + per)
        centre = torch.as_tensor(centres_s[sl], device=model.device)
        _, z = model(model.features(picks, model.window_times(centre).reshape(-1)), len(centre))
        out.append(model.query_embedding(z, torch.as_tensor(positions[sl], dtype=torch.float32, device=model.device),
                                         torch.as_tensor(dt_s[sl], dtype=torch.float32, device=model.device)))
    if not out:
        return torch.zeros((0, positions.shape[1], model.config.latent), device=model.device)
    return torch.cat(out)


@torch.no_grad()
def _associate(model: GenieModel, picks: PickTable, xyz: np.ndarray, origin: np.ndarray, embedding: torch.Tensor,
               threshold: float) -> pd.DataFrame:
    """Picks of sources ``[D]`` by the association head: per station and phase the most likely
    candidate with probability >= ``threshold``; a pick claimed twice goes to the most probable."""
    index, valid, station_attr, pick_attr, _ = model.candidates(
        picks, torch.as_tensor(xyz, dtype=torch.float32, device=model.device), torch.as_tensor(origin, device=model.device))
    prob = torch.softmax(model.association_logits(embedding, station_attr, pick_attr, valid), dim=-2)  # [D, S, M+1, 2]
    m = model.config.assoc_candidates
    best_p, best_slot = prob[:, :, :m, :].max(dim=2)  # [D, S, 2]
    d_idx, s_idx, k_idx = (a.cpu().numpy() for a in torch.nonzero(best_p >= threshold, as_tuple=True))
    slot = best_slot[d_idx, s_idx, k_idx].cpu().numpy()
    pick = index[d_idx, s_idx, slot].cpu().numpy() if len(d_idx) else np.zeros(0, dtype=np.int64)
    table = pd.DataFrame({"pick_index": pick, "event_index": d_idx, "phase": np.array(["P", "S"])[k_idx],
                          "probability": best_p[d_idx, s_idx, k_idx].cpu().numpy(), "residual_s": np.nan,
                          "station": s_idx})
    return table.sort_values("probability", ascending=False, kind="stable").drop_duplicates("pick_index")


@torch.no_grad()
def locate_and_associate(model: GenieModel, picks: PickTable, centres_s: np.ndarray, nodes: np.ndarray,
                         settings: DetectSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Refine peaks at centre times ``centres_s [D]`` and source nodes ``nodes [D]``, then
    associate picks (see module doc)."""
    c = model.config
    if len(nodes) == 0:
        return pd.DataFrame(columns=EVENT_COLUMNS), pd.DataFrame(columns=ASSIGNMENT_COLUMNS)
    dxyz, dts = _lattice(model)
    lo, hi = (model.source_xyz.min(0).values.cpu().numpy(), model.source_xyz.max(0).values.cpu().numpy())
    positions = np.clip(model.source_xyz.cpu().numpy()[nodes][:, None, :] + dxyz[None], lo, hi)  # [D, L, 3]
    lattice = _query_embeddings(model, picks, centres_s, positions, np.broadcast_to(dts, positions.shape[:2]),
                                settings.batch_windows)
    like = torch.sigmoid(model.query_head(lattice).squeeze(-1))
    best = like.argmax(1)
    rows = torch.arange(len(best), device=model.device)
    embedding, likelihood = lattice[rows, best], like[rows, best].cpu().numpy()
    best = best.cpu().numpy()
    xyz, origin = positions[np.arange(len(best)), best], centres_s + dts[best]
    order = np.argsort(-likelihood, kind="stable")
    merge_km, merge_s = _merge_distances(model, settings)
    chosen = np.sort(order[suppress(origin[order], xyz[order], merge_s, merge_km)])
    xyz, origin, likelihood, embedding = xyz[chosen], origin[chosen], likelihood[chosen], embedding[chosen]

    depth_range = (float(model.source_xyz[:, 2].min()), float(model.source_xyz[:, 2].max()))
    stations = model.station_xyz.cpu().numpy().astype("float64")
    misfit = np.full(len(origin), np.nan)
    for round_ in range(settings.relocation_rounds + 1):
        if round_:
            # Re-associate at the relocated sources: their embeddings from windows at the new times.
            embedding = _query_embeddings(model, picks, origin, xyz[:, None, :], np.zeros((len(origin), 1)),
                                          settings.batch_windows)[:, 0]
        table = _associate(model, picks, xyz, origin, embedding, settings.assoc_threshold)
        arrivals = np.full((len(origin), model.n_stations, 2), np.nan)
        k_col = (table["phase"] == "S").to_numpy(dtype=int)
        e_col, s_col = table["event_index"].to_numpy(dtype=int), table["station"].to_numpy(dtype=int)
        arrivals[e_col, s_col, k_col] = picks.time_s[table["pick_index"].to_numpy(dtype=int)]
        new_xyz, new_origin, misfit = locate(model.travel_times, stations, arrivals, xyz, depth_range,
                                             radius_km=2 * c.label_sigma_km)
        located = np.isfinite(new_origin)
        xyz[located], origin[located] = new_xyz[located], new_origin[located]
        if round_ < settings.relocation_rounds:
            # Halves of a split event converge on relocation: keep the one with more picks.
            n_picks = np.bincount(e_col, minlength=len(origin))
            order = np.lexsort((-likelihood, -n_picks))
            chosen = np.sort(order[suppress(origin[order], xyz[order], merge_s, merge_km)])
            xyz, origin, likelihood = xyz[chosen], origin[chosen], likelihood[chosen]
    predicted = origin[:, None, None] + model.travel_times(xyz, stations)
    table["residual_s"] = arrivals[e_col, s_col, k_col] - predicted[e_col, s_col, k_col]
    max_residual = settings.max_residual_s if settings.max_residual_s is not None else c.kernel_s
    table = table[np.abs(table["residual_s"]) <= max_residual]
    n_det = len(origin)

    e_kept = table["event_index"].to_numpy(dtype=int)
    is_s = (table["phase"] == "S").to_numpy()
    event_station = np.unique(e_kept * model.n_stations + table["station"].to_numpy(dtype=int))
    counts = {"n_p": np.bincount(e_kept[~is_s], minlength=n_det), "n_s": np.bincount(e_kept[is_s], minlength=n_det),
              "n_stations": np.bincount(event_station // model.n_stations, minlength=n_det)}
    good = (((counts["n_p"] + counts["n_s"]) >= settings.min_picks) & (counts["n_stations"] >= settings.min_stations)
            & (counts["n_p"] >= settings.min_p_picks))
    events = pd.DataFrame({"origin_s": origin, "x_km": xyz[:, 0], "y_km": xyz[:, 1], "depth_km": xyz[:, 2],
                           "likelihood": likelihood, "misfit_s": misfit, **counts})
    kept = np.flatnonzero(good)
    renumber = np.full(n_det, -1)
    renumber[kept] = np.arange(len(kept))
    events = events.iloc[kept].reset_index(drop=True)
    table = table[np.isin(table["event_index"], kept)].copy()
    table["event_index"] = renumber[table["event_index"].to_numpy()]
    order = np.argsort(events["origin_s"].to_numpy(), kind="stable")
    events = events.iloc[order].reset_index(drop=True)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    table["event_index"] = inverse[table["event_index"].to_numpy()]
    table = table.sort_values(["event_index", "pick_index"]).reset_index(drop=True)[ASSIGNMENT_COLUMNS]
    return events, table


def detect(model: GenieModel, picks: PickTable, start_s: float, end_s: float, settings: DetectSettings | None = None,
           progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sources with origin times in ``[start_s, end_s)`` and their picks.

    Returns ``(events, assignments)``: events with ``origin_s`` (s), ``x_km, y_km, depth_km``,
    ``likelihood`` (0-1), ``misfit_s`` (mean absolute residual), ``n_p, n_s, n_stations``; assignments with ``pick_index`` (row of the
    arrays the pick table was built from), ``event_index`` (row of events), ``phase``,
    ``probability``, ``residual_s`` (pick minus predicted arrival)."""
    settings = settings or DetectSettings()
    merge_km, merge_s = _merge_distances(model, settings)
    centres = np.arange(start_s, end_s, model.config.offset_step_s)
    likelihood = grid_likelihood(model, picks, centres, settings.batch_windows, progress)
    t_idx, nodes = find_peaks(model, likelihood, settings.threshold, merge_km, merge_s)
    return locate_and_associate(model, picks, centres[t_idx], nodes, settings)
