"""Gaussian-process Bayesian optimisation of the generator (report section 3.2, appendix A.2).

Procedure (:func:`calibrate`):

0. Fits that need no search: ``pdist(M)`` from the distances of the stations that picked real
   events (:func:`fit_pdist`); the event rate, magnitude range, b-value and depth range from the
   catalog; the false-pick background from the picks left unlabelled (:func:`fit_background`).
1. Round 1: ``gp_minimize`` (GP surrogate, Expected Improvement) over the primary spatial
   parameters, its surrogate started from the best of ``screen`` Latin-hypercube evaluations (an
   evaluation costs milliseconds, a GP step much more, so a broad cheap screen makes the few GP
   calls count) (:data:`PRIMARY`: detection radius and its magnitude
   slope, miss rate, exponent, noise) within :data:`SPATIAL_BOUNDS`.
2. Round 2: the primary bounds zoomed to ±``zoom`` of each range around the round-1 optimum,
   plus the secondary parameters (ellipse perturbations, P/S noise correlation) over their full
   bounds. Splitting keeps each search low-dimensional enough for a GP with few calls.
3. Round 3: the timing-noise parameters (:data:`TIMING_BOUNDS`) fitted to the distribution of
   real travel-time residuals (Wasserstein distance, P and S).

Every evaluation is appended to a JSON checkpoint (written atomically); a rerun with the same
checkpoint resumes where it stopped, re-using the evaluations already made.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import qmc, wasserstein_distance

from catalogs.fileio import read_json_object, write_text_atomic
from catalogs.gutenberg_richter import b_value, mc_goodness_of_fit
from catalogs.picks import station_index
from catalogs.schema import InputError
from calibration.objective import Objective
from calibration.reference import ReferenceEvents
from generator.detection import radial_function
from generator.network import Network
from generator.params import GeneratorParams
from generator.timing import arrival_errors
from generator.traveltimes import TravelTimes

logger = logging.getLogger(__name__)

SPATIAL_BOUNDS = {
    "pdist_per_magnitude": (0.05, 0.8),
    "p_exp": (1.0, 4.0),
    "miss_pick_rate": (0.0, 0.6),
    "sigma_noise": (5.0, 200.0),
    "lambda_noise": (0.0, 2.0),
    "radial_factor_p": (0.2, 3.0),
    "radial_factor_s": (0.1, 3.0),
    "radial_perturb_factor": (0.0, 0.5),
    "angle_perturb": (0.0, 1.0),
    "axis_perturb_factor": (0.0, 0.6),
    "ps_noise_correlation": (0.0, 1.0),
}
SCREEN_KEEP = 30
PRIMARY = ("pdist_per_magnitude", "p_exp", "miss_pick_rate", "sigma_noise", "lambda_noise", "radial_factor_p",
           "radial_factor_s")
TIMING_BOUNDS = {
    "timing_floor_s": (0.01, 0.6),
    "timing_fraction": (0.0, 0.06),
    "s_timing_factor": (1.0, 3.0),
    "event_bias_s": (0.0, 0.5),
    "timing_corr_s": (0.0, 0.6),
}


@dataclass
class CalibrationSettings:
    """Search settings; bounds and fixed values override the defaults above."""

    n_calls: int = 150
    timing_calls: int = 25
    round1_fraction: float = 0.6
    screen: int = 128
    zoom: float = 0.25
    acq_func: str = "EI"
    seed: int = 0
    spatial_bounds: dict = field(default_factory=lambda: dict(SPATIAL_BOUNDS))
    timing_bounds: dict = field(default_factory=lambda: dict(TIMING_BOUNDS))
    fixed: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, path: str | os.PathLike, **overrides) -> "CalibrationSettings":
        """Read ``{"spatial_bounds": {name: [lo, hi]}, "timing_bounds": ..., "fixed": {name: value},
        "n_calls": ...}``; bounds given replace the defaults for those parameters."""
        values = read_json_object(path, "JSON object of calibration settings")
        settings = cls(**overrides)
        known = set(asdict(settings))
        unknown = set(values) - known
        if unknown:
            raise InputError(f"{path}: unknown calibration setting(s) {sorted(unknown)}")
        for key, value in values.items():
            if key.endswith("_bounds"):
                target = getattr(settings, key)
                for name, bounds in value.items():
                    if not hasattr(GeneratorParams(), name) or len(bounds) != 2 or bounds[0] >= bounds[1]:
                        raise InputError(f"{path}: invalid bounds {bounds!r} for {name!r}")
                    target[name] = (float(bounds[0]), float(bounds[1]))
            elif key == "fixed":
                GeneratorParams().replace(**value)
                settings.fixed.update(value)
            else:
                setattr(settings, key, type(getattr(settings, key))(value))
        return settings


class Checkpoint:
    """Evaluations ``{round: [[x..., y], ...]}`` persisted as JSON after each call."""

    def __init__(self, path: Path | None, key: dict):
        self.path, self.key, self.rounds = path, key, {}
        if path is not None and path.is_file():
            data = json.loads(path.read_text())
            if data.get("key") == key:
                self.rounds = data["rounds"]
                logger.info("resuming from %s (%d evaluations)", path, sum(len(v) for v in self.rounds.values()))
            else:
                logger.warning("%s was made with other inputs or settings; starting afresh", path)

    def done(self, name: str) -> tuple[list, list]:
        rows = self.rounds.get(name, [])
        return [r[:-1] for r in rows], [r[-1] for r in rows]

    def add(self, name: str, x, y) -> None:
        self.rounds.setdefault(name, []).append([float(v) for v in x] + [float(y)])
        if self.path is not None:
            write_text_atomic(self.path, json.dumps({"key": self.key, "rounds": self.rounds}))


def _search(name, function, bounds: dict, base: GeneratorParams, n_calls: int, settings: CalibrationSettings,
            checkpoint: Checkpoint, x0: list | None = None, progress: bool = True, screen: int = 0):
    """One gp_minimize round over ``bounds`` after ``screen`` Latin-hypercube evaluations (which
    do not count in ``n_calls``); returns ``(best params, best value, history)``."""
    from skopt import gp_minimize
    from skopt.space import Real
    from tqdm import tqdm

    names = list(bounds)
    space = [Real(lo, hi, name=n) for n, (lo, hi) in bounds.items()]

    def to_params(x):
        return base.replace(**dict(zip(names, map(float, x))))

    screened_x, screened_y = checkpoint.done(f"{name}_screen")
    if screen and len(screened_x) < screen:
        unit = qmc.LatinHypercube(d=len(names), seed=settings.seed).random(screen)
        lows, highs = np.array(list(bounds.values())).T
        for x in (lows + unit * (highs - lows))[len(screened_x):]:
            checkpoint.add(f"{name}_screen", x, function(to_params(x)))
        screened_x, screened_y = checkpoint.done(f"{name}_screen")
    xs, ys = checkpoint.done(name)
    if x0 is not None and not xs:
        clipped = [float(np.clip(v, lo, hi)) for v, (lo, hi) in zip(x0, bounds.values())]
        xs, ys = [clipped], [function(to_params(clipped))]
        checkpoint.add(name, clipped, ys[0])
    remaining = n_calls - len(xs)
    bar = tqdm(total=n_calls, initial=len(xs), desc=f"calibration {name}", unit="call", disable=not progress)
    best = [min(ys) if ys else np.inf]

    def objective(x):
        value = function(to_params(x))
        checkpoint.add(name, x, value)
        best[0] = min(best[0], value)
        bar.update(1)
        bar.set_postfix(best=f"{best[0]:.4f}")
        return value

    if remaining > 0:
        n_initial = 0 if screened_x else max(0, min(10 + len(names), n_calls // 2) - len(xs))
        # The GP starts from the best screened points only: fitting it to every screened point
        # would make each step slow without telling it much about the promising region.
        top = np.argsort(screened_y)[:SCREEN_KEEP]
        prior_x, prior_y = [screened_x[i] for i in top] + xs, [screened_y[i] for i in top] + ys
        gp_minimize(objective, space, n_calls=remaining, n_initial_points=n_initial,
                    initial_point_generator="lhs", acq_func=settings.acq_func,
                    x0=prior_x or None, y0=prior_y or None, random_state=settings.seed, noise=1e-10)
    bar.close()
    xs, ys = checkpoint.done(name)
    all_x, all_y = screened_x + xs, screened_y + ys
    k = int(np.argmin(all_y))
    return to_params(all_x[k]), float(all_y[k]), {"names": names, "x": xs, "y": ys, "screen_y": screened_y}


def fit_pdist(reference: ReferenceEvents, network: Network, station_detection: dict | None = None,
              bin_width: float = 0.5, p_exp: float = 2.0, miss_pick_rate: float = 0.07) -> dict:
    """Fit ``log10 pdist = a + b M`` from the fraction of stations that picked P per magnitude bin.

    For each bin (at least 5 events) the radius ``sigma`` is solved so that the radial model
    reproduces the observed pick fraction given the actual event-station distances and station
    factors, ``mean((1 - miss) factor_j f(d_ij / sigma)) = fraction``; then ``pdist = 3 sigma``.
    Saturated bins (fraction within 5 % of the ceiling) carry no information and are skipped;
    with fewer than two usable bins the result has ``ok = False``.
    """
    d = np.sqrt(((reference.sources[:, None, :2] - network.xyz[None, :, :2]) ** 2).sum(-1))
    factors = np.array([(station_detection or {}).get(s, (1.0, 1.0))[0] for s in network.ids])
    ceiling = (1.0 - miss_pick_rate) * factors
    m = reference.magnitudes
    edges = np.arange(np.floor(m.min() / bin_width) * bin_width, m.max() + bin_width, bin_width)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (m >= lo) & (m < hi)
        if inside.sum() < 5:
            continue
        fraction = reference.selected_p[inside].mean()
        if fraction >= 0.95 * ceiling.mean() or fraction <= 0.0:
            continue

        def excess(sigma, dist=d[inside]):
            return float((ceiling * radial_function(dist, sigma, p_exp)).mean() - fraction)

        sigma = brentq(excess, 1e-3, 1e4)
        rows.append((float(np.median(m[inside])), 3.0 * sigma, int(inside.sum()), float(fraction)))
    table = pd.DataFrame(rows, columns=["magnitude", "pdist_km", "n", "fraction_p"])
    if len(table) < 2:
        return {"ok": False, "table": table.to_dict("records")}
    b, a = np.polyfit(table["magnitude"], np.log10(table["pdist_km"]), 1, w=np.sqrt(table["n"]))
    return {"ok": True, "pdist_log10_km_at_m0": float(a), "pdist_per_magnitude": float(max(b, 0.05)),
            "table": table.to_dict("records")}


def fit_station_detection(reference: ReferenceEvents, network: Network, min_events: int = 10) -> dict:
    """Per-station [P, S] detection factors: each station's pick fraction for the larger events
    (top 40 % in magnitude) within the distance at which most such picks are made, relative to
    the best stations' (90th percentile), clipped to [0.02, 1]. Stations with fewer than
    ``min_events`` such events get 1."""
    m = reference.magnitudes
    big = m >= np.quantile(m, 0.6)
    d = np.sqrt(((reference.sources[big][:, None, :2] - network.xyz[None, :, :2]) ** 2).sum(-1))
    factors = {}
    fractions = np.full((len(network), 2), np.nan)
    for k, selected in enumerate((reference.selected_p[big], reference.selected_s[big])):
        if not selected.any():
            continue
        near = d <= np.quantile(d[selected], 0.75)
        counts = near.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            fractions[:, k] = np.where(counts >= min_events, (selected & near).sum(0) / counts, np.nan)
    best = np.nanquantile(fractions, 0.9, axis=0)
    for i, sid in enumerate(network.ids):
        pair = [float(np.clip(fractions[i, k] / best[k], 0.02, 1.0)) if np.isfinite(fractions[i, k]) else 1.0
                for k in range(2)]
        if pair != [1.0, 1.0]:
            factors[str(sid)] = pair
    return factors


def fit_background(picks: pd.DataFrame, reference: ReferenceEvents, network: Network) -> dict:
    """False-pick background from the picks left unlabelled: mean rate per station and hour, its
    log-normal spread across stations, the day-night modulation and the P fraction."""
    labelled = np.zeros(len(picks), bool)
    labelled[reference.assignments["pick_index"].to_numpy(dtype=int)] = True
    sta = station_index(picks, network.stations, source="background fit")
    free = (~labelled) & (sta >= 0)
    hours = max((picks["time"].max() - picks["time"].min()).total_seconds() / 3600.0, 1.0)
    per_station = np.bincount(sta[free], minlength=len(network)) / hours
    active = per_station > 0
    hour_of_day = picks["time"][free].dt.hour.to_numpy()
    hourly = np.bincount(hour_of_day, minlength=24).astype(float)
    first = np.abs(np.fft.rfft(hourly)[1]) * 2 / 24
    return {
        "background_rate_per_hour": float(per_station[active].mean()) if active.any() else 0.0,
        "background_rate_spread": float(np.log(per_station[active]).std()) if active.sum() > 1 else 0.0,
        "background_diurnal_amplitude": float(min(first / max(hourly.mean(), 1e-9), 0.95)),
        "false_p_fraction": float((picks["phase"].to_numpy()[free] == "P").mean()) if free.any() else 0.5,
        "per_station_rate_per_hour": dict(zip(network.ids.tolist(), per_station.round(3).tolist())),
        "hours": hours,
        "unlabelled_picks": int(free.sum()),
    }


def fit_catalog(events: pd.DataFrame) -> dict:
    """Event rate, magnitude range, b-value (above the goodness-of-fit Mc) and depth range."""
    days = max((events["time"].max() - events["time"].min()).total_seconds() / 86400.0, 1.0 / 24)
    mags = events["magnitude"].to_numpy(dtype="float64")
    mags = mags[np.isfinite(mags)]
    out = {"event_rate_per_day": len(events) / days}
    if len(mags) >= 50:
        mc = mc_goodness_of_fit(mags).mc
        fit = b_value(mags, mc)
        if np.isfinite(fit.b):
            out["b_value"] = fit.b
        out["magnitude_min"] = float(mags.min())
        out["magnitude_max"] = float(max(mags.max(), mags.min() + 1.0))
    depth = events["depth_km"].to_numpy(dtype="float64")
    out["depth_min_km"] = float(max(np.quantile(depth, 0.02), 0.0))
    out["depth_max_km"] = float(max(np.quantile(depth, 0.98), out["depth_min_km"] + 1.0))
    return out


def residual_objective(reference: ReferenceEvents, network: Network, travel_times: TravelTimes, seed: int = 0):
    """``f(params)``: Wasserstein-1 distance (s) between real and synthetic residual
    distributions, summed over P and S; synthetic errors are drawn at the real picks' events and
    stations (common random numbers)."""
    tt = travel_times(reference.sources, network.xyz)
    real = [reference.residuals[..., k][np.isfinite(reference.residuals[..., k])] for k in range(2)]
    masks = [np.isfinite(reference.residuals[..., k]) for k in range(2)]

    def f(params: GeneratorParams) -> float:
        err = arrival_errors(tt, network, params, np.random.default_rng(seed))
        return float(sum(wasserstein_distance(real[k], err[..., k][masks[k]]) for k in range(2) if len(real[k])))

    return f


def calibrate(network: Network, reference: ReferenceEvents, travel_times: TravelTimes,
              picks: pd.DataFrame | None = None, start: GeneratorParams | None = None,
              settings: CalibrationSettings | None = None, objective: Objective | None = None,
              checkpoint_path: str | os.PathLike | None = None, progress: bool = True) -> tuple[GeneratorParams, dict]:
    """Run the procedure of the module doc; returns the calibrated parameters and a report dict."""
    settings = settings or CalibrationSettings()
    start = (start or GeneratorParams()).replace(**settings.fixed)
    objective = objective or Objective.from_reference(network, reference, seed=settings.seed)
    report: dict = {"settings": asdict(settings), "n_reference_events": len(reference),
                    "n_objective_events": len(objective.reference), "magnitude_bins": objective.edges.tolist()}

    fits = {"station_detection": fit_station_detection(reference, network), "catalog": fit_catalog(reference.events)}
    fits["pdist"] = fit_pdist(reference, network, fits["station_detection"])
    # The statics measured while labelling go into the generator: synthetic arrivals then carry
    # the same station delays as the real ones, and a model trained on them predicts with them.
    statics = {sid: [round(c["P"], 4), round(c["S"], 4)]
               for sid, c in reference.summary.get("station_corrections_s", {}).items() if c["P"] or c["S"]}
    fits["station_statics"] = statics
    base = start.replace(station_detection=fits["station_detection"], station_statics=statics)
    if fits["pdist"]["ok"]:
        base = base.replace(pdist_log10_km_at_m0=fits["pdist"]["pdist_log10_km_at_m0"],
                            pdist_per_magnitude=fits["pdist"]["pdist_per_magnitude"])
    else:
        logger.warning("pdist(M) could not be fitted (too few unsaturated magnitude bins); using a=%.2f, b=%.2f",
                       base.pdist_log10_km_at_m0, base.pdist_per_magnitude)
    base = base.replace(**fits["catalog"])
    if picks is not None:
        fits["background"] = fit_background(picks, reference, network)
        base = base.replace(**{k: v for k, v in fits["background"].items() if hasattr(base, k)})
    base = base.replace(**settings.fixed)
    report["fits"] = fits

    before, table_before = objective.evaluate(start)
    report["objective_default"] = before
    key = {"n_reference": len(reference), "seed": settings.seed, "n_calls": settings.n_calls,
           "timing_calls": settings.timing_calls, "bounds": {k: list(v) for k, v in settings.spatial_bounds.items()},
           "fixed": settings.fixed, "base": json.loads(base.to_json())}
    checkpoint = Checkpoint(Path(checkpoint_path) if checkpoint_path else None, key)

    spatial = {k: v for k, v in settings.spatial_bounds.items() if k not in settings.fixed}
    primary = {k: v for k, v in spatial.items() if k in PRIMARY} or spatial
    n1 = max(int(round(settings.n_calls * settings.round1_fraction)), min(settings.n_calls, 5))
    x_start = [getattr(base, k) for k in primary]
    best1, f1, hist1 = _search("round1", objective, primary, base, n1, settings, checkpoint, x_start, progress,
                               screen=settings.screen)
    zoomed = {}
    for k, (lo, hi) in spatial.items():
        if k not in primary:
            zoomed[k] = (lo, hi)
            continue
        half = settings.zoom * (hi - lo)
        centre = getattr(best1, k)
        zoomed[k] = (max(lo, centre - half), min(hi, centre + half))
    n2 = settings.n_calls - n1
    if n2 > 0:
        best2, f2, hist2 = _search("round2", objective, zoomed, best1, n2 + 1, settings, checkpoint,
                                   [getattr(best1, k) for k in zoomed], progress)
    else:
        best2, f2, hist2 = best1, f1, {"names": [], "x": [], "y": []}
    best = best2 if f2 <= f1 else best1
    rounds = {"round1": {"bounds": primary, "best": f1, **hist1}, "round2": {"bounds": zoomed, "best": f2, **hist2}}

    if settings.timing_calls > 0 and np.isfinite(reference.residuals).any():
        timing = {k: v for k, v in settings.timing_bounds.items() if k not in settings.fixed}
        f_timing = residual_objective(reference, network, travel_times, settings.seed)
        before_timing = f_timing(best)
        best3, f3, hist3 = _search("round3", f_timing, timing, best, settings.timing_calls, settings, checkpoint,
                                   [getattr(best, k) for k in timing], progress)
        rounds["round3"] = {"bounds": timing, "best": f3, "before": before_timing, **hist3}
        best = best3
    after, table_after = objective.evaluate(best)
    report.update(rounds=rounds, objective_calibrated=after,
                  per_bin_default=table_before.to_dict("records"), per_bin_calibrated=table_after.to_dict("records"))
    logger.info("objective %.4f at the starting parameters -> %.4f calibrated", before, after)
    return best, report
