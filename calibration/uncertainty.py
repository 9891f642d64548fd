"""How well the real events pin down each calibrated parameter: bootstrap intervals, profiles,
and which parameters the data cannot identify.

* **Bootstrap** (:func:`bootstrap_intervals`): the real events of the objective are resampled
  with replacement ``n_boot`` times (multiplicity weights, no new synthetic draws); for each
  resample the best of the ``top`` best evaluated parameter sets is taken, and each parameter's
  5-95 % range over the resamples is its interval. This is the spread of the optimum among the
  points the search visited, not a re-optimisation per resample (which would cost the whole
  search each time), so it is an interval on the search's resolution too.
* **Profile** (:func:`profiles`): ``f`` along each parameter's whole bound, the others held at
  the optimum.
* **Identifiability** (:func:`unidentified`): a parameter is identified when its profile rises
  above the optimum by more than twice the bootstrap standard deviation of that rise; otherwise
  the data cannot tell its values apart and calibration fixes it at its prior (the default of
  :class:`GeneratorParams`), which is reported.
"""

from __future__ import annotations

import numpy as np

from calibration.objective import Objective
from generator.params import GeneratorParams


def bootstrap_weights(objective: Objective, n_boot: int, seed: int = 0) -> np.ndarray:
    """``[n_boot, N]`` multiplicities of the objective's real events, resampled within each
    magnitude bin (the sample is stratified, so each bin keeps its size)."""
    rng = np.random.default_rng(seed)
    bins = np.clip(np.digitize(objective.reference.magnitudes, objective.edges) - 1, 0, len(objective.edges) - 2)
    out = np.zeros((n_boot, len(bins)))
    for b in np.unique(bins):
        members = np.flatnonzero(bins == b)
        draws = rng.integers(0, len(members), (n_boot, len(members)))
        np.add.at(out, (np.arange(n_boot)[:, None], members[draws]), 1.0)
    return out


def _grid(name: str, bounds: tuple, n: int, log_scale: set) -> np.ndarray:
    lo, hi = bounds
    if name in log_scale and lo > 0:
        return np.geomspace(lo, hi, n)
    return np.linspace(lo, hi, n)


def bootstrap_intervals(objective: Objective, candidates: list[GeneratorParams], names: list[str],
                        n_boot: int = 100, seed: int = 0) -> dict:
    """Per parameter ``{"low": 5 %, "high": 95 %}`` over bootstrap resamples of the best of
    ``candidates`` (module doc), plus the bootstrap standard deviation of ``f`` at the first
    candidate (the optimum) as ``"_f_std"``."""
    weights = bootstrap_weights(objective, n_boot, seed)
    draws = [objective.draws(p) for p in candidates]
    values = np.array([[objective.score(d, w)[0] for d in draws] for w in weights])  # [boot, candidate]
    chosen = values.argmin(1)
    out = {}
    for name in names:
        picked = np.array([getattr(candidates[c], name) for c in chosen], dtype="float64")
        out[name] = {"low": float(np.quantile(picked, 0.05)), "high": float(np.quantile(picked, 0.95))}
    out["_f_std"] = float(values[:, 0].std())
    return out


def profiles(objective: Objective, best: GeneratorParams, bounds: dict, n_points: int = 9,
             log_scale: set = frozenset()) -> dict:
    """``{name: {"x": [...], "f": [...]}}``: the objective along each parameter's bound, the
    others at ``best``."""
    out = {}
    for name, bound in bounds.items():
        xs = _grid(name, bound, n_points, log_scale)
        out[name] = {"x": xs.tolist(), "f": [objective(best.replace(**{name: float(x)})) for x in xs]}
    return out


def unidentified(objective: Objective, best: GeneratorParams, profile: dict, n_boot: int = 100,
                 seed: int = 0) -> dict:
    """``{name: {"rise": f_worst - f_best, "noise": bootstrap std of that rise, "identified": bool}}``
    from :func:`profiles` (module doc)."""
    weights = bootstrap_weights(objective, n_boot, seed)
    at_best = objective.draws(best)
    base = np.array([objective.score(at_best, w)[0] for w in weights])
    f_best = objective(best)
    out = {}
    for name, prof in profile.items():
        k = int(np.argmax(prof["f"]))
        worst = objective.draws(best.replace(**{name: float(prof["x"][k])}))
        rise = np.array([objective.score(worst, w)[0] for w in weights]) - base
        observed = float(prof["f"][k] - f_best)
        noise = float(rise.std())
        out[name] = {"rise": observed, "noise": noise, "identified": bool(observed > 2.0 * noise)}
    return out


def fix_unidentified(best: GeneratorParams, verdict: dict, prior: GeneratorParams | None = None) -> GeneratorParams:
    """``best`` with every parameter that :func:`unidentified` found unidentified set to ``prior``'s
    value (the defaults)."""
    prior = prior or GeneratorParams()
    return best.replace(**{name: getattr(prior, name) for name, v in verdict.items() if not v["identified"]})
