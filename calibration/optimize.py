"""Gaussian-process Bayesian optimisation of the generator (report section 3.2, appendix A.2).

Procedure (:func:`calibrate`):

0. Fits that need no search: ``pdist(M)`` from the distances of the stations that picked real
   events, on unsaturated magnitude bins only (:func:`fit_pdist`); the event rate, magnitude
   range, b-value and depth range from the catalog; station statics from the labelling; the
   false-pick background from the picks left unlabelled, without the coherent ones (arrivals of
   uncatalogued events; :func:`calibration.background.fit_background`).
1. Round 1: ``gp_minimize`` (GP surrogate, Expected Improvement) over the primary spatial
   parameters (:data:`PRIMARY`: detection radius and its magnitude slope, miss rate, exponent,
   noise, P/S selection correlation) within :data:`SPATIAL_BOUNDS`, its surrogate started from
   the best of ``screen`` Latin-hypercube evaluations (an evaluation costs milliseconds, a GP
   step much more, so a broad cheap screen makes the few GP calls count). Multiplicative
   parameters (:data:`LOG_SCALE`) are searched on a log scale.
2. Round 2: the primary bounds zoomed to ±``zoom`` of each range (of its log for
   multiplicative ones) around the round-1 optimum, plus the secondary parameters (ellipse
   perturbations, P/S noise correlation) over their full bounds. Splitting keeps each search
   low-dimensional enough for a GP with few calls.
   Then :mod:`calibration.uncertainty`: bootstrap intervals over real events, a profile of
   ``f`` along every parameter, and the parameters the data cannot identify set back to their
   starting values (reported).
   Then the pick budget (:mod:`calibration.budget`): the event rate scaled so the synthetic
   network makes as many picks per hour as the real one.
3. Round 3: the timing-noise parameters (:data:`TIMING_BOUNDS`) fitted to the real travel-time
   residuals (:func:`residual_objective`: P, S and per-event mean P, Wasserstein distances, with
   the labelling window applied to the synthetic errors), once with normal and once with Laplace
   errors; the closer shape is kept.

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
from catalogs.schema import InputError
from calibration.background import fit_background
from calibration.budget import fit_pick_budget
from calibration.metrics import co_selection
from calibration.objective import Objective
from calibration.reference import ReferenceEvents
from calibration.uncertainty import bootstrap_intervals, fix_unidentified, profiles, unidentified
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
    "ps_selection_correlation": (0.0, 0.95),
}
# Multiplicative parameters: searched on a log scale, where equal steps are equal ratios.
LOG_SCALE = {"sigma_noise", "radial_factor_p", "radial_factor_s", "timing_floor_s"}
SCREEN_KEEP = 30
PRIMARY = ("pdist_per_magnitude", "p_exp", "miss_pick_rate", "sigma_noise", "lambda_noise", "radial_factor_p",
           "radial_factor_s", "ps_selection_correlation")
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
    pick_budget: bool = True
    bootstrap: int = 100
    bootstrap_candidates: int = 40
    profile_points: int = 9
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


def _from_unit(u: np.ndarray, name: str, bounds: tuple) -> np.ndarray:
    """Map ``u`` in [0, 1] onto ``bounds``, geometrically for :data:`LOG_SCALE` parameters."""
    lo, hi = bounds
    if name in LOG_SCALE and lo > 0:
        return np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
    return lo + u * (hi - lo)


def _search(name, function, bounds: dict, base: GeneratorParams, n_calls: int, settings: CalibrationSettings,
            checkpoint: Checkpoint, x0: list | None = None, progress: bool = True, screen: int = 0):
    """One gp_minimize round over ``bounds`` after ``screen`` Latin-hypercube evaluations (which
    do not count in ``n_calls``); returns ``(best params, best value, history)``."""
    from skopt import gp_minimize
    from skopt.space import Real
    from tqdm import tqdm

    names = list(bounds)
    space = [Real(lo, hi, name=n, prior="log-uniform" if n in LOG_SCALE and lo > 0 else "uniform")
             for n, (lo, hi) in bounds.items()]

    def to_params(x):
        return base.replace(**dict(zip(names, map(float, x))))

    screened_x, screened_y = checkpoint.done(f"{name}_screen")
    if screen and len(screened_x) < screen:
        unit = qmc.LatinHypercube(d=len(names), seed=settings.seed).random(screen)
        points = np.array([_from_unit(unit[:, k], n, bounds[n]) for k, n in enumerate(names)]).T
        for x in points[len(screened_x):]:
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


DEPTH_MARGIN_KM = 2.0  # typical depth error of a local network's catalog
# How far below the completeness magnitude the generator's magnitudes reach at least. A network's
# catalog lists events down to about a unit below its Mc (the incomplete tail; SCSN's Salton Sea
# days: Mc 2.3, smallest 0.52), and the picks hold the arrivals of such events whether or not the
# catalog does. A catalog cut at Mc (a benchmark's reference, or one a user filtered) would leave
# the generator without the small events that make most of a dense stream's arrivals: a model
# trained on a grid network's M >= 1.31 catalog missed events of M 0.5-1.3 with 6-8 picks.
MAGNITUDES_BELOW_MC = 1.0


def fit_catalog(events: pd.DataFrame) -> dict:
    """Event rate, magnitude range, b-value (above the goodness-of-fit Mc) and depth range.

    The generator draws magnitudes from ``magnitude_min`` on a Gutenberg-Richter law: the
    catalog's smallest, or ``MAGNITUDES_BELOW_MC`` below Mc where the catalog stops above that.
    Its rate is the rate of complete events (M >= Mc) extrapolated down to ``magnitude_min``:
    ``N(M >= Mc) / days * 10**(b (Mc - magnitude_min))``. The catalog's own count would give too
    few large events and too few small ones, whose arrivals are in the real picks though the
    catalog missed them. Depths: the 1 %-99 % range of the catalog's, widened by
    ``DEPTH_MARGIN_KM`` on each side (not above the surface)."""
    days = max((events["time"].max() - events["time"].min()).total_seconds() / 86400.0, 1.0 / 24)
    mags = events["magnitude"].to_numpy(dtype="float64")
    mags = mags[np.isfinite(mags)]
    out = {"event_rate_per_day": len(events) / days}
    if len(mags) >= 50:
        mc = mc_goodness_of_fit(mags).mc
        fit = b_value(mags, mc)
        out["magnitude_min"] = float(mags.min())
        if np.isfinite(fit.b) and np.isfinite(mc):
            out["magnitude_min"] = float(min(mags.min(), mc - MAGNITUDES_BELOW_MC))
            if out["magnitude_min"] < mags.min():
                logger.info("catalog's smallest magnitude %.2f is above Mc %.2f - %.1f: generator magnitudes from %.2f",
                            mags.min(), mc, MAGNITUDES_BELOW_MC, out["magnitude_min"])
            out["b_value"] = fit.b
            out["mc"] = float(mc)
            out["event_rate_per_day"] = float((mags >= mc).sum() / days * 10.0 ** (fit.b * (mc - out["magnitude_min"])))
        out["magnitude_max"] = float(max(mags.max(), out["magnitude_min"] + 1.0))
    depth = events["depth_km"].to_numpy(dtype="float64")
    depth = depth[np.isfinite(depth)]
    if len(depth):
        # Past the 1 %-99 % range by a local network's depth error on each side: the generator and
        # the source graph must span every depth the network's events occur at, the shallowest
        # included; the 2 %-98 % range left events in the top 3 km of a 0-30 km crust unseen.
        low, high = np.quantile(depth, [0.01, 0.99])
        out["depth_min_km"] = float(max(low - DEPTH_MARGIN_KM, 0.0))
        out["depth_max_km"] = float(max(high + DEPTH_MARGIN_KM, out["depth_min_km"] + 1.0))
    return out


def residual_objective(reference: ReferenceEvents, network: Network, travel_times: TravelTimes, seed: int = 0):
    """``f(params)``: Wasserstein-1 distances (s) between real and synthetic timing residuals:
    P, S, and the per-event mean P residual (events with >= 4 P picks; it carries the event's
    common bias, which the pooled distributions cannot tell from independent errors). Synthetic
    errors are drawn at the real picks' events and stations (common random numbers) and
    truncated by the window the labelling used (``max(min_tolerance_s, tolerance_fraction * tt)``
    from ``reference.summary``): a real residual outside it was never labelled, so comparing
    with untruncated synthetic errors would shrink their tails to fit."""
    tt = travel_times(reference.sources, network.xyz)
    res = reference.residuals
    masks = [np.isfinite(res[..., k]) for k in range(2)]
    real = [res[..., k][masks[k]] for k in range(2)]
    min_tol = reference.summary.get("min_tolerance_s")
    window = (np.maximum(min_tol, reference.summary.get("tolerance_fraction", 0.0) * tt)
              if min_tol is not None else np.full(tt.shape, np.inf))
    many_p = masks[0].sum(1) >= 4
    real_mean = np.nanmean(np.where(masks[0][many_p], res[many_p, :, 0], np.nan), axis=1)

    def f(params: GeneratorParams) -> float:
        err = arrival_errors(tt, network, params, np.random.default_rng(seed))
        inside = np.abs(err) <= window
        value = sum(wasserstein_distance(real[k], err[..., k][masks[k] & inside[..., k]])
                    for k in range(2) if len(real[k]) and (masks[k] & inside[..., k]).any())
        kept = masks[0][many_p] & inside[many_p, :, 0]
        counted = kept.sum(1) > 0
        if len(real_mean) and counted.any():
            syn_mean = (np.where(kept, err[many_p, :, 0], 0.0).sum(1)[counted] / kept.sum(1)[counted])
            value += wasserstein_distance(real_mean, syn_mean)
        return float(value)

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
    base = base.replace(**{k: v for k, v in fits["catalog"].items() if hasattr(base, k)})
    if picks is not None:
        fits["background"] = fit_background(picks, reference, network, travel_times, base.statics_for(network.ids),
                                            seed=settings.seed)
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
        centre = getattr(best1, k)
        if k in LOG_SCALE and lo > 0:
            ratio = (hi / lo) ** settings.zoom
            zoomed[k] = (max(lo, centre / ratio), min(hi, centre * ratio))
        else:
            half = settings.zoom * (hi - lo)
            zoomed[k] = (max(lo, centre - half), min(hi, centre + half))
    n2 = settings.n_calls - n1
    if n2 > 0:
        best2, f2, hist2 = _search("round2", objective, zoomed, best1, n2 + 1, settings, checkpoint,
                                   [getattr(best1, k) for k in zoomed], progress)
    else:
        best2, f2, hist2 = best1, f1, {"names": [], "x": [], "y": []}
    best = best2 if f2 <= f1 else best1
    rounds = {"round1": {"bounds": primary, "best": f1, **hist1}, "round2": {"bounds": zoomed, "best": f2, **hist2}}

    # Uncertainty: bootstrap intervals over the best evaluated points, profiles, and the
    # parameters the data cannot identify fixed at their priors.
    evaluated = []
    for name, names, origin in (("round1_screen", list(primary), base), ("round1", list(primary), base),
                                ("round2", list(zoomed), best1)):
        xs, ys = checkpoint.done(name)
        evaluated += [(y, origin.replace(**dict(zip(names, map(float, x))))) for x, y in zip(xs, ys)]
    evaluated.sort(key=lambda item: item[0])
    candidates = [best] + [p for _, p in evaluated[:settings.bootstrap_candidates]]
    intervals = bootstrap_intervals(objective, candidates, list(spatial), settings.bootstrap, settings.seed)
    profile = profiles(objective, best, spatial, settings.profile_points, LOG_SCALE)
    verdict = unidentified(objective, best, profile, settings.bootstrap, settings.seed)
    fixed_prior = sorted(k for k, v in verdict.items() if not v["identified"])
    if fixed_prior:
        logger.info("not identified by the data, fixed at their priors: %s", ", ".join(fixed_prior))
    best = fix_unidentified(best, verdict, start)
    report["uncertainty"] = {"intervals": intervals, "profiles": profile, "identifiability": verdict,
                             "fixed_at_prior": fixed_prior, "objective_after_fixing": objective(best)}

    if picks is not None and settings.pick_budget:
        best, report["pick_budget"] = fit_pick_budget(network, travel_times, best, picks, reference.events,
                                                      seed=settings.seed)

    if settings.timing_calls > 0 and np.isfinite(reference.residuals).any():
        timing = {k: v for k, v in settings.timing_bounds.items() if k not in settings.fixed}
        f_timing = residual_objective(reference, network, travel_times, settings.seed)
        before_timing = f_timing(best)
        # The error shape is a choice, not a continuous parameter: fit each and keep the closer.
        shapes = [settings.fixed["timing_distribution"]] if "timing_distribution" in settings.fixed else \
            ["normal", "laplace"]
        fitted = {}
        for shape in shapes:
            name = "round3" if shape == "normal" else f"round3_{shape}"
            start3 = best.replace(timing_distribution=shape)
            fitted[shape] = _search(name, f_timing, timing, start3, settings.timing_calls, settings, checkpoint,
                                    [getattr(start3, k) for k in timing], progress)
        shape = min(fitted, key=lambda k: fitted[k][1])
        best3, f3, hist3 = fitted[shape]
        rounds["round3"] = {"bounds": timing, "best": f3, "before": before_timing, "distribution": shape,
                            "by_distribution": {k: v[1] for k, v in fitted.items()}, **hist3}
        best = best3
    after, table_after = objective.evaluate(best)
    report["co_selection"] = {"real": co_selection(objective.reference.selected_p, objective.reference.selected_s)}
    for label, params in (("default", start), ("calibrated", best)):
        sel = objective.synthetic(params)
        seen = (sel.p | sel.s).sum(1) >= objective.min_stations
        report["co_selection"][label] = co_selection(sel.p[seen], sel.s[seen])
    report.update(rounds=rounds, objective_calibrated=after,
                  per_bin_default=table_before.to_dict("records"), per_bin_calibrated=table_after.to_dict("records"))
    logger.info("objective %.4f at the starting parameters -> %.4f calibrated", before, after)
    return best, report
