"""First-arrival P and S travel times from a 1-D model: TauP tables, numpy and torch evaluation.

Coordinates are in the network's local frame (:class:`catalogs.projection.LocalProjection`):
sources ``[N, 3]`` are ``(x_km, y_km, depth_km)`` with depth positive down, stations ``[M, 3]``
are ``(x_km, y_km, z_km)`` with ``z_km = -elevation_m / 1000``. Times are seconds.

The table holds, on a uniform (source depth, epicentral distance) grid, the earliest arrival over
TauP's direct and refracted phases (``p, P, Pg, Pn`` and the S equivalents) for a receiver at
sea level. Evaluation is bilinear interpolation (linear extrapolation beyond the table) plus a
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


def taup_first_arrivals(model: VelocityModel, depths_km, distances_km, workdir: Path | None = None,
                        progress: bool = False) -> np.ndarray:
    """Earliest P and S TauP arrivals, shape ``[2, n_depth, n_distance]`` (s).

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

    @property
    def max_distance_km(self) -> float:
        return (self.times.shape[2] - 1) * self.spacing_km

    @property
    def max_depth_km(self) -> float:
        return (self.times.shape[1] - 1) * self.spacing_km

    @classmethod
    def build(cls, model: VelocityModel, max_distance_km: float, max_depth_km: float, spacing_km: float = 1.0,
              cache_dir: str | os.PathLike | None = None, progress: bool = True) -> "TravelTimes":
        """Compute (or load from the on-disk cache, keyed by model and grid) the table."""
        n_dist = int(np.ceil(max_distance_km / spacing_km)) + 1
        n_depth = max(int(np.ceil(max_depth_km / spacing_km)) + 1, 2)
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = cache / f"{model.digest()}_{spacing_km:g}_{n_dist}_{n_depth}.npz"
        if path.is_file():
            times = np.load(path)["times"]
            logger.debug("travel times loaded from %s", path)
        else:
            logger.info("computing the TauP travel-time table (%d depths x %d distances) for model %s; "
                        "cached in %s", n_depth, n_dist, model.name, cache)
            times = taup_first_arrivals(model, np.arange(n_depth) * spacing_km, np.arange(n_dist) * spacing_km,
                                        progress=progress)
            cache.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, times=times)
        return cls(model, times, spacing_km)

    def _index(self, xp, src, sta):
        """Index arithmetic shared by the numpy (``xp`` is numpy) and torch paths.

        Returns flat table indices ``k [N, M]``, distance weights ``wr [N, M]``, depth weights
        ``wz [N, 1]`` and hypocentral distances ``hyp [N, M]`` (km).
        """
        n_depth, n_dist = self.times.shape[1:]
        h = self.spacing_km
        if xp is np:
            depth = np.maximum(src[:, 2], 0.0)

            def cell(f, n):
                return np.minimum(f.astype(np.int64), n - 2)
        else:
            depth = src[:, 2].clamp(min=0.0)

            def cell(f, n):
                return f.floor().long().clamp(max=n - 2)
        fz = depth / h
        j = cell(fz, n_depth)
        dx = src[:, None, 0] - sta[None, :, 0]
        dy = src[:, None, 1] - sta[None, :, 1]
        r2 = dx * dx + dy * dy
        fr = xp.sqrt(r2) / h
        i = cell(fr, n_dist)
        return j[:, None] * n_dist + i, fr - i, (fz - j)[:, None], xp.sqrt(r2 + (depth * depth)[:, None])

    def __call__(self, sources, stations) -> np.ndarray:
        """Travel times ``[N, M, 2]`` (s) of P and S from ``sources [N, 3]`` to ``stations [M, 3]``."""
        src = np.asarray(sources, dtype="float64").reshape(-1, 3)
        sta = np.asarray(stations, dtype="float64").reshape(-1, 3)
        k, wr, wz, hyp = self._index(np, src, sta)
        n_dist = self.times.shape[2]
        out = np.empty(k.shape + (2,))
        for c, table in enumerate(self._residual):
            a, b = table.take(k), table.take(k + 1)
            near = a + (b - a) * wr
            a, b = table.take(k + n_dist), table.take(k + n_dist + 1)
            far = a + (b - a) * wr
            out[..., c] = near + (far - near) * wz + (hyp - sta[None, :, 2]) / self.top_velocity[c]
        return out

    def torch(self, sources, stations):
        """Same as ``__call__`` for torch tensors, on their device and dtype (differentiable in
        the coordinates)."""
        import torch

        src = sources.reshape(-1, 3)
        sta = stations.reshape(-1, 3)
        key = (str(src.device), src.dtype)
        if key not in self._torch_tables:
            self._torch_tables[key] = [torch.as_tensor(t, device=src.device, dtype=src.dtype) for t in self._residual]
        k, wr, wz, hyp = self._index(torch, src, sta)
        n_dist = self.times.shape[2]
        phases = []
        for c, table in enumerate(self._torch_tables[key]):
            near = table[k] + (table[k + 1] - table[k]) * wr
            far = table[k + n_dist] + (table[k + n_dist + 1] - table[k + n_dist]) * wr
            phases.append(near + (far - near) * wz + (hyp - sta[None, :, 2]) / float(self.top_velocity[c]))
        return torch.stack(phases, dim=-1)
