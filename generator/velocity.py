"""1-D layered velocity models and their conversion to an ObsPy TauP model.

A model is a list of layers, each given by the depth of its top (km, positive down) and its P and
S velocities (km/s), constant within the layer; the last layer extends down as a half-space.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from catalogs.fileio import read_table
from catalogs.schema import InputError, to_numeric

# Hadley & Kanamori (1977) Southern California model, vs = vp / 1.73 (shared data README).
HADLEY_KANAMORI = ((0.0, 5.5), (5.5, 6.3), (16.0, 6.7), (32.0, 7.8))


@dataclass(frozen=True)
class VelocityModel:
    """Layer tops ``depth_km`` (increasing, first 0) with ``vp`` and ``vs`` in km/s."""

    depth_km: tuple[float, ...]
    vp: tuple[float, ...]
    vs: tuple[float, ...]
    name: str = "custom"

    def __post_init__(self):
        d, vp, vs = (np.asarray(a, dtype="float64") for a in (self.depth_km, self.vp, self.vs))
        if not (len(d) == len(vp) == len(vs) >= 1):
            raise InputError(f"velocity model {self.name!r}: depth_km, vp and vs need the same, non-zero length")
        if d[0] != 0.0 or np.any(np.diff(d) <= 0):
            raise InputError(f"velocity model {self.name!r}: layer tops must start at 0 km and increase")
        if np.any(vp <= 0) or np.any(vs <= 0) or np.any(vs >= vp):
            raise InputError(f"velocity model {self.name!r}: velocities must satisfy 0 < vs < vp")

    @classmethod
    def homogeneous(cls, vp: float = 6.0, vs: float | None = None) -> "VelocityModel":
        """A half-space (``vs`` defaults to vp / 1.75, GaMMA's Salton Sea setting)."""
        return cls((0.0,), (float(vp),), (float(vs if vs is not None else vp / 1.75),), name=f"homogeneous_{vp:g}")

    @classmethod
    def hadley_kanamori(cls) -> "VelocityModel":
        depths, vps = zip(*HADLEY_KANAMORI)
        return cls(depths, vps, tuple(v / 1.73 for v in vps), name="hadley_kanamori")

    @classmethod
    def read_csv(cls, path: str | os.PathLike) -> "VelocityModel":
        """Read ``depth_km, vp, vs`` columns (comma, tab or blank separated; ``vs`` may be
        omitted, giving vp / 1.73)."""
        df, src = read_table(path)
        columns = {c.lower(): c for c in df.columns}
        missing = [c for c in ("depth_km", "vp") if c not in columns]
        if missing:
            raise InputError(f"{path}: missing column(s) {missing}; columns found: {list(df.columns)}")
        depth = to_numeric(df[columns["depth_km"]], src, "depth_km", allow_nan=False)
        vp = to_numeric(df[columns["vp"]], src, "vp", allow_nan=False)
        vs = to_numeric(df[columns["vs"]], src, "vs", allow_nan=False) if "vs" in columns else vp / 1.73
        return cls(tuple(depth), tuple(vp), tuple(vs), name=Path(path).stem)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"depth_km": self.depth_km, "vp": self.vp, "vs": self.vs})

    def velocity_at(self, depth_km, phase: str) -> np.ndarray:
        """Velocity (km/s) of phase ``P`` or ``S`` at the given depths (km); above 0 the top layer's."""
        v = np.asarray(self.vp if phase == "P" else self.vs)
        layer = np.searchsorted(np.asarray(self.depth_km), np.asarray(depth_km, dtype="float64"), side="right") - 1
        return v[np.clip(layer, 0, len(v) - 1)]

    def digest(self) -> str:
        """A short hash of the layers, used to key cached travel-time tables."""
        payload = json.dumps([list(self.depth_km), list(self.vp), list(self.vs)])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def write_tvel(self, path: str | os.PathLike, splice_km: float) -> None:
        """Write a TauP ``.tvel`` file: these constant-velocity layers down to ``splice_km``,
        IASP91 below (TauP needs a whole-Earth model; :func:`generator.traveltimes.taup_first_arrivals`
        puts the splice 50 km below the deepest table depth, beyond the rays a table uses)."""
        import obspy

        iasp = np.loadtxt(Path(obspy.__file__).parent / "taup" / "data" / "iasp91.tvel", skiprows=2)
        tops = list(self.depth_km)
        bottoms = tops[1:] + [splice_km]
        lines = []
        for top, bottom, vp, vs in zip(tops, bottoms, self.vp, self.vs):
            rho = 1.74 * vp**0.25  # Brocher-style density, g/cm3; TauP does not use it
            lines += [(top, vp, vs, rho), (bottom, vp, vs, rho)]
        deep = iasp[iasp[:, 0] > splice_km]
        at_splice = [np.interp(splice_km, iasp[:, 0], iasp[:, k]) for k in (1, 2, 3)]
        if at_splice[0] > lines[-1][1]:
            lines.append((splice_km, *at_splice))
        with open(path, "w") as f:
            f.write(f"{self.name} P (genie layered model over IASP91)\n{self.name} S\n")
            for row in lines + [tuple(r) for r in deep]:
                f.write("%10.4f %9.4f %9.4f %9.4f\n" % row)


def load_velocity_model(spec: str | os.PathLike) -> VelocityModel:
    """A model from a CSV path, ``hadley_kanamori``, or ``homogeneous[:vp[:vs]]`` (km/s)."""
    text = str(spec)
    if text == "hadley_kanamori":
        return VelocityModel.hadley_kanamori()
    if text.startswith("homogeneous"):
        parts = text.split(":")[1:]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise InputError(f"velocity model {text!r}: expected homogeneous[:vp[:vs]] with numbers") from None
        return VelocityModel.homogeneous(*values) if values else VelocityModel.homogeneous()
    if not Path(text).is_file():
        raise InputError(f"{text}: velocity model file not found (or use hadley_kanamori, homogeneous:6.0)")
    return VelocityModel.read_csv(text)
