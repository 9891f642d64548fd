"""Arrival-time errors: independent jitter plus spatially correlated residuals.

``error = e_i + bias_event + timing_corr_s * (L_t z)_station``, with ``e_i`` of std ``sigma_i``,
normal or (``timing_distribution='laplace'``) Laplace with scale ``sigma_i / sqrt(2)`` (heavy
tails: the occasional pick a second off that real pickers make), and
``sigma_i = max(timing_floor_s, timing_fraction * travel_time)`` (times ``s_timing_factor`` for S),
a per-event common bias ``N(0, event_bias_s)`` and a station field whose covariance is
``exp(-d^2 / timing_corr_length_km^2)`` (the report's "next step": timing residuals correlated
across stations, like those of an imperfect velocity model).
"""

from __future__ import annotations

import numpy as np

from generator.network import Network
from generator.params import GeneratorParams


def arrival_errors(travel_times: np.ndarray, network: Network, params: GeneratorParams,
                   rng: np.random.Generator) -> np.ndarray:
    """Timing errors ``[N, M, 2]`` (s) for travel times ``[N, M, 2]`` (P, S)."""
    n, m, _ = travel_times.shape
    factor = np.array([1.0, params.s_timing_factor])
    sigma = np.maximum(params.timing_floor_s, params.timing_fraction * travel_times) * factor
    if params.timing_distribution == "laplace":
        independent = rng.laplace(0.0, 1.0 / np.sqrt(2.0), (n, m, 2)) * sigma
    else:
        independent = rng.standard_normal((n, m, 2)) * sigma
    bias = rng.standard_normal((n, 1, 1)) * params.event_bias_s
    field = rng.standard_normal((n, m)) @ network.cholesky(params.timing_corr_length_km).T
    return independent + bias + params.timing_corr_s * field[..., None] * factor
