"""Locating sources from their associated picks: vectorised grid search, then robust least squares.

:func:`locate`: for each source, candidate hypocentres on a local grid around its first location
are scored by the mean absolute residual of its picks, with the origin time at each candidate
set to the median of ``pick time - travel time`` (the L1-optimal origin). Given the residual
gate, each residual is capped at its pick's gate: a pick beyond the gate would be released there
anyway, so it costs the gate and no more, and one wrong candidate among a small event's few
picks cannot drag the location away from the others (a truncated L1 loss, which favours the
location that fits the most picks within their gates). A coarse grid
(``coarse_km`` spacing within ``radius_km``, depths across the whole range) is followed by a fine
one (``fine_km``) around the best coarse point. All sources, candidates and picks are evaluated
in arrays: one travel-time call per chunk of sources.

:func:`relocate`: robust least squares from there, with uncertainties (see its doc).

Arrivals are given as ``[D, S, 2]`` absolute times (s) with NaN where a source has no P
(``[..., 0]``) or S (``[..., 1]``) pick at a station (an association keeps at most one of each).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from generator.traveltimes import TravelTimes


Gate = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (travel time s, phase 0 P / 1 S) -> residual gate s


# Elements of one chunk's [sources, candidates, picks] arrays: 1 MiB of float64 each, so that the
# dozen temporaries of a chunk stay in a CPU cache (chunks of 32 sources, 10-20 MiB arrays, took
# twice as long per element).
CHUNK_ELEMENTS = 1 << 17


def _score(travel_times: TravelTimes, station_xyz: np.ndarray, arrivals: np.ndarray, xy: np.ndarray,
           depth: np.ndarray, gate: Gate | None = None):
    """Origin ``[D, H * Z]``, misfit ``[D, H * Z]`` (mean |residual|, each capped at ``gate`` of
    its travel time and phase when given; s) for source ``d``'s candidate epicentres
    ``xy [D, H, 2]`` times depths ``depth [D, Z]`` (candidate ``h * Z + z``), the sources having
    the same number of picks."""
    d = len(arrivals)
    row, station, phase = np.nonzero(np.isfinite(arrivals))  # row-major: grouped by source
    n = len(row) // d
    times = arrivals[row, station, phase].reshape(d, 1, 1, n)
    sta, pha = station.reshape(d, n), phase.reshape(d, n)
    tt = travel_times.paired_grid(xy, depth, station_xyz[sta], pha)  # [D, H, Z, K]
    implied = (times - tt).reshape(d, -1, n)  # [D, C, K] origin implied by each pick
    both = np.partition(implied, ((n - 1) // 2, n // 2), axis=-1)
    origin = 0.5 * (both[..., (n - 1) // 2] + both[..., n // 2])  # the median: L1-optimal
    residual = np.abs(implied - origin[..., None])
    if gate is not None:
        residual = np.minimum(residual, gate(tt, pha[:, None, None]).reshape(d, -1, n))
    return origin, residual.sum(-1) / n


def _grid(radius_km: float, spacing_km: float, depths_km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate offsets: horizontal ``[H, 2]`` (a square of ``radius_km`` at ``spacing_km``)
    and the depth values ``[Z]`` to combine with each."""
    h = np.arange(-radius_km, radius_km + 1e-9, spacing_km)
    return np.stack(np.meshgrid(h, h, indexing="ij"), axis=-1).reshape(-1, 2), np.asarray(depths_km, dtype="float64")


