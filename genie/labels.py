"""Training targets of the GENIE model, from the generator's truth.

* Source labels: for a window with origin time ``t`` and source node ``x``,
  ``max_e exp(-|x - x_e|^2 / (2 sigma_km^2) - (t - t_e)^2 / (2 sigma_s^2))`` over the true events
  ``e`` inside the region of interest; events in the padding give 0, so the model learns not to
  place sources outside the network (GENIE's convention).
* Association targets: for a source whose true event is ``e`` and each station's candidate
  picks, the candidate that belongs to ``e`` with true phase ``k`` (P or S), or "null".
"""

from __future__ import annotations

import torch


def source_labels(nodes_xyz: torch.Tensor, origin_s: torch.Tensor, events_xyz: torch.Tensor, events_s: torch.Tensor,
                  sigma_km: float, sigma_s: float, inside: torch.Tensor | None = None) -> torch.Tensor:
    """Labels ``[B, X]`` for windows ``origin_s`` (s; ``[B]``, or ``[B, X]`` for one time per
    point) at points ``nodes_xyz`` (km; ``[X, 3]`` shared, or ``[B, X, 3]``) from events
    ``events_xyz [E, 3]`` at ``events_s [E]``; ``inside`` (bool, ``[E]`` or ``[B, E]``) marks the
    events that count (all when None)."""
    origin = origin_s.to(torch.float64)
    n_windows = origin.shape[0]
    n_points = nodes_xyz.shape[-2]
    if len(events_s) == 0:
        return torch.zeros((n_windows, n_points), dtype=torch.float32, device=nodes_xyz.device)
    nodes = nodes_xyz.expand(n_windows, n_points, 3)
    origin = origin.reshape(n_windows, -1).expand(n_windows, n_points)
    d2 = ((nodes[:, :, None, :] - events_xyz[None, None, :, :]) ** 2).sum(-1)  # [B, X, E]
    dt = (origin[:, :, None] - events_s.to(torch.float64)[None, None, :]).to(torch.float32)
    log_weight = -0.5 * d2 / sigma_km**2 - 0.5 * dt**2 / sigma_s**2
    if inside is not None:
        keep = inside.reshape(-1, 1, len(events_s)) if inside.dim() == 2 else inside[None, None]
        log_weight = log_weight.masked_fill(~keep, float("-inf"))
    return torch.exp(log_weight.amax(-1))


def candidate_targets(candidate_pick: torch.Tensor, valid: torch.Tensor, pick_event: torch.Tensor,
                      pick_phase: torch.Tensor, target_event: torch.Tensor) -> torch.Tensor:
    """Association targets ``[..., 2]`` (long) for candidate picks ``candidate_pick [..., M]``
    (rows of ``pick_event``/``pick_phase``, ``valid [..., M]``) scored against sources whose true
    events are ``target_event [...]`` (-1: none): for phase P (``[..., 0]``) and S
    (``[..., 1]``) the slot of the pick that belongs to the event with that true phase, or ``M``
    (null) when no candidate does. ``pick_event`` is -1 for false picks; ``pick_phase`` is 0 (P)
    or 1 (S)."""
    n_slots = candidate_pick.shape[-1]
    event = pick_event[candidate_pick]
    mine = valid & (event == target_event.unsqueeze(-1)) & (event >= 0)
    phase = pick_phase[candidate_pick]
    targets = []
    for k in (0, 1):
        hit = mine & (phase == k)
        slot = torch.where(hit, torch.arange(n_slots, device=hit.device), n_slots).amin(-1)
        targets.append(slot)
    return torch.stack(targets, dim=-1)
