"""Synthetic peak amplitudes (m/s) from a magnitude-distance law with station terms and scatter.

``log10 A = amp_c0 + amp_c1 (M - 3.5) + amp_c3 log10(R) + station term + N(0, amp_noise_sigma)``
(GaMMA's form, R hypocentral km, A in m/s); S amplitudes are ``amp_s_factor`` times P's.
"""

from __future__ import annotations

import numpy as np

from generator.params import GeneratorParams


def station_terms(n_stations: int, params: GeneratorParams, rng: np.random.Generator) -> np.ndarray:
    """Per-station log10 amplitude terms ``[M]``."""
    return rng.normal(0.0, params.amp_station_sigma, n_stations)


def arrival_amplitudes(magnitudes, hypocentral_km, terms, params: GeneratorParams,
                       rng: np.random.Generator) -> np.ndarray:
    """Amplitudes ``[N, M, 2]`` (m/s) of P and S for ``magnitudes [N]``, distances ``[N, M]``."""
    m = np.asarray(magnitudes, dtype="float64")[:, None]
    log_a = params.amp_c0 + params.amp_c1 * (m - 3.5) + params.amp_c3 * np.log10(np.maximum(hypocentral_km, 0.1))
    log_a = log_a + np.asarray(terms)[None, :]
    scatter = rng.normal(0.0, params.amp_noise_sigma, log_a.shape + (2,))
    return 10.0 ** (log_a[..., None] + scatter) * np.array([1.0, params.amp_s_factor])


def magnitude_from_amplitude(amplitude, hypocentral_km, params: GeneratorParams) -> np.ndarray:
    """Invert the law (without station terms) for a per-pick magnitude estimate."""
    return 3.5 + (np.log10(amplitude) - params.amp_c0 - params.amp_c3 * np.log10(np.maximum(hypocentral_km, 0.1))) / params.amp_c1
