"""Window inputs of the GENIE model, computed on the model's device.

For a window with origin time ``t`` and each product node (station ``s``, source ``x``) the
features are Gaussian kernels ``exp(-dt^2 / (2 kernel_s^2))`` of the time difference ``dt`` between
the theoretical arrival ``t + T_phase(s, x)`` and

0. the nearest pick of any label at ``s`` to the P arrival,
1. the nearest pick of any label at ``s`` to the S arrival,
2. the nearest P-labelled pick to the P arrival,
3. the nearest S-labelled pick to the S arrival,

and 4. a mask, 1 when the station is active in the window. Nearest picks are found for all
windows and pairs at once by ``searchsorted`` on one sorted key array (each station and each
(station, label) group occupies its own stretch of the key axis), so there is no Python loop over
picks, stations or nodes.
"""

from __future__ import annotations

import numpy as np
import torch

N_FEATURES = 5


class PickTable:
    """Picks laid out for nearest-pick queries on ``device``.

    ``station [n]`` (index into the network), ``time_s [n]`` (float64 seconds from any epoch),
    ``phase [n]`` (0 = P, 1 = S).
    """

    def __init__(self, station, time_s, phase, n_stations: int, device="cpu"):
        station = np.asarray(station, dtype=np.int64)
        time_s = np.asarray(time_s, dtype="float64")
        phase = np.asarray(phase, dtype=np.int64)
        self.n_stations = n_stations
        self.device = torch.device(device)
        self.t0 = float(time_s.min()) if len(time_s) else 0.0
        rel = time_s - self.t0
        # Group stretches must not overlap, whatever the query times: leave a day of margin.
        self.span = float(rel.max() if len(rel) else 0.0) + 2 * 86400.0
        self.offset = 86400.0
        any_group = station
        labelled_group = n_stations + station * 2 + phase
        groups = np.concatenate([any_group, labelled_group])
        times = np.concatenate([rel, rel])
        keys = groups * self.span + self.offset + times
        order = np.argsort(keys, kind="stable")
        self.keys = torch.as_tensor(keys[order], device=self.device, dtype=torch.float64)
        self.groups = torch.as_tensor(groups[order], device=self.device)
        self.times = torch.as_tensor(times[order], device=self.device, dtype=torch.float64)

    def nearest(self, group: torch.Tensor, target_s: torch.Tensor) -> torch.Tensor:
        """Signed offset (s) of the nearest pick in ``group`` to each ``target_s`` (seconds from
        the same epoch as the picks); ``inf`` where the group has no pick. Shapes broadcast."""
        target = target_s.to(torch.float64) - self.t0
        group, target = torch.broadcast_tensors(group.to(self.device), target)
        if len(self.keys) == 0:
            return torch.full(target.shape, float("inf"), dtype=torch.float64, device=self.device)
        query = group.to(torch.float64) * self.span + self.offset + target
        pos = torch.searchsorted(self.keys, query.reshape(-1)).reshape(query.shape)
        best = torch.full(target.shape, float("inf"), dtype=torch.float64, device=self.device)
        for cand in (pos - 1, pos):
            c = cand.clamp(0, len(self.keys) - 1)
            delta = self.times[c] - target
            ok = (self.groups[c] == group) & (delta.abs() < best.abs())
            best = torch.where(ok, delta, best)
        return best


def window_features(picks: PickTable, pair_station: torch.Tensor, pair_tt: torch.Tensor, origin_s: torch.Tensor,
                    kernel_s: float, station_active: torch.Tensor | None = None) -> torch.Tensor:
    """Features ``[B, P, 5]`` (float32) for windows with origin times ``origin_s [B]`` (s, same
    epoch as the picks) on product nodes with stations ``pair_station [P]`` and P/S travel times
    ``pair_tt [P, 2]`` (s). ``station_active [B, n_stations]`` (bool) masks stations per window;
    all active when None."""
    arrival = origin_s.to(torch.float64)[:, None, None] + pair_tt.to(torch.float64)[None]  # [B, P, 2]
    s = pair_station.to(picks.device)
    labelled = picks.n_stations + 2 * s
    deltas = torch.stack([
        picks.nearest(s[None], arrival[..., 0]),
        picks.nearest(s[None], arrival[..., 1]),
        picks.nearest(labelled[None], arrival[..., 0]),
        picks.nearest(labelled[None] + 1, arrival[..., 1]),
    ], dim=-1)
    kernels = torch.exp(-0.5 * (deltas / kernel_s) ** 2)
    if station_active is None:
        mask = torch.ones(arrival.shape[:2], dtype=torch.float64, device=picks.device)
    else:
        mask = station_active.to(picks.device)[:, s].to(torch.float64)
    features = torch.cat([kernels * mask[..., None], mask[..., None]], dim=-1)
    return features.to(torch.float32)
