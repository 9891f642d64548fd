"""Window inputs of the GENIE model, computed on the model's device.

For a window with origin time ``t`` and each product node (station ``s``, source ``x``) the
features are Gaussian kernels ``exp(-dt^2 / (2 kernel_s^2))`` (less 1e-30, their value 11.75
widths out, so that they are exactly 0 from there on: ``KERNEL_FLOOR``, :func:`kernel_reach_s`)
of the time difference ``dt`` between the theoretical arrival ``t + T_phase(s, x)`` and

0. the nearest pick of any label at ``s`` to the P arrival,
1. the nearest pick of any label at ``s`` to the S arrival,
2. the nearest P-labelled pick to the P arrival,
3. the nearest S-labelled pick to the S arrival,

and 4. a mask, 1 when the station is active in the window. With several kernel widths (a narrow
one for precision, a wide one that still sees a pick from a source node a few km off), the four
kernels repeat per width before the mask. Nearest picks are found for all
windows and pairs at once by ``searchsorted`` on one sorted key array (each station and each
(station, label) group occupies its own stretch of the key axis), so there is no Python loop over
picks, stations or nodes.
"""

from __future__ import annotations

import numpy as np
import torch


class PickTable:
    """Picks laid out for nearest-pick queries on ``device``.

    ``station [n]`` (index into the network), ``time_s [n]`` (float64 seconds from any epoch),
    ``phase [n]`` (0 = P, 1 = S); ``station``, ``time_s`` and ``label`` (the phases) are kept as
    numpy arrays.
    """

    def __init__(self, station, time_s, phase, n_stations: int, device="cpu"):
        station = np.asarray(station, dtype=np.int64)
        time_s = np.asarray(time_s, dtype="float64")
        phase = np.asarray(phase, dtype=np.int64)
        self.n_stations = n_stations
        self.station = station
        self.time_s = time_s
        self.label = phase
        self.device = torch.device(device)
        self.t0 = float(time_s.min()) if len(time_s) else 0.0
        rel = time_s - self.t0
        # Group stretches must not overlap, whatever the query times: two days of margin on each
        # side, so a pick of another group always lies more than a day from a query that falls
        # within a day of the picks (which is how nearest() tells groups apart).
        self.span = float(rel.max() if len(rel) else 0.0) + 4 * 86400.0
        self.offset = 2 * 86400.0
        any_group = station
        labelled_group = n_stations + station * 2 + phase
        groups = np.concatenate([any_group, labelled_group])
        times = np.concatenate([rel, rel])
        keys = groups * self.span + self.offset + times
        order = np.argsort(keys, kind="stable")
        self.n_picks = len(rel)
        self.keys = torch.as_tensor(keys[order], device=self.device, dtype=torch.float64)
        # Sentinels at both ends: the neighbours of any insertion point exist.
        far = 1e18
        self.padded_keys = torch.cat([torch.tensor([-far], dtype=torch.float64, device=self.device), self.keys,
                                      torch.tensor([far], dtype=torch.float64, device=self.device)])
        # (previous, next) key of each insertion point of padded_keys, gathered together.
        self.neighbour_keys = torch.stack([self.padded_keys[:-1], self.padded_keys[1:]], -1)
        self.groups = torch.as_tensor(groups[order], device=self.device)
        self.times = torch.as_tensor(times[order], device=self.device, dtype=torch.float64)
        self.pick_index = torch.as_tensor(order % max(self.n_picks, 1), device=self.device)
        self.phase = torch.as_tensor(np.concatenate([phase, phase])[order], device=self.device)

    def subset(self, rows: np.ndarray) -> "PickTable":
        """A table of the picks ``rows`` (indices into this one) on the same device."""
        return PickTable(self.station[rows], self.time_s[rows], self.label[rows], self.n_stations, self.device)

    def group_keys(self, group: torch.Tensor) -> torch.Tensor:
        """Key (float64) of the picks' epoch in each ``group``: a pick at ``t`` s of group ``g``
        has key ``group_keys(g) + t``."""
        return group.to(self.device, torch.float64) * self.span + self.offset - self.t0

    def distance_from_keys(self, query: torch.Tensor) -> torch.Tensor:
        """Distance (s, float64, unsigned) from each ``query`` key (``group_keys(g) + t``) to the
        nearest pick key: one binary search and one gather of the (previous, next) key pair.
        For query times within a day of the picks it is the nearest pick of group ``g`` (picks of
        other groups lie farther than that); more than a day means ``g`` has none within a day."""
        # index_select on the flat positions: faster on a CPU than advanced indexing with an
        # N-d index (the same rows).
        slot = torch.searchsorted(self.padded_keys, query).view(-1).sub_(1)
        near = self.neighbour_keys.index_select(0, slot).view(*query.shape, 2)
        return torch.minimum(query - near[..., 0], near[..., 1] - query)

    def distance(self, group: torch.Tensor, target_s: torch.Tensor) -> torch.Tensor:
        """Distance (s) from each ``target_s`` (seconds from the picks' epoch) to the nearest pick
        in ``group``; ``inf`` where the group has no pick within a day. Shapes broadcast."""
        d = self.distance_from_keys(self.group_keys(group) + target_s.to(self.device, torch.float64))
        return d.masked_fill(d >= 86400.0, float("inf"))

    def nearest_k(self, station: torch.Tensor, target_s: torch.Tensor, k: int, max_offset_s: float):
        """The ``k`` picks (any label) at ``station`` nearest to ``target_s`` (s, same epoch as the
        picks) and at most ``max_offset_s`` from it; shapes broadcast to ``[...]``.

        Returns ``(pick_index, time_s, phase, valid)``, each ``[..., k]``, nearest first."""
        station, target = torch.broadcast_tensors(station.to(self.device), target_s.to(self.device, torch.float64))
        shape = station.shape + (k,)
        if self.n_picks == 0:
            zeros = torch.zeros(shape, dtype=torch.int64, device=self.device)
            return zeros, zeros.to(torch.float64), zeros, torch.zeros(shape, dtype=torch.bool, device=self.device)
        rel = target - self.t0
        pos = torch.searchsorted(self.keys, (station.to(torch.float64) * self.span + self.offset + rel).reshape(-1))
        slot = pos.reshape(station.shape).unsqueeze(-1) + torch.arange(-k, k, device=self.device)  # [..., 2k]
        inside = (slot >= 0) & (slot < len(self.keys))
        slot = slot.clamp(0, len(self.keys) - 1)
        delta = (self.times[slot] - rel.unsqueeze(-1)).abs()
        ok = inside & (self.groups[slot] == station.unsqueeze(-1)) & (delta <= max_offset_s)
        best = torch.where(ok, delta, torch.inf).topk(k, dim=-1, largest=False)
        slot = slot.gather(-1, best.indices)
        return self.pick_index[slot], self.times[slot] + self.t0, self.phase[slot], torch.isfinite(best.values)


