"""Locating sources from their associated picks by a vectorised grid search.

For each source, candidate hypocentres on a local grid around its first location are scored by
the mean absolute residual of its picks, with the origin time at each candidate set to the
median of ``pick time - travel time`` (the L1-optimal origin). A coarse grid (``coarse_km``
spacing within ``radius_km``) is followed by a fine one (``fine_km``) around the best coarse
point. All sources, candidates and picks are evaluated in arrays: one travel-time call per chunk.

Arrivals are given as ``[D, S, 2]`` absolute times (s) with NaN where a source has no P
(``[..., 0]``) or S (``[..., 1]``) pick at a station (an association keeps at most one of each).
"""

from __future__ import annotations

import numpy as np

from generator.traveltimes import TravelTimes


def _score(travel_times: TravelTimes, station_xyz: np.ndarray, arrivals: np.ndarray, candidates: np.ndarray):
    """Origin ``[D, C]``, misfit ``[D, C]`` (mean |residual|, s) for candidates ``[D, C, 3]``."""
    d, c = candidates.shape[:2]
    tt = travel_times(candidates.reshape(-1, 3), station_xyz).reshape(d, c, *arrivals.shape[1:])
    implied = arrivals[:, None] - tt  # [D, C, S, 2] origin implied by each pick
    flat = implied.reshape(d, c, -1)
    origin = np.nanmedian(flat, axis=-1)
    misfit = np.nanmean(np.abs(flat - origin[..., None]), axis=-1)
    return origin, misfit


def _grid(radius_km: float, spacing_km: float, depth_step_km: float, depth_radius_km: float) -> np.ndarray:
    h = np.arange(-radius_km, radius_km + 1e-9, spacing_km)
    z = np.arange(-depth_radius_km, depth_radius_km + 1e-9, depth_step_km)
    return np.stack(np.meshgrid(h, h, z, indexing="ij"), axis=-1).reshape(-1, 3)


def locate(travel_times: TravelTimes, station_xyz: np.ndarray, arrivals: np.ndarray, initial_xyz: np.ndarray,
           depth_range_km: tuple[float, float], radius_km: float = 20.0, coarse_km: float = 2.5,
           fine_km: float = 0.5, chunk: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hypocentres ``[D, 3]`` (km), origin times ``[D]`` (s) and misfits ``[D]`` (mean absolute
    residual, s) of sources with ``arrivals [D, S, 2]`` near ``initial_xyz [D, 3]``, with depths
    kept in ``depth_range_km``. Sources without picks keep their initial position (NaN origin)."""
    arrivals = np.asarray(arrivals, dtype="float64")
    initial = np.asarray(initial_xyz, dtype="float64")
    zmin, zmax = depth_range_km
    span = zmax - zmin
    stages = [(_grid(radius_km, coarse_km, max(span / 6, coarse_km / 2), span), initial),
              (_grid(coarse_km, fine_km, fine_km, coarse_km), None)]
    xyz = initial.copy()
    origin = np.full(len(initial), np.nan)
    misfit = np.full(len(initial), np.nan)
    has = np.isfinite(arrivals).reshape(len(arrivals), -1).any(1)
    for offsets, centre in stages:
        centre = xyz if centre is None else centre
        for lo in range(0, len(initial), chunk):
            rows = np.arange(lo, min(lo + chunk, len(initial)))
            rows = rows[has[rows]]
            if not len(rows):
                continue
            cand = centre[rows, None, :] + offsets[None]
            cand[..., 2] = np.clip(cand[..., 2], zmin, zmax)
            o, m = _score(travel_times, station_xyz, arrivals[rows], cand)
            best = np.argmin(m, axis=1)
            pick = np.arange(len(rows))
            xyz[rows], origin[rows], misfit[rows] = cand[pick, best], o[pick, best], m[pick, best]
    return xyz, origin, misfit
