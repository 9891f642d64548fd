"""Training targets of the GENIE model, from the generator's truth.

* Source labels: for a window with origin time ``t`` and source node ``x``,
  ``max_e exp(-|x - x_e|^2 / (2 sigma_km^2) - (t - t_e)^2 / (2 sigma_s^2))`` over the true events
  ``e`` inside the region of interest; events in the padding give 0, so the model learns not to
  place sources outside the network (GENIE's convention).
* Association labels: for a window whose target event is ``e`` (or none), pick ``i`` is a
  positive for phase ``k`` when it belongs to ``e`` with true phase ``k``.
"""

from __future__ import annotations

import numpy as np
import torch


def source_labels(nodes_xyz: torch.Tensor, origin_s: torch.Tensor, events_xyz: torch.Tensor, events_s: torch.Tensor,
                  sigma_km: float, sigma_s: float, inside: torch.Tensor | None = None) -> torch.Tensor:
    """Labels ``[B, X]`` for windows ``origin_s [B]`` (s) at nodes ``nodes_xyz [X, 3]`` (km) from
    events ``events_xyz [E, 3]`` at ``events_s [E]``; ``inside [E]`` (bool) marks the events that
    count (all when None)."""
    if len(events_s) == 0:
        return torch.zeros((len(origin_s), len(nodes_xyz)), dtype=torch.float32, device=nodes_xyz.device)
    d2 = ((nodes_xyz[:, None, :] - events_xyz[None, :, :]) ** 2).sum(-1)  # [X, E]
    dt = origin_s.to(torch.float64)[:, None] - events_s.to(torch.float64)[None, :]  # [B, E]
    weight = torch.exp(-0.5 * dt.to(torch.float32) ** 2 / sigma_s**2)
    if inside is not None:
        weight = weight * inside.to(weight.dtype)[None]
    space = torch.exp(-0.5 * d2 / sigma_km**2)  # [X, E]
    return (weight[:, None, :] * space[None, :, :]).amax(-1)


def association_labels(pick_event: np.ndarray, pick_phase: np.ndarray, window_event: np.ndarray) -> np.ndarray:
    """``[B, n, 2]`` booleans: pick ``i`` belongs to window ``b``'s event (``window_event[b]``,
    -1 for none) with true phase P (``[..., 0]``) or S (``[..., 1]``). ``pick_event`` is -1 for
    false picks; ``pick_phase`` is 0 (P) or 1 (S) for true picks."""
    pick_event = np.asarray(pick_event)
    same = (pick_event[None, :] == np.asarray(window_event)[:, None]) & (pick_event[None, :] >= 0)
    phase = np.asarray(pick_phase)
    return np.stack([same & (phase == 0)[None], same & (phase == 1)[None]], axis=-1)
