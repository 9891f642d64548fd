"""Which stations detect an event: the report's radial function on a Mahalanobis distance,
perturbed by spatially correlated (Cholesky) noise.

For an event of magnitude M, the detection scale of phase k is
``sigma_r = radial_factor_k * pdist(M) / 3`` (``pdist(M) = 10**(a + b M)`` km, where detection
becomes rare). The distance from the epicentre to a station is measured in an ellipse
``Sigma = R(theta) D^2 R(theta)^T`` scaled by ``sigma_r`` (the "normalised distance" ``u``, so
``u = 3`` at three sigma), and the selection probability is

``p = (1 - miss_pick_rate) * f(u')``, ``f(u) = exp(-u^(2p) / (2 * 9^(p-1)))``,

times a per-station factor (``station_detection``: site noise, outages), with
``u' = max(0, u + lambda_noise * eps)`` and ``eps = L z`` a noise field over the stations
with covariance ``C_ij = exp(-d_ij^2 / sigma_noise^2)`` (the report's second iteration). The first
iteration, a logistic perturbation of the probability, is ``noise_mode='logistic'``. Each station
is then picked by a Bernoulli draw whose uniform is ``Phi(z)`` of a Gaussian latent ``z``: the P
and S latents of one event and station are correlated by ``ps_selection_correlation`` (a Gaussian
copula), so a station that picked P is likelier to pick S, as real pickers do (the same signal
quality decides both), while each phase keeps its own marginal probability. Everything is
vectorised over events and stations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from generator.network import Network
from generator.params import GeneratorParams


def radial_function(r, sigma, p_exp: float):
    """``exp(-r^(2p) / (2 * 9^(p-1) * sigma^(2p)))``: 1 at r = 0, ~0.011 at r = 3 sigma for any p."""
    return np.exp(-((np.asarray(r) / sigma) ** (2.0 * p_exp)) / (2.0 * 9.0 ** (p_exp - 1.0)))


def pdist_km(magnitude, params: GeneratorParams) -> np.ndarray:
    """Distance (km) beyond which detection becomes rare, ``10**(a + b M)`` capped at ``pdist_max_km``."""
    m = np.asarray(magnitude, dtype="float64")
    return np.minimum(10.0 ** (params.pdist_log10_km_at_m0 + params.pdist_per_magnitude * m), params.pdist_max_km)


@dataclass
class Ellipses:
    """Per-event ellipse of one phase: major-axis angle (rad from east), semi-axis factors
    ``[N, 2]`` and overall radius factor ``[N]`` (all multiplicative, 1 = the circle sigma_r)."""

    angle: np.ndarray
    axes: np.ndarray
    scale: np.ndarray


def sample_ellipses(n: int, params: GeneratorParams, rng: np.random.Generator) -> tuple[Ellipses, Ellipses]:
    """P and S ellipses for ``n`` events; S perturbations are correlated with P's by
    ``ps_ellipse_correlation``. Draws a fixed number of normals per event (common random numbers)."""
    z = rng.standard_normal((2, n, 4))  # [phase, event, (angle, axis1, axis2, scale)]
    rho = params.ps_ellipse_correlation
    zs = rho * z[0] + np.sqrt(1.0 - rho**2) * z[1]
    out = []
    for zz in (z[0], zs):
        angle = np.radians(params.ellipse_azimuth_deg) + params.angle_perturb * np.pi * zz[:, 0]
        axes = np.exp(params.axis_perturb_factor * zz[:, 1:3])
        scale = np.exp(params.radial_perturb_factor * zz[:, 3])
        out.append(Ellipses(angle, axes, scale))
    return out[0], out[1]


def normalised_distance(sources, stations, sigma_r, ellipses: Ellipses, params: GeneratorParams) -> np.ndarray:
    """Mahalanobis distance ``[N, M]`` from ``sources [N, 3]`` to ``stations [M, 3]`` in units of
    the event's ellipse (``sigma_r [N]`` km times the ellipse factors).

    In 3-D mode (``ellipsoid_3d``) the depth difference enters with a vertical semi-axis
    ``depth_axis_factor * sigma_r``.
    """
    dx = stations[None, :, 0] - sources[:, None, 0]
    dy = stations[None, :, 1] - sources[:, None, 1]
    c, s = np.cos(ellipses.angle)[:, None], np.sin(ellipses.angle)[:, None]
    along = (c * dx + s * dy) / ellipses.axes[:, 0:1]
    across = (-s * dx + c * dy) / ellipses.axes[:, 1:2]
    r2 = along**2 + across**2
    if params.ellipsoid_3d:
        dz = stations[None, :, 2] - sources[:, None, 2]
        r2 = r2 + (dz / params.depth_axis_factor) ** 2
    return np.sqrt(r2) / (sigma_r * ellipses.scale)[:, None]


def correlated_noise(cholesky: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws ``eps = L z`` of the station noise field, ``[n, M]``; covariance ``L L^T``."""
    return rng.standard_normal((n, cholesky.shape[0])) @ cholesky.T


