"""Local magnitude from peak amplitudes (PhaseNet's ``phase_amplitude``) with station terms.

Each associated pick with an amplitude gives an estimate by inverting GaMMA's
magnitude-distance law (Zhu et al. 2022, ``gamma/seismic_ops.py``, fitted to Southern
California peak ground velocities)::

    log10 A = c0 + c1 (M - 3.5) + c3 log10 R
    M_pick  = 3.5 + (log10 A - c0 - c3 log10 R) / c1 - term[station, phase]

with ``A`` the peak ground velocity in m/s, ``R`` the hypocentral distance in km (at least
``min_distance_km``), ``c0 = -0.92`` (GaMMA's 1.08 for cm/s), ``c1 = 0.93``, ``c3 = -1.68``. The
event magnitude is the median over stations of each station's mean estimate (robust to one
clipped or noisy station); its uncertainty is the stations' robust spread (1.4826 x MAD) divided by
the square root of the number of stations (NaN with a single station).

Station terms absorb site amplification and the law's regional bias: fitted against a reference
catalog as the median, per station and phase, of ``M_pick - M_reference`` over matched events
(:func:`fit_station_terms`), saved as JSON and applied on later runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from catalogs.fileio import read_json_object, write_text_atomic
from catalogs.schema import InputError

MAGNITUDE_TYPE = "ML"


@dataclass
class MagnitudeScale:
    """The amplitude law and the station terms (magnitude units, keyed ``station -> {P, S}``)."""

    c0: float = -0.92
    c1: float = 0.93
    c3: float = -1.68
    reference_magnitude: float = 3.5
    min_distance_km: float = 1.0
    terms: dict = field(default_factory=dict)
    source: str = "GaMMA (Zhu et al. 2022) amplitude law, no station terms"

    def term(self, station_id, phase) -> np.ndarray:
        """Station terms of picks ``[n]`` (0 where none was fitted)."""
        station_id, phase = np.asarray(station_id, dtype=str), np.asarray(phase, dtype=str)
        if not self.terms or not len(station_id):
            return np.zeros(len(station_id))
        table = pd.DataFrame([(s, p, float(v)) for s, by_phase in self.terms.items() for p, v in by_phase.items()],
                             columns=["station_id", "phase", "term"])
        keys = pd.MultiIndex.from_frame(table[["station_id", "phase"]])
        where = keys.get_indexer(pd.MultiIndex.from_arrays([station_id, phase]))
        return np.where(where >= 0, table["term"].to_numpy()[np.maximum(where, 0)], 0.0)

    def amplitudes(self, magnitude, hypocentral_km) -> np.ndarray:
        """The law forward, without station terms: peak ground velocities ``[n]`` (m/s) of
        events of ``magnitude [n]`` at hypocentral distances ``[n]`` (km; at least
        ``min_distance_km``). :meth:`pick_magnitudes` inverts it."""
        distance = np.maximum(np.asarray(hypocentral_km, dtype="float64"), self.min_distance_km)
        magnitude = np.asarray(magnitude, dtype="float64")
        return 10.0 ** (self.c0 + self.c1 * (magnitude - self.reference_magnitude) + self.c3 * np.log10(distance))

    def pick_magnitudes(self, amplitude, hypocentral_km, station_id=None, phase=None) -> np.ndarray:
        """Magnitude estimates ``[n]`` of picks with peak amplitudes ``[n]`` (m/s) at hypocentral
        distances ``[n]`` (km); NaN where the amplitude is missing or not positive. Station terms
        apply when ``station_id`` and ``phase`` are given."""
        amplitude = np.asarray(amplitude, dtype="float64")
        distance = np.maximum(np.asarray(hypocentral_km, dtype="float64"), self.min_distance_km)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_a = np.where(amplitude > 0, np.log10(np.where(amplitude > 0, amplitude, 1.0)), np.nan)
        m = self.reference_magnitude + (log_a - self.c0 - self.c3 * np.log10(distance)) / self.c1
        if station_id is not None and phase is not None:
            m = m - self.term(station_id, phase)
        return m

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        text = json.dumps({"format": "genie-magnitude-scale", "c0": self.c0, "c1": self.c1, "c3": self.c3,
                           "reference_magnitude": self.reference_magnitude,
                           "min_distance_km": self.min_distance_km, "source": self.source,
                           "terms": self.terms}, indent=2) + "\n"
        if path is not None:
            write_text_atomic(path, text)
        return text

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "MagnitudeScale":
        values = read_json_object(path, "magnitude scale (JSON written by genie associate --reference)")
        if values.pop("format", None) != "genie-magnitude-scale":
            raise InputError(f"{path}: not a genie magnitude scale (no \"format\": \"genie-magnitude-scale\")")
        try:
            terms = {str(s): {str(p): float(v) for p, v in t.items()} for s, t in values.pop("terms", {}).items()}
            return cls(**{k: (v if k == "source" else float(v)) for k, v in values.items()}, terms=terms)
        except (TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{path}: invalid magnitude scale ({exc})") from None


def event_magnitudes(event_id, station_id, pick_magnitude) -> pd.DataFrame:
    """Per event: ``magnitude`` (median over stations of each station's mean pick estimate),
    ``magnitude_uncertainty`` (1.4826 MAD over stations / sqrt(n)) and
    ``n_magnitude_stations``. Inputs are per pick ``[n]``; NaN estimates are ignored. Indexed by
    event id (events without any finite estimate are absent)."""
    picks = pd.DataFrame({"event_id": np.asarray(event_id), "station_id": np.asarray(station_id, dtype=str),
                          "m": np.asarray(pick_magnitude, dtype="float64")}).dropna(subset=["m"])
    per_station = picks.groupby(["event_id", "station_id"], sort=False)["m"].mean().reset_index()
    grouped = per_station.groupby("event_id", sort=False)["m"]
    median = grouped.median()
    deviation = (per_station["m"] - per_station["event_id"].map(median)).abs()
    mad = deviation.groupby(per_station["event_id"], sort=False).median()
    n = grouped.size()
    uncertainty = (1.4826 * mad / np.sqrt(n)).where(n > 1)
    return pd.DataFrame({"magnitude": median, "magnitude_uncertainty": uncertainty, "n_magnitude_stations": n})


def fit_station_terms(event_id, station_id, phase, pick_magnitude, reference_magnitude: pd.Series,
                      min_picks: int = 5) -> tuple[dict, dict]:
    """Station terms ``{station: {"P": t, "S": t}}`` (magnitude units) and a summary.

    ``pick_magnitude [n]``: estimates without terms; ``reference_magnitude``: the reference
    catalog's magnitude of each matched event, indexed by event id (events absent from it are
    not used). A station and phase with fewer than ``min_picks`` matched picks gets the median
    term of all picks of that phase."""
    picks = pd.DataFrame({"event_id": np.asarray(event_id), "station_id": np.asarray(station_id, dtype=str),
                          "phase": np.asarray(phase, dtype=str), "m": np.asarray(pick_magnitude, dtype="float64")})
    picks["ref"] = picks["event_id"].map(reference_magnitude)
    picks = picks.dropna(subset=["m", "ref"])
    picks["delta"] = picks["m"] - picks["ref"]
    if picks.empty:
        return {}, {"n_picks": 0, "n_events": 0}
    overall = picks.groupby("phase")["delta"].median()
    stats = picks.groupby(["station_id", "phase"])["delta"].agg(["median", "size"])
    terms: dict = {}
    for (sta, ph), row in stats.iterrows():
        value = row["median"] if row["size"] >= min_picks else overall[ph]
        terms.setdefault(sta, {})[ph] = round(float(value), 4)
    residual = picks["delta"] - MagnitudeScale(terms=terms).term(picks["station_id"], picks["phase"])
    summary = {"n_picks": int(len(picks)), "n_events": int(picks["event_id"].nunique()),
               "median_offset_before": float(picks["delta"].median()),
               "pick_scatter_before": float(1.4826 * (picks["delta"] - picks["delta"].median()).abs().median()),
               "pick_scatter_after": float(1.4826 * (residual - residual.median()).abs().median())}
    return terms, summary