def _chunks(n_picks: np.ndarray, n_candidates: int, elements: int = CHUNK_ELEMENTS):
    """Row-index arrays of the sources with picks, in chunks of one pick count each (no
    padding), of at most ``elements`` (source, candidate, pick) triples (at least one source)."""
    order = np.argsort(n_picks, kind="stable")
    order = order[n_picks[order] > 0]
    if len(order) == 0:
        return
    starts = np.flatnonzero(np.r_[True, np.diff(n_picks[order]) != 0])
    for lo, hi in zip(starts, np.r_[starts[1:], len(order)]):
        size = max(elements // (n_candidates * int(n_picks[order[lo]])), 1)
        for a in range(lo, hi, size):
            yield order[a:min(a + size, hi)]


def coarse_gate(travel_times: TravelTimes, gate: Gate | None, spacing_km: float, depth_spacing_km: float) -> Gate | None:
    """``gate`` widened for a grid of ``spacing_km`` epicentres and ``depth_spacing_km`` depths:
    plus the most a travel time can change between a point and its nearest grid node
    (:meth:`~generator.traveltimes.TravelTimes.max_change_s` over half the cell diagonal). An
    event's picks then fit their gates at the node nearest it too, so the coarse stage ranks
    nodes by the picks they could fit once refined, not by how close a node happens to lie to
    the event (with the plain gate, a node 2.5 km from a nearby event
    leaves its S picks past their gates and the coarse minimum lands in the distance-origin
    time trade-off valley, where the fine stage cannot climb out)."""
    if gate is None:
        return None
    slack = travel_times.max_change_s(np.sqrt(2 * (spacing_km / 2) ** 2 + (depth_spacing_km / 2) ** 2))

    def widened(tt, phase):
        return gate(tt, phase) + slack[np.asarray(phase)]

    return widened


def locate(travel_times: TravelTimes, station_xyz: np.ndarray, arrivals: np.ndarray, initial_xyz: np.ndarray,
           depth_range_km: tuple[float, float], radius_km: float = 20.0, coarse_km: float = 2.5,
           fine_km: float = 1.0, depth_levels: int = 8, gate: Gate | None = None,
           xy_bounds_km: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hypocentres ``[D, 3]`` (km), origin times ``[D]`` (s) and misfits ``[D]`` (mean absolute
    residual, each capped at ``gate(travel time, phase)`` when given; s) of sources with
    ``arrivals [D, S, 2]`` near ``initial_xyz [D, 3]``.

    Coarse stage: epicentres within ``radius_km`` of the start at ``coarse_km`` spacing, at
    ``depth_levels`` depths spanning ``depth_range_km``; fine stage: within ``coarse_km`` of the
    best coarse point at ``fine_km`` spacing in all three coordinates. Epicentres stay within
    ``xy_bounds_km`` ((x, y) minimum and maximum, km) when given. Sources without picks keep
    their initial position (NaN origin)."""
    arrivals = np.asarray(arrivals, dtype="float64")
    initial = np.asarray(initial_xyz, dtype="float64")
    zmin, zmax = depth_range_km
    levels = np.linspace(zmin, zmax, depth_levels)
    stages = (("coarse", _grid(radius_km, coarse_km, levels)),  # absolute depths
              ("fine", _grid(coarse_km, fine_km, np.arange(-coarse_km, coarse_km + 1e-9, fine_km))))
    gates = {"coarse": coarse_gate(travel_times, gate, coarse_km, float(levels[1] - levels[0]) if depth_levels > 1 else 0.0),
             "fine": gate}
    xyz = initial.copy()
    origin = np.full(len(initial), np.nan)
    misfit = np.full(len(initial), np.nan)
    n_picks = np.isfinite(arrivals).reshape(len(arrivals), -1).sum(1)
    for stage, (offsets, depths) in stages:
        for rows in _chunks(n_picks, len(offsets) * len(depths)):
            xy = xyz[rows, None, :2] + offsets[None]
            if xy_bounds_km is not None:
                xy = np.clip(xy, *xy_bounds_km)
            z = depths[None] if stage == "coarse" else xyz[rows, 2:3] + depths[None]
            z = np.clip(np.broadcast_to(z, (len(rows), len(depths))), zmin, zmax)
            o, m = _score(travel_times, station_xyz, arrivals[rows], xy, z, gates[stage])
            best = np.argmin(m, axis=1)
            pick = np.arange(len(rows))
            h, k = np.divmod(best, len(depths))
            xyz[rows, :2], xyz[rows, 2] = xy[pick, h], z[pick, k]
            origin[rows], misfit[rows] = o[pick, best], m[pick, best]
    return xyz, origin, misfit


@dataclass
class Location:
    """Relocated sources (see :func:`relocate`); arrays over ``D`` sources and ``S`` stations.

    ``xyz [D, 3]`` km, ``origin_s [D]`` s, ``residual_s [D, S, 2]`` (pick minus predicted, NaN
    where no pick), ``rms_s [D]`` (root mean square residual), ``covariance [D, 4, 4]`` (x, y,
    depth in km, origin in s), ``horizontal_km`` (1-sigma semi-major axis of the epicentral
    ellipse), ``depth_km`` and ``time_s`` (1-sigma), ``gap_deg`` (largest azimuthal gap between
    the stations with picks), ``converged [D]``; ``minor_km`` (1-sigma semi-minor axis) and
    ``azimuth_deg`` (of the semi-major axis, clockwise from north, 0-180) complete the ellipse."""

    xyz: np.ndarray
    origin_s: np.ndarray
    residual_s: np.ndarray
    rms_s: np.ndarray
    covariance: np.ndarray
    horizontal_km: np.ndarray
    depth_km: np.ndarray
    time_s: np.ndarray
    gap_deg: np.ndarray
    converged: np.ndarray
    minor_km: np.ndarray
    azimuth_deg: np.ndarray


def azimuthal_gap(xyz: np.ndarray, station_xyz: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Largest gap (deg) between the azimuths from epicentres ``xyz [D, 3]`` to the stations
    ``used [D, S]``; 360 with fewer than two stations."""
    az = np.degrees(np.arctan2(station_xyz[None, :, 0] - xyz[:, None, 0], station_xyz[None, :, 1] - xyz[:, None, 1]))
    az = np.sort(np.where(used, np.mod(az, 360.0), np.inf), axis=1)
    n = used.sum(1)
    first = az[:, 0]
    last = np.take_along_axis(az, np.maximum(n - 1, 0)[:, None], axis=1)[:, 0]
    az = np.where(np.isfinite(az), az, last[:, None])  # unused stations add no gap
    gap = np.maximum(np.diff(az, axis=1).max(1, initial=0.0), 360.0 - (last - first))
    return np.where(n >= 2, gap, 360.0)


def relocate(travel_times: TravelTimes, station_xyz: np.ndarray, arrivals: np.ndarray, initial_xyz: np.ndarray,
             initial_origin_s: np.ndarray, depth_range_km: tuple[float, float], loss_scale_s: float = 0.3,
             min_sigma_s: float = 0.05, iterations: int = 25, step_km: float = 0.2,
             xy_bounds_km: tuple[np.ndarray, np.ndarray] | None = None,
             pick_sigma_s: np.ndarray | None = None, origin_bias_s: float = 0.0) -> Location:
    """Robust least-squares hypocentres of sources with ``arrivals [D, S, 2]`` (s, NaN where no
    pick; already corrected for station statics) from ``initial_xyz [D, 3]`` and
    ``initial_origin_s [D]``.

    Minimises ``sum_i rho((r_i / f)^2)`` over (x, y, depth, origin) with the soft-L1 loss of
    :func:`scipy.optimize.least_squares` (``rho(z) = 2 (sqrt(1 + z) - 1)``, ``f = loss_scale_s``)
    by Levenberg-Marquardt with iteratively reweighted normal equations, for all sources at once
    (a 4 x 4 system each); travel-time derivatives by central differences (``step_km``). Depth
    stays in ``depth_range_km``, the epicentre within ``xy_bounds_km`` ((x, y) minimum and
    maximum, km) when given: picks that fit a source beyond the region the model searches
    (a distant event's near-plane wave, or chance picks) do not carry it off the map.

    The covariance is that of this estimator under independent pick errors of a priori standard
    deviations ``pick_sigma_s [D, S, 2]`` (s; ``min_sigma_s`` everywhere when None): the sandwich
    ``A^-1 J^T W Sigma W J A^-1`` with ``A = J^T W J`` (``W`` the loss weights at the solution,
    ``Sigma`` the a priori variances), times ``max(1, sum w (r / sigma)^2 / (n - 4))`` so that
    residuals larger than the a priori errors (wrong picks, a velocity model off) widen it but
    a few lucky small residuals never shrink it below what the timing errors allow. An unweighted
    fit weighs a far station's loose S pick as a near P, and the sandwich counts that. A timing
    error common to all of a source's picks (std ``origin_bias_s``, s) moves only its origin
    time and adds to that variance. Sources with fewer than 4 picks keep their initial values
    (NaN uncertainties)."""
    arrivals = np.asarray(arrivals, dtype="float64")
    d, s, _ = arrivals.shape
    mask = np.isfinite(arrivals)
    obs = np.where(mask, arrivals, 0.0)
    n_obs = mask.reshape(d, -1).sum(1)
    solvable = n_obs >= 4
    theta = np.column_stack([np.asarray(initial_xyz, dtype="float64"), np.asarray(initial_origin_s, dtype="float64")])
    zmin, zmax = depth_range_km
    xy_lo, xy_hi = xy_bounds_km if xy_bounds_km is not None else (np.full(2, -np.inf), np.full(2, np.inf))
    lo, hi = np.r_[xy_lo, zmin], np.r_[xy_hi, zmax]
    theta[:, :3] = np.clip(theta[:, :3], lo, hi)
    f2 = loss_scale_s**2

    def residuals(t):
        return np.where(mask, obs - t[:, 3, None, None] - travel_times(t[:, :3], station_xyz).reshape(d, s, 2), 0.0)

    def cost(r):
        return (2.0 * (np.sqrt(1.0 + r**2 / f2) - 1.0) * mask).reshape(d, -1).sum(1)

    def jacobian(t):
        jac = np.zeros((d, s, 2, 4))
        for k in range(3):
            up, down = t.copy(), t.copy()
            up[:, k] += step_km
            down[:, k] -= step_km
            diff = (travel_times(up[:, :3], station_xyz) - travel_times(down[:, :3], station_xyz)) / (2 * step_km)
            jac[..., k] = -diff.reshape(d, s, 2)
        jac[..., 3] = -1.0
        return jac * mask[..., None]

    r = residuals(theta)
    current = cost(r)
    damping = np.full(d, 1e-3)
    converged = ~solvable
    for _ in range(iterations):
        active = ~converged
        if not active.any():
            break
        jac = jacobian(theta).reshape(d, -1, 4)
        w = (1.0 / np.sqrt(1.0 + r**2 / f2)).reshape(d, -1)
        jtw = jac.transpose(0, 2, 1) * w[:, None, :]
        normal = jtw @ jac
        gradient = (jtw @ r.reshape(d, -1, 1))[..., 0]
        lhs = normal + damping[:, None, None] * (np.eye(4) * np.maximum(np.diagonal(normal, axis1=1, axis2=2), 1e-6)[:, None, :])
        step = -np.linalg.solve(lhs + 1e-9 * np.eye(4), gradient[..., None])[..., 0]
        trial = theta + np.where(active[:, None], step, 0.0)
        trial[:, :3] = np.clip(trial[:, :3], lo, hi)
        r_trial = residuals(trial)
        c_trial = cost(r_trial)
        better = active & (c_trial <= current)
        theta[better], r[better] = trial[better], r_trial[better]
        small = better & (np.abs(step[:, :3]).max(1) < 1e-3) & (np.abs(step[:, 3]) < 1e-4)
        current = np.where(better, c_trial, current)
        damping = np.where(better, damping / 3.0, damping * 4.0)
        converged |= small | (damping > 1e6)

    jac = jacobian(theta).reshape(d, -1, 4)
    w = (1.0 / np.sqrt(1.0 + r**2 / f2)).reshape(d, -1)
    jtw = jac.transpose(0, 2, 1) * w[:, None, :]
    normal = jtw @ jac
    prior = np.full((d, s, 2), float(min_sigma_s)) if pick_sigma_s is None else \
        np.broadcast_to(np.asarray(pick_sigma_s, dtype="float64"), (d, s, 2))
    variance = np.where(mask, np.maximum(prior, 1e-6) ** 2, 1.0).reshape(d, -1)
    # Residuals are 0 where there is no pick, so the 1.0 there adds nothing to the spread.
    meat = (jtw * variance[:, None, :]) @ jtw.transpose(0, 2, 1)
    dof = np.maximum(n_obs - 4, 1)
    factor = np.maximum((w * r.reshape(d, -1) ** 2 / variance).sum(1) / dof, 1.0)
    covariance = np.full((d, 4, 4), np.nan)
    ok = solvable.copy()
    if solvable.any():
        ok[solvable] = np.linalg.matrix_rank(normal[solvable]) == 4
    if ok.any():
        bread = np.linalg.inv(normal[ok])
        covariance[ok] = bread @ meat[ok] @ bread * factor[ok, None, None]
        covariance[ok, 3, 3] += origin_bias_s**2
    values, vectors = np.linalg.eigh(np.nan_to_num(covariance[:, :2, :2]))
    axes = np.sqrt(np.maximum(values, 0.0))
    axes[~ok] = np.nan
    # The semi-major axis's direction (x east, y north) as an azimuth; an axis has no sign.
    azimuth = np.mod(np.degrees(np.arctan2(vectors[:, 0, 1], vectors[:, 1, 1])), 180.0)
    azimuth[~ok] = np.nan
    residual = np.where(mask, r, np.nan)
    rms = np.where(n_obs > 0, np.sqrt((r**2).reshape(d, -1).sum(1) / np.maximum(n_obs, 1)), np.nan)
    return Location(theta[:, :3], theta[:, 3], residual, rms, covariance, axes[:, 1],
                    np.sqrt(covariance[:, 2, 2]), np.sqrt(covariance[:, 3, 3]),
                    azimuthal_gap(theta, station_xyz, mask.any(2)), converged, axes[:, 0], azimuth)