def selection_probability(u: np.ndarray, eps: np.ndarray, params: GeneratorParams) -> np.ndarray:
    """Selection probability ``[N, M]`` from normalised distances and noise (module doc)."""
    scale = 1.0 - params.miss_pick_rate
    if params.noise_mode == "distance":
        return scale * radial_function(np.maximum(0.0, u + params.lambda_noise * eps), 1.0, params.p_exp)
    p_r = scale * radial_function(u, 1.0, params.p_exp)
    logistic = 1.0 / (1.0 + np.exp(-eps / params.sigma_logistic))
    return np.clip(p_r + (p_r > 0.02) * params.lambda_noise * 2.0 * (logistic - 0.5), 0.0, 1.0)


def station_factors(network: Network, params: GeneratorParams) -> np.ndarray:
    """Per-station ``[M, 2]`` (P, S) factors on the selection probability from
    ``params.station_detection`` (1 for stations not listed)."""
    table = params.station_detection
    return np.array([table.get(sid, (1.0, 1.0)) for sid in network.ids], dtype="float64").reshape(-1, 2)


@dataclass
class Selections:
    """Station selections of ``N`` events on ``M`` stations: booleans and probabilities ``[N, M]``."""

    p: np.ndarray
    s: np.ndarray
    prob_p: np.ndarray
    prob_s: np.ndarray


def sample_selections(network: Network, sources, magnitudes, params: GeneratorParams,
                      rng: np.random.Generator) -> Selections:
    """Draw P and S station selections for events at ``sources [N, 3]`` (x, y, depth km) with
    ``magnitudes [N]``.

    The random draws have fixed shapes whatever the parameters, so the same seed gives common
    random numbers across parameter values (what calibration needs for a smooth objective).
    """
    sources = np.asarray(sources, dtype="float64").reshape(-1, 3)
    n = len(sources)
    base = pdist_km(magnitudes, params) / 3.0
    ell_p, ell_s = sample_ellipses(n, params, rng)
    chol = network.cholesky(params.sigma_noise)
    eps_p = correlated_noise(chol, n, rng)
    rho = params.ps_noise_correlation
    eps_s = rho * eps_p + np.sqrt(1.0 - rho**2) * correlated_noise(chol, n, rng)
    latent = rng.standard_normal((2, n, len(network)))
    rho_ps = params.ps_selection_correlation
    uniform_p = ndtr(latent[0])
    uniform_s = ndtr(rho_ps * latent[0] + np.sqrt(1.0 - rho_ps**2) * latent[1])
    factors = station_factors(network, params)
    prob_p = factors[:, 0] * selection_probability(
        normalised_distance(sources, network.xyz, params.radial_factor_p * base, ell_p, params), eps_p, params)
    prob_s = factors[:, 1] * selection_probability(
        normalised_distance(sources, network.xyz, params.radial_factor_s * base, ell_s, params), eps_s, params)
    return Selections(uniform_p < prob_p, uniform_s < prob_s, prob_p, prob_s)


def sample_selection(event, stations, params: GeneratorParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """P- and S-selected station ids of one event.

    ``event``: a mapping or Series with ``magnitude`` and either ``x_km, y_km, depth_km`` (local
    frame of ``stations``) or ``latitude, longitude, depth_km``. ``stations``: a contract
    DataFrame or a :class:`Network`.
    """
    network = stations if isinstance(stations, Network) else Network.from_stations(stations)
    if "x_km" in event:
        x, y = event["x_km"], event["y_km"]
    else:
        x, y = network.projection.to_xy(event["latitude"], event["longitude"])
    source = np.array([[float(x), float(y), float(event["depth_km"])]])
    sel = sample_selections(network, source, [float(event["magnitude"])], params, rng)
    return network.ids[sel.p[0]], network.ids[sel.s[0]]
