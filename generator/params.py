"""``GeneratorParams``: every parameter of the synthetic pick generator, with units and defaults.

Detection parameters carry the names of the calibration report's Fig. 3.11 (``p_exp``,
``miss_pick_rate``, ``sigma_noise``, ``lambda_noise``, ``radial_factor_p``, ``radial_factor_s``,
``radial_perturb_factor``, ``angle_perturb``, ``axis_perturb_factor``); ``sigma_noise`` is in km
here (the report used metres). Saved and loaded as JSON; calibration writes this file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from catalogs.fileio import read_json_object, write_text_atomic
from catalogs.schema import InputError

logger = logging.getLogger(__name__)


def _p(default, unit: str, doc: str):
    return field(default=default, metadata={"unit": unit, "doc": doc})


@dataclass
class GeneratorParams:
    """Parameters of :func:`generator.synthesize.generate` (units in each field's metadata)."""

    # --- events -------------------------------------------------------------------------------
    event_rate_per_day: float = _p(200.0, "1/day", "mean rate of background (Poisson) events")
    rate_variability: float = _p(0.5, "1", "std of the log event rate's smooth variation in time")
    rate_timescale_hours: float = _p(6.0, "h", "shortest period of the rate variation")
    burst_rate_per_day: float = _p(1.0, "1/day", "rate of clustered bursts (mainshock + aftershocks)")
    burst_size: float = _p(20.0, "1", "mean number of aftershocks per burst (Poisson)")
    omori_c_s: float = _p(60.0, "s", "Omori-Utsu c")
    omori_p: float = _p(1.1, "1", "Omori-Utsu p")
    burst_duration_hours: float = _p(12.0, "h", "aftershocks are drawn within this time of the mainshock")
    burst_radius_km: float = _p(2.0, "km", "std of aftershock epicentres around the mainshock")
    region_padding_km: float = _p(20.0, "km", "padding of the station bounding box where events are drawn")
    depth_min_km: float = _p(0.0, "km", "shallowest event depth")
    depth_max_km: float = _p(20.0, "km", "deepest event depth")
    reference_fraction: float = _p(0.8, "1", "fraction of background events placed near reference-catalog epicentres (when one is given)")
    reference_jitter_km: float = _p(2.0, "km", "std of the placement around a reference epicentre")
    b_value: float = _p(1.0, "1", "Gutenberg-Richter b")
    magnitude_min: float = _p(0.5, "1", "smallest magnitude")
    magnitude_max: float = _p(5.0, "1", "largest magnitude")

    # --- detection (report Fig. 3.11) ------------------------------------------------------------
    pdist_log10_km_at_m0: float = _p(1.4, "log10 km", "pdist(M) = 10**(a + b M): a (detection becomes rare at pdist)")
    pdist_per_magnitude: float = _p(0.35, "log10 km / magnitude", "pdist(M): b")
    pdist_max_km: float = _p(500.0, "km", "pdist is capped here")
    p_exp: float = _p(2.0, "1", "radial function exponent p")
    miss_pick_rate: float = _p(0.07, "1", "selection probability is scaled by 1 - miss_pick_rate")
    radial_factor_p: float = _p(1.0, "1", "P detection radius factor: sigma_r = factor * pdist(M) / 3")
    radial_factor_s: float = _p(0.75, "1", "S detection radius factor")
    radial_perturb_factor: float = _p(0.03, "1", "per-event log-normal std of the detection radius")
    angle_perturb: float = _p(0.17, "pi rad", "per-event std of the ellipse orientation about ellipse_azimuth_deg")
    axis_perturb_factor: float = _p(0.06, "1", "per-event log-normal std of each ellipse semi-axis")
    ellipse_azimuth_deg: float = _p(0.0, "deg from east, counter-clockwise", "preferred orientation of the major axis")
    ps_ellipse_correlation: float = _p(0.8, "1", "correlation of the S ellipse perturbations with the P ones")
    ellipsoid_3d: bool = _p(False, "-", "use a 3-D ellipsoid including source-station depth difference")
    depth_axis_factor: float = _p(1.0, "1", "vertical semi-axis relative to the horizontal scale (3-D mode)")
    sigma_noise: float = _p(30.0, "km", "correlation length of the station noise field C_ij = exp(-d^2/sigma^2)")
    lambda_noise: float = _p(0.2, "1", "weight of the correlated noise")
    ps_noise_correlation: float = _p(0.8, "1", "correlation of the P and S noise fields")
    ps_selection_correlation: float = _p(0.0, "1", "correlation of the Gaussian latents (copula) whose draws decide "
                                                   "P and S selection at a station: 0 independent, > 0 makes an S "
                                                   "pick likelier where P was picked")
    noise_mode: str = _p("distance", "-", "'distance': r' = max(0, r + lambda eps) (report 2nd iteration); "
                         "'logistic': probability perturbation (1st iteration)")
    sigma_logistic: float = _p(1.0, "1", "logistic harshness (noise_mode='logistic')")
    station_detection: dict = field(default_factory=dict, metadata={
        "unit": "1", "doc": "per-station [P, S] factors on the selection probability (site noise, outages), "
                            "keyed by station id; stations not listed use 1"})

    # --- timing ---------------------------------------------------------------------------------
    station_statics: dict = field(default_factory=dict, metadata={
        "unit": "s", "doc": "per-station [P, S] static corrections added to the predicted arrivals (slow "
                           "sediments, model error), keyed by station id; stations not listed use 0"})
    timing_distribution: str = _p("normal", "-", "shape of the independent timing error: 'normal' or 'laplace' "
                                  "(heavy tails, as GENIE trains with; same std)")
    timing_floor_s: float = _p(0.05, "s", "minimum std of independent P timing error")
    timing_fraction: float = _p(0.01, "1", "independent timing std as a fraction of travel time")
    s_timing_factor: float = _p(1.5, "1", "S timing errors are this much larger than P")
    event_bias_s: float = _p(0.05, "s", "std of a per-event common timing bias (origin-time error)")
    timing_corr_s: float = _p(0.1, "s", "std of the spatially correlated timing residual")
    timing_corr_length_km: float = _p(20.0, "km", "correlation length of the timing residual field")

    # --- false picks ----------------------------------------------------------------------------
    background_rate_per_hour: float = _p(10.0, "1/h", "mean false-pick rate per station (arithmetic mean over stations)")
    background_rate_spread: float = _p(0.5, "1", "log-normal std of the rate across stations not in station_background")
    station_background: dict = field(default_factory=dict, metadata={
        "unit": "1/h", "doc": "mean false-pick rate per station, keyed by station id (fitted from the real picks); "
                              "stations not listed draw theirs from the log-normal above"})
    background_rate_variability: float = _p(0.0, "1", "std of the log false-pick rate's smooth variation in time "
                                                     "(network-wide: wind, traffic, swarm codas)")
    background_timescale_hours: float = _p(2.0, "h", "shortest period of that variation")
    background_diurnal_amplitude: float = _p(0.3, "1", "relative day-night modulation of the false-pick rate")
    background_diurnal_peak_hour: float = _p(12.0, "h UTC", "hour of the day at which the false-pick rate peaks "
                                                            "(one phase for the whole network)")
    duplicate_rate: float = _p(0.0, "1", "fraction of picks that the picker also reports with the other phase label "
                                         "within duplicate_spread_s (PhaseNet's P/S double picks)")
    duplicate_spread_s: float = _p(0.1, "s", "largest time difference of such a double pick")
    edge_pick_rate_per_hour: float = _p(0.0, "1/h", "probability per station and hour of a spurious pick just after "
                                                    "the hour (PhaseNet's hourly file edges)")
    edge_offset_s: float = _p(0.01, "s", "time of the edge pick after the full hour")
    edge_p_fraction: float = _p(1.0, "1", "fraction of edge picks labelled P")
    false_p_fraction: float = _p(0.5, "1", "fraction of background false picks labelled P")
    coda_pick_rate: float = _p(0.1, "1", "probability that a true arrival spawns a coda pick")
    coda_delay_s: float = _p(2.0, "s", "mean delay of a coda pick after its arrival")
    spike_rate_per_day: float = _p(1.0, "1/day", "rate of network-wide spikes of false picks")
    spike_station_fraction: float = _p(0.5, "1", "fraction of stations picking in a spike")
    spike_spread_s: float = _p(0.5, "s", "std of pick times within a spike")
    phase_flip_rate: float = _p(0.02, "1", "fraction of true picks with the wrong phase label")
    incoherent_fraction: float = _p(0.0, "1", "arrivals of this many extra events per event, each station's shifted "
                                              "by its own offset: per-station P-S pairs without network moveout")
    incoherent_shift_s: float = _p(120.0, "s", "the station offsets of incoherent arrivals are uniform within +-this")

    # --- scores and amplitudes ------------------------------------------------------------------
    score_min: float = _p(0.3, "1", "picker threshold: scores lie in [score_min, 1]")
    true_score_beta: tuple = _p((4.0, 2.0), "1", "Beta(a, b) of true-pick scores above score_min")
    false_score_beta: tuple = _p((1.5, 4.0), "1", "Beta(a, b) of false-pick scores above score_min")
    amp_c0: float = _p(-0.92, "log10 m/s", "log10 A = c0 + c1 (M - 3.5) + c3 log10 R (GaMMA's law, m/s)")
    amp_c1: float = _p(0.93, "1", "magnitude coefficient")
    amp_c3: float = _p(-1.68, "1", "geometric spreading coefficient (R hypocentral km)")
    amp_s_factor: float = _p(1.5, "1", "S amplitude relative to P")
    amp_station_sigma: float = _p(0.2, "log10", "std of the per-station amplitude term")
    amp_noise_sigma: float = _p(0.2, "log10", "std of per-pick amplitude scatter")
    noise_amplitude: float = _p(2e-6, "m/s", "median amplitude of false picks")

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """JSON text of the parameters (written atomically to ``path`` when given)."""
        text = json.dumps(dataclasses.asdict(self), indent=2) + "\n"
        if path is not None:
            write_text_atomic(path, text)
        return text

    @classmethod
    def from_dict(cls, values: dict, source: str = "parameters") -> "GeneratorParams":
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise InputError(f"{source}: unknown generator parameter(s) {unknown}")
        missing = sorted(set(names) - set(values))
        if missing:
            logger.info("%s: %d parameter(s) not given, using defaults: %s", source, len(missing), ", ".join(missing))
        clean = {}
        for name, value in values.items():
            default = names[name].default
            try:
                if name in ("station_detection", "station_statics"):
                    clean[name] = {str(k): [float(v[0]), float(v[1])] for k, v in dict(value).items()}
                elif name == "station_background":
                    clean[name] = {str(k): float(v) for k, v in dict(value).items()}
                elif isinstance(default, bool):
                    clean[name] = bool(value)
                elif isinstance(default, tuple):
                    clean[name] = tuple(float(v) for v in value)
                elif isinstance(default, str):
                    clean[name] = str(value)
                else:
                    clean[name] = float(value)
            except (TypeError, ValueError):
                raise InputError(f"{source}: parameter {name!r} has invalid value {value!r}") from None
        params = cls(**clean)
        params.validate(source)
        return params

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "GeneratorParams":
        return cls.from_dict(read_json_object(path, "JSON object of parameters"), str(path))

    def replace(self, **changes) -> "GeneratorParams":
        return dataclasses.replace(self, **changes)

    def statics_for(self, station_ids) -> np.ndarray:
        """Station statics ``[M, 2]`` (s, P and S) of ``station_ids`` (0 where not listed)."""
        return np.array([self.station_statics.get(str(s), (0.0, 0.0)) for s in station_ids], dtype="float64").reshape(-1, 2)

    def validate(self, source: str = "parameters") -> None:
        """Raise :class:`InputError` for values outside their meaningful range."""
        checks = [
            ("p_exp", self.p_exp >= 0.5),
            ("miss_pick_rate", 0.0 <= self.miss_pick_rate < 1.0),
            ("sigma_noise", self.sigma_noise > 0),
            ("lambda_noise", self.lambda_noise >= 0),
            ("radial_factor_p", self.radial_factor_p > 0),
            ("radial_factor_s", self.radial_factor_s > 0),
            ("magnitude_max", self.magnitude_max > self.magnitude_min),
            ("depth_max_km", self.depth_max_km >= self.depth_min_km),
            ("noise_mode", self.noise_mode in ("distance", "logistic")),
            ("ps_noise_correlation", -1.0 <= self.ps_noise_correlation <= 1.0),
            ("ps_selection_correlation", -1.0 < self.ps_selection_correlation < 1.0),
            ("timing_distribution", self.timing_distribution in ("normal", "laplace")),
            ("station_background", all(v >= 0 for v in self.station_background.values())),
            ("background_rate_variability", self.background_rate_variability >= 0),
            ("duplicate_rate", 0.0 <= self.duplicate_rate <= 1.0),
            ("edge_pick_rate_per_hour", 0.0 <= self.edge_pick_rate_per_hour <= 1.0),
            ("ps_ellipse_correlation", -1.0 <= self.ps_ellipse_correlation <= 1.0),
            ("score_min", 0.0 <= self.score_min < 1.0),
            ("omori_p", self.omori_p > 0),
            ("station_detection", all(0.0 <= f <= 1.0 for v in self.station_detection.values() for f in v)),
            ("station_statics", all(abs(f) <= 30.0 for v in self.station_statics.values() for f in v)),
        ]
        bad = [name for name, ok in checks if not ok]
        if bad:
            raise InputError(f"{source}: invalid value of {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}")

    @staticmethod
    def describe() -> list[dict]:
        """One dict per parameter: name, default, unit, doc (for the README and ``--help``)."""
        return [
            {"name": f.name, "default": f.default if f.default is not dataclasses.MISSING else f.default_factory(),
             "unit": f.metadata["unit"], "doc": f.metadata["doc"]}
            for f in dataclasses.fields(GeneratorParams)
        ]