# Kernels are lowered by this value (their value at kernel_reach_s), so that they are exactly 0
# from there on (see window_features).
KERNEL_FLOOR = 1e-30


def kernel_reach_s(kernel_s) -> float:
    """Distance (s) beyond which a pick leaves every kernel of widths ``kernel_s`` at exactly 0:
    a pick farther than this from all of a window's predicted arrivals does not change its
    features."""
    return float(np.max(np.atleast_1d(kernel_s))) * float(np.sqrt(-2.0 * np.log(KERNEL_FLOOR)))


def n_features(n_widths: int = 1) -> int:
    """Feature count for ``n_widths`` kernel widths: four kernels per width and the mask."""
    return 4 * n_widths + 1


def window_features(picks: PickTable, pair_station: torch.Tensor, pair_tt: torch.Tensor, origin_s: torch.Tensor,
                    kernel_s, station_active: torch.Tensor | None = None) -> torch.Tensor:
    """Features ``[B, P, 4 n + 1]`` (float32) for windows with origin times ``origin_s [B]`` (s,
    same epoch as the picks) on product nodes with stations ``pair_station [P]`` and P/S travel
    times ``pair_tt [P, 2]`` (s), for ``n`` kernel widths ``kernel_s`` (s; a number or a
    sequence: the four kernels of each width in turn, then the mask).
    ``station_active [B, n_stations]`` (bool) masks stations per window; all active when None."""
    dev = picks.device  # inputs follow the pick table's device
    s = pair_station.to(dev)
    labelled = picks.n_stations + 2 * s
    # Keys of each pair's four targets at origin time 0 (groups: any label at P, at S; P-labelled
    # at P; S-labelled at S); a window adds its origin time: one addition per query.
    tt = pair_tt.to(dev, torch.float64)
    base = torch.stack([picks.group_keys(s) + tt[:, 0], picks.group_keys(s) + tt[:, 1],
                        picks.group_keys(labelled) + tt[:, 0], picks.group_keys(labelled + 1) + tt[:, 1]], -1)
    # Laid out [P, B, 4] (the model's node-major order): the [B, P, F] result is a view whose
    # transpose back is already contiguous.
    query = base[:, None, :] + origin_s.to(dev, torch.float64)[None, :, None]
    # A group without a pick within a day is more than a day from any key, so its kernels fall
    # to the floor below.
    square = picks.distance_from_keys(query).to(torch.float32).square_()
    widths = torch.tensor([float(w) for w in np.atleast_1d(kernel_s)], device=dev)
    scale = -0.5 / widths.square()
    # One product per width with a scalar, joined: a broadcast over a trailing axis of 4 runs
    # several times slower on a CPU.
    exponent = torch.cat([square * scale[i] for i in range(len(widths))], dim=-1)  # [P, B, 4 n]
    # Kernels of far picks would underflow to float32 denormals, which slow exp and every later
    # product on a CPU several-fold: exponents are clamped at log(KERNEL_FLOOR) and every kernel
    # is lowered by the kernel there, so that it is exactly 0 from kernel_reach_s on (a subtraction:
    # a boolean mask costs more than exp itself here). Kernels above 1e-22 are unchanged in float32.
    floor = torch.tensor(float(np.log(KERNEL_FLOOR)), dtype=torch.float32, device=dev)
    kernels = torch.exp(exponent.clamp_(min=floor)).sub_(torch.exp(floor))
    if station_active is None:
        mask = torch.ones((len(s), len(origin_s)), dtype=torch.float32, device=dev)
    else:
        mask = station_active.to(dev)[:, s].T.to(torch.float32)
        kernels.mul_(mask[..., None])
    return torch.cat([kernels, mask[..., None]], dim=-1).transpose(0, 1)
