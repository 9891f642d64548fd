"""First-arrival P and S travel times from a 1-D layered model: a ray-parameter sweep that builds
the table in well under a second, numpy and torch evaluation, TauP as the reference.

Coordinates are in the network's local frame (:class:`catalogs.projection.LocalProjection`):
sources ``[N, 3]`` are ``(x_km, y_km, depth_km)`` with depth positive down, stations ``[M, 3]``
are ``(x_km, y_km, z_km)`` with ``z_km = -elevation_m / 1000``. Times are seconds.

The table holds, on a uniform (source depth, epicentral distance) grid, the earliest arrival for a
receiver at sea level, computed as TauP computes it (a spherical Earth of radius 6371 km whose
layers are the model's constant-velocity shells, the last extending down as a half-space):

* direct and turning rays: for a fan of ray parameters ``p`` (s/rad) from each source depth, the
  epicentral angle and time as sums of closed forms over shells (in a shell of velocity ``v``
  with ``u = r / v``: angle ``arccos(p / u)`` and time ``sqrt(u^2 - p^2)`` between its radii),
  the up-going leg plus twice the down-going leg to the turning radius ``r = p v``; ray
  parameters that would be totally reflected at a velocity increase are left out;
* head waves along every interface below the source faster than everything above it:
  ``t = t0 + p_h * angle`` with ``p_h = r_i / v_i``, from their critical distance on.

Each branch is interpolated onto the distance grid segment by segment with the slope ``dt/dx = p``
(exact to second order), and the minimum over branches is kept: the table follows the first
arrival through triplications and beyond the Pn/Sn crossover. Against direct TauP calls it agrees
within a millisecond on models whose velocity does not decrease with depth (tests); with a
low-velocity zone it also finds the rays guided in the fast lid above it, which TauP's ``p``/``P``
phases leave out (it is then earlier than TauP there, never later).

Evaluation is bilinear interpolation (linear extrapolation beyond the table) plus a
station-elevation correction ``-z_km / v_top`` (a vertical path through the top layer).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalogs.fileio import atomic_path
from generator.velocity import VelocityModel

logger = logging.getLogger(__name__)

P_PHASES = ["p", "P", "Pn"]
S_PHASES = ["s", "S", "Sn"]


def default_cache_dir() -> Path:
    """``$GENIE_CACHE`` or ``~/.cache/genie``, then ``traveltimes/``."""
    root = os.environ.get("GENIE_CACHE") or Path.home() / ".cache" / "genie"
    return Path(root) / "traveltimes"

EARTH_RADIUS_KM = 6371.0
# Deepest radius a half-space is followed to: steeper rays surface beyond 120 degrees, far outside
# any local or regional table.
_HALF_SPACE_BOTTOM = 0.5
# Ray parameters per branch: 1 km grid cells then hold several rays each (accuracy ~1e-3 s).
_RAYS_PER_BRANCH = 600
TABLE_METHOD = "rays1"  # part of the cache key: tables from another builder are not reused
TABLE_MIN_DEPTH_KM = 60.0  # a new table reaches at least this deep (see TravelTimes.build)


def _shells(p: np.ndarray, r_bottom: np.ndarray, r_top: np.ndarray, v: np.ndarray):
    """Epicentral angle (rad) and time (s) of rays ``p [R, 1]`` (s/rad) through constant-velocity
    shells ``[1, L]`` between radii ``r_bottom`` and ``r_top`` (km) at velocity ``v`` (km/s). A
    ray turning inside a shell contributes its part above the turning radius; one that cannot
    enter it contributes zero (callers mask shells a ray never reaches)."""
    u_top, u_bottom = r_top / v, r_bottom / v
    angle = np.arccos(np.minimum(p / u_top, 1.0)) - np.arccos(np.minimum(p / u_bottom, 1.0))
    time = np.sqrt(np.maximum(u_top**2 - p**2, 0.0)) - np.sqrt(np.maximum(u_bottom**2 - p**2, 0.0))
    return angle, time


def _first_arrival_one_depth(tops: np.ndarray, velocity: np.ndarray, depth: float, angles: np.ndarray) -> np.ndarray:
    """Earliest arrival (s) at epicentral ``angles [D]`` (rad) from a source at ``depth`` (km)
    for one phase of the layered model (``tops``, ``velocity``; see module doc)."""
    radius = EARTH_RADIUS_KM
    layer = int(np.searchsorted(tops, depth, side="right")) - 1
    bottoms = np.append(tops[1:], radius * (1.0 - _HALF_SPACE_BOTTOM))
    # Shells between the surface and the source, and below the source.
    up_r = (radius - np.minimum(bottoms[:layer + 1], depth))[None, :], (radius - tops[:layer + 1])[None, :]
    up_v = velocity[None, :layer + 1]
    down_top = radius - np.maximum(tops[layer:], depth)
    down_bottom = radius - bottoms[layer:]
    down_v = velocity[layer:]
    eta_top, eta_bottom = down_top / down_v, down_bottom / down_v
    eta_source = (radius - depth) / velocity[layer]

    # Ray-parameter fans: up-going (take-off angle 0..90 deg from vertical), then a ray turning
    # inside each shell below the source that it can reach without total reflection on the way.
    fans = [eta_source * np.sin(np.linspace(0.0, np.pi / 2, _RAYS_PER_BRANCH))]
    reach = eta_source
    for k in range(len(down_v)):
        hi, lo = min(eta_top[k], reach), eta_bottom[k]
        if hi > lo:
            # Denser at shallow turning, where distance changes fastest with p.
            fans.append(hi - (hi - lo) * (1.0 - np.cos(np.linspace(0.0, np.pi / 2, _RAYS_PER_BRANCH))))
        reach = min(reach, lo)
    p = np.concatenate(fans)[:, None]
    branch = np.repeat(np.arange(len(fans)), [len(f) for f in fans])
    angle_up, time_up = _shells(p, *up_r, up_v)
    angle_down, time_down = _shells(p, down_bottom[None, :], down_top[None, :], down_v[None, :])
    # A down-going ray enters shell k when it passed every shell above (p below their bottom eta)
    # and p is below the shell's top eta.
    passed = np.cumprod(np.column_stack([np.ones(len(p), bool), p < eta_bottom[None, :-1]]), axis=1).astype(bool)
    enters = passed & (p < eta_top[None, :]) & (branch[:, None] > 0)
    x = angle_up.sum(1) + 2.0 * np.where(enters, angle_down, 0.0).sum(1)
    t = time_up.sum(1) + 2.0 * np.where(enters, time_down, 0.0).sum(1)
    p = p[:, 0]

    best = np.full(len(angles), np.inf)
    seg = np.nonzero(branch[1:] == branch[:-1])[0]
    lo, hi = np.minimum(x[seg], x[seg + 1]), np.maximum(x[seg], x[seg + 1])
    first, last = np.searchsorted(angles, lo, side="left"), np.searchsorted(angles, hi, side="right")
    count = last - first
    if count.sum():
        which = np.repeat(np.arange(len(seg)), count)
        target = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) + np.repeat(first, count)
        s = seg[which]
        times = t[s] + (angles[target] - x[s]) * 0.5 * (p[s] + p[s + 1])
        np.minimum.at(best, target, times)

    # Head waves along interfaces below the source (shell k's top, k >= 1).
    for k in range(1, len(down_v)):
        p_head = eta_top[k]
        if p_head >= min(eta_source, eta_bottom[:k].min()):
            continue
        ph = np.array([[p_head]])
        a_up, t_up = _shells(ph, *up_r, up_v)
        a_down, t_down = _shells(ph, down_bottom[None, :k], down_top[None, :k], down_v[None, :k])
        x0, t0 = a_up.sum() + 2.0 * a_down.sum(), t_up.sum() + 2.0 * t_down.sum()
        beyond = angles >= x0
        best[beyond] = np.minimum(best[beyond], t0 + p_head * (angles[beyond] - x0))
    return best


def layered_first_arrivals(model: VelocityModel, depths_km, distances_km) -> np.ndarray:
    """Earliest P and S arrivals ``[2, n_depth, n_distance]`` (s) at sea level by the
    ray-parameter sweep of the module doc; ``distances_km`` increasing (km along the surface)."""
    depths = np.maximum(np.asarray(depths_km, dtype="float64"), 0.0)
    angles = np.asarray(distances_km, dtype="float64") / EARTH_RADIUS_KM
    if np.any(np.diff(angles) < 0):
        raise ValueError("distances_km must increase")
    tops = np.asarray(model.depth_km, dtype="float64")
    out = np.empty((2, len(depths), len(angles)))
    for k, velocity in enumerate((np.asarray(model.vp, float), np.asarray(model.vs, float))):
        for j, depth in enumerate(depths):
            out[k, j] = _first_arrival_one_depth(tops, velocity, float(depth), angles)
    if not np.isfinite(out).all():
        raise ValueError(f"velocity model {model.name!r}: no ray reaches some table points")
    return out


def taup_first_arrivals(model: VelocityModel, depths_km, distances_km, workdir: Path | None = None,
                        progress: bool = False) -> np.ndarray:
    """Earliest P and S TauP arrivals, shape ``[2, n_depth, n_distance]`` (s): the reference the
    ray sweep is tested against (about 0.1 s per source depth and distance).

    Builds the TauP model from the layers (see :meth:`VelocityModel.write_tvel`). Points where
    TauP finds no arrival (e.g. zero distance and depth) get the straight-ray time at the
    source-layer velocity.
    """
    from obspy.geodetics import kilometer2degrees
    from obspy.taup import TauPyModel
    from obspy.taup.taup_create import build_taup_model
    from tqdm import tqdm

    depths = np.asarray(depths_km, dtype="float64")
    distances = np.asarray(distances_km, dtype="float64")
    splice = max(model.depth_km[-1], depths.max()) + 50.0
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tvel = Path(tmp) / f"{model.name}.tvel"
        model.write_tvel(tvel, splice)
        build_taup_model(str(tvel), output_folder=tmp, verbose=False)
        taup = TauPyModel(str(Path(tmp) / f"{model.name}.npz"))
    out = np.full((2, len(depths), len(distances)), np.nan)
    degrees = kilometer2degrees(distances)
    # TauP re-uses its depth-corrected model between calls at the same source depth, so depth is
    # the outer loop. This runs once per model and grid; the result is cached.
    for j, depth in enumerate(tqdm(depths, desc="TauP table", unit="depth", disable=not progress)):
        for i, deg in enumerate(degrees):
            for arrival in taup.get_travel_times(max(depth, 0.0), deg, phase_list=P_PHASES + S_PHASES):
                k = 0 if arrival.name[0] in "Pp" else 1
                if np.isnan(out[k, j, i]) or arrival.time < out[k, j, i]:
                    out[k, j, i] = arrival.time
    missing = np.isnan(out)
    if missing.any():
        hyp = np.hypot(depths[:, None], distances[None, :])
        for k, phase in enumerate("PS"):
            straight = hyp / model.velocity_at(depths, phase)[:, None]
            out[k][missing[k]] = straight[missing[k]]
    return out


@dataclass
class TravelTimes:
    """Travel-time table on a uniform grid with numpy and torch evaluation (see module doc).

    ``times[phase, depth, distance]`` in s, ``phase`` 0 = P, 1 = S, on the grid
    ``depth = j * spacing_km``, ``distance = i * spacing_km``.

    What is interpolated is the residual ``times - sqrt(distance^2 + depth^2) / v_top``: it is
    smooth where the travel time itself curves sharply (near a shallow source), so a 1 km grid
    meets 0.05 s; the straight-ray part is added back exactly.
    """

    model: VelocityModel
    times: np.ndarray
    spacing_km: float

    def __post_init__(self):
        self.times = np.asarray(self.times, dtype="float64")
        n_depth, n_dist = self.times.shape[1:]
        if n_depth < 2 or n_dist < 2:
            raise ValueError("a travel-time table needs at least 2 depths and 2 distances")
        self.top_velocity = np.array([self.model.vp[0], self.model.vs[0]])
        depth = np.arange(n_depth)[:, None] * self.spacing_km
        dist = np.arange(n_dist)[None, :] * self.spacing_km
        straight = np.hypot(depth, dist)[None] / self.top_velocity[:, None, None]
        self._residual = [np.ascontiguousarray(self.times[k] - straight[k]).ravel() for k in range(2)]
        self._torch_tables = {}
        self._stacked = None  # both phases' residual tables end to end (paired)

    @property
    def max_distance_km(self) -> float:
        return (self.times.shape[2] - 1) * self.spacing_km

    @property
    def max_depth_km(self) -> float:
        return (self.times.shape[1] - 1) * self.spacing_km

    def max_change_s(self, distance_km: float) -> np.ndarray:
        """``[2]`` s: the most the P and S travel times can change when the source moves by
        ``distance_km`` (the slowest velocity of the model bounds the travel time's gradient in
        the source position)."""
        return float(distance_km) / np.array([min(self.model.vp), min(self.model.vs)])

    @classmethod
    def build(cls, model: VelocityModel, max_distance_km: float, max_depth_km: float, spacing_km: float = 1.0,
              cache_dir: str | os.PathLike | None = None) -> "TravelTimes":
        """The table over ``[0, max_depth_km] x [0, max_distance_km]``, cut from a cached table of
        the same model and spacing that covers it, or computed (in about a second) and cached.

        A new table goes down to at least :data:`TABLE_MIN_DEPTH_KM`, so that the stages that
        ask for different depths on one network (calibration from the default event depths,
        training from the calibrated ones) share one build. A point's time does not depend on
        the table's extent, so a cut table equals one computed at that extent."""
        n_dist = int(np.ceil(max_distance_km / spacing_km)) + 1
        n_depth = max(int(np.ceil(max_depth_km / spacing_km)) + 1, 2)
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        stem = f"{model.digest()}_{TABLE_METHOD}_{spacing_km:g}"
        covering = sorted((int(d) * int(z), path) for path in cache.glob(f"{stem}_*_*.npz")
                          for d, z in [path.stem.split("_")[-2:]] if int(d) >= n_dist and int(z) >= n_depth)
        if covering:
            path = covering[0][1]
            times = np.load(path)["times"]
            logger.debug("travel times cut from %s", path)
        else:
            n_dist_new = n_dist
            n_depth_new = max(n_depth, int(np.ceil(TABLE_MIN_DEPTH_KM / spacing_km)) + 1)
            path = cache / f"{stem}_{n_dist_new}_{n_depth_new}.npz"
            logger.info("computing the travel-time table (%d depths x %d distances) for model %s; cached in %s",
                        n_depth_new, n_dist_new, model.name, cache)
            times = layered_first_arrivals(model, np.arange(n_depth_new) * spacing_km,
                                           np.arange(n_dist_new) * spacing_km)
            cache.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, times=times)
        return cls(model, np.ascontiguousarray(times[:, :n_depth, :n_dist]), spacing_km)

    def _index(self, xp, x, y, depth, station_x, station_y, offset=0):
        """Index arithmetic shared by the numpy (``xp`` is numpy) and torch paths.

        Sources at ``x``, ``y``, ``depth`` and stations at ``station_x``, ``station_y`` (km), all
        broadcasting together. Returns flat table indices ``k`` (plus ``offset``, where both
        phases' tables lie end to end), distance weights ``wr``, depth weights ``wz`` and
        hypocentral distances ``hyp`` (km); each term is computed in the shape its own inputs
        give it (the depth terms in the depths' shape), so a product of horizontal positions and
        depths costs the distance arithmetic once per position and the depth arithmetic once per
        depth, and the outputs broadcast to the full shape.
        """
        n_depth, n_dist = self.times.shape[1:]
        h = self.spacing_km
        if xp is np:
            depth = np.maximum(depth, 0.0)

            def cell(f, n):
                return np.minimum(f.astype(np.int64), n - 2)
        else:
            depth = depth.clamp(min=0.0)

            def cell(f, n):
                return f.floor().long().clamp(max=n - 2)
        fz = depth / h
        j = cell(fz, n_depth)
        dx, dy = x - station_x, y - station_y
        r2 = dx * dx + dy * dy
        fr = xp.sqrt(r2) / h
        i = cell(fr, n_dist)
        return j * n_dist + (i + offset), fr - i, fz - j, xp.sqrt(r2 + depth * depth)

    def __call__(self, sources, stations) -> np.ndarray:
        """Travel times ``[N, M, 2]`` (s) of P and S from ``sources [N, 3]`` to ``stations [M, 3]``."""
        src = np.asarray(sources, dtype="float64").reshape(-1, 3)
        sta = np.asarray(stations, dtype="float64").reshape(-1, 3)
        k, wr, wz, hyp = self._index(np, src[:, None, 0], src[:, None, 1], src[:, None, 2], sta[None, :, 0],
                                     sta[None, :, 1])
        out = np.empty(k.shape + (2,))
        for c, table in enumerate(self._residual):
            out[..., c] = self._bilinear(table, k, wr, wz) + (hyp - sta[None, :, 2]) / self.top_velocity[c]
        return out

    def _bilinear(self, table, k, wr, wz):
        """The flat residual ``table`` (numpy or torch) interpolated at cells ``k`` with distance
        and depth weights ``wr``, ``wz`` (:meth:`_index`)."""
        n_dist = self.times.shape[2]
        # The cell's other corners from shifted views of the table: no index arrays k + 1, ...;
        # take() gathers a quarter faster than fancy indexing.
        t00, t01, t10, t11 = (table[shift:].take(k) for shift in (0, 1, n_dist, n_dist + 1))
        near = t00 + (t01 - t00) * wr
        far = t10 + (t11 - t10) * wr
        return near + (far - near) * wz

    def paired(self, sources, stations, phase) -> np.ndarray:
        """Travel times (s) of phase ``phase`` (0 P, 1 S) from ``sources [..., 3]`` to
        ``stations [..., 3]``, paired element by element where the shapes broadcast (``[N, 3]``,
        ``[N, 3]`` and ``[N]`` give ``[N]``; ``[D, C, 1, 3]`` candidates against ``[D, 1, K, 3]``
        stations and ``[D, 1, K]`` phases give ``[D, C, K]`` without copying either): the
        entries of :meth:`__call__` a sparse set of source-station-phase triples needs, without
        the full product."""
        src = np.asarray(sources, dtype="float64")
        return self._paired(src[..., 0], src[..., 1], src[..., 2], stations, phase)

    def paired_grid(self, xy, depth, stations, phase) -> np.ndarray:
        """Travel times ``[D, H, Z, K]`` (s) of phases ``phase [D, K]`` (0 P, 1 S) to
        ``stations [D, K, 3]`` from source ``d``'s candidate epicentres ``xy [D, H, 2]`` (km) at
        each of its depths ``depth [D, Z]`` (km): :meth:`paired` on that product (the same
        numbers), with the distance arithmetic done once per epicentre and station and the depth
        arithmetic once per depth: a grid search's candidates."""
        xy = np.asarray(xy, dtype="float64")
        depth = np.asarray(depth, dtype="float64")
        return self._paired(xy[:, :, None, None, 0], xy[:, :, None, None, 1], depth[:, None, :, None],
                            np.asarray(stations, dtype="float64")[:, None, None],
                            np.asarray(phase, dtype=np.int64)[:, None, None])

    def _paired(self, x, y, depth, stations, phase) -> np.ndarray:
        """:meth:`paired` on source coordinates given apart (see :meth:`_index`)."""
        sta = np.asarray(stations, dtype="float64")
        phase = np.asarray(phase, dtype=np.int64)
        if self._stacked is None:
            self._stacked = np.concatenate(self._residual)
        k, wr, wz, hyp = self._index(np, x, y, depth, sta[..., 0], sta[..., 1], offset=phase * self._residual[0].size)
        return self._bilinear(self._stacked, k, wr, wz) + (hyp - sta[..., 2]) / self.top_velocity[phase]

    def torch(self, sources, stations):
        """Same as ``__call__`` for torch tensors, on their device and dtype (differentiable in
        the coordinates)."""
        import torch

        src = sources.reshape(-1, 3)
        sta = stations.reshape(-1, 3)
        key = (str(src.device), src.dtype)
        if key not in self._torch_tables:
            self._torch_tables[key] = [torch.as_tensor(t, device=src.device, dtype=src.dtype) for t in self._residual]
        k, wr, wz, hyp = self._index(torch, src[:, None, 0], src[:, None, 1], src[:, None, 2], sta[None, :, 0],
                                     sta[None, :, 1])
        return torch.stack([self._bilinear(table, k, wr, wz) + (hyp - sta[None, :, 2]) / float(self.top_velocity[c])
                            for c, table in enumerate(self._torch_tables[key])], dim=-1)
