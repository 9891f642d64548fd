"""Synthetic events in space, time and magnitude.

* Origin times: a Poisson process whose log rate varies smoothly in time (a random sum of
  sinusoids with periods from ``rate_timescale_hours`` up to the duration), plus bursts: a
  mainshock followed by Poisson(``burst_size``) aftershocks with Omori-Utsu decay.
* Epicentres: uniform over the padded station box, or, given a reference catalog, a fraction
  ``reference_fraction`` near reference epicentres (Gaussian jitter) so synthetic events sit
  where real seismicity does. Aftershocks scatter around their mainshock. Depths uniform in
  ``[depth_min_km, depth_max_km]`` (reference depths when placed near a reference event).
* Magnitudes: truncated Gutenberg-Richter with ``b_value`` between ``magnitude_min`` and
  ``magnitude_max``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from generator.network import Network
from generator.params import GeneratorParams



def gutenberg_richter(n: int, b: float, m_min: float, m_max: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` magnitudes from a G-R law truncated to ``[m_min, m_max]`` (inverse CDF)."""
    u = rng.random(n)
    return m_min - np.log10(1.0 - u * (1.0 - 10.0 ** (-b * (m_max - m_min)))) / b


def omori_delays(n: int, c: float, p: float, t_max: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` delays (s) after a mainshock with density ``∝ (t + c)^-p`` on ``[0, t_max]``."""
    u = rng.random(n)
    if abs(p - 1.0) < 1e-9:
        return c * ((t_max + c) / c) ** u - c
    q = 1.0 - p
    return (c**q + u * ((t_max + c) ** q - c**q)) ** (1.0 / q) - c


def rate_modulation(times_s: np.ndarray, duration_s: float, variability: float, timescale_hours: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Multiplicative rate factor at ``times_s``: ``exp(v g(t) - v^2 / 2)`` with ``v =
    variability`` and ``g`` a smooth zero-mean, unit-variance random process (sinusoids with
    periods from ``timescale_hours`` to twice the duration), so the mean rate is preserved."""
    k = 8
    shortest = timescale_hours * 3600.0
    periods = np.exp(rng.uniform(np.log(shortest), np.log(max(duration_s, shortest) * 2.0), k))
    phases = rng.uniform(0, 2 * np.pi, k)
    g = np.sqrt(2.0 / k) * np.cos(2 * np.pi * times_s[:, None] / periods + phases).sum(1)
    v = variability
    return np.exp(v * g - v**2 / 2.0)


def _epicentres(n: int, network: Network, params: GeneratorParams, rng: np.random.Generator,
                reference_xyz: np.ndarray | None) -> np.ndarray:
    x0, x1, y0, y1 = network.region(params.region_padding_km)
    out = np.column_stack([
        rng.uniform(x0, x1, n), rng.uniform(y0, y1, n), rng.uniform(params.depth_min_km, params.depth_max_km, n)
    ])
    if reference_xyz is not None and len(reference_xyz):
        near = rng.random(n) < params.reference_fraction
        pick = reference_xyz[rng.integers(0, len(reference_xyz), near.sum())]
        jitter = rng.normal(0.0, params.reference_jitter_km, (near.sum(), 3))
        out[near] = pick + jitter
        out[:, 2] = np.clip(out[:, 2], params.depth_min_km, params.depth_max_km)
    return out


def sample_events(network: Network, params: GeneratorParams, duration_s: float, rng: np.random.Generator,
                  reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Events in ``[0, duration_s)`` as a DataFrame with ``origin_s`` (s from the start), ``x_km,
    y_km, depth_km, magnitude`` and ``burst_id`` (-1 for background events, else the burst), sorted
    by origin time. ``reference``: a contract events table whose epicentres guide placement."""
    reference_xyz = None
    if reference is not None and len(reference):
        rx, ry = network.projection.to_xy(reference["latitude"], reference["longitude"])
        reference_xyz = np.column_stack([rx, ry, reference["depth_km"].to_numpy(dtype="float64")])

    # Background: Poisson counts on bins much shorter than the rate's variation.
    bin_s = min(params.rate_timescale_hours * 360.0, max(duration_s, 1.0))
    n_bins = int(np.ceil(duration_s / bin_s))
    centres = (np.arange(n_bins) + 0.5) * bin_s
    widths = np.minimum(bin_s, duration_s - np.arange(n_bins) * bin_s)
    rate = params.event_rate_per_day / 86400.0 * rate_modulation(centres, duration_s, params.rate_variability,
                                                                 params.rate_timescale_hours, rng)
    counts = rng.poisson(rate * widths)
    starts = np.repeat(np.arange(n_bins) * bin_s, counts)
    t_bg = starts + rng.random(counts.sum()) * np.repeat(widths, counts)
    xyz_bg = _epicentres(len(t_bg), network, params, rng, reference_xyz)
    m_bg = gutenberg_richter(len(t_bg), params.b_value, params.magnitude_min, params.magnitude_max, rng)

    # Bursts: mainshock + Omori aftershocks around it.
    n_burst = rng.poisson(params.burst_rate_per_day * duration_s / 86400.0)
    t_main = rng.uniform(0.0, duration_s, n_burst)
    xyz_main = _epicentres(n_burst, network, params, rng, reference_xyz)
    m_main = gutenberg_richter(n_burst, params.b_value, params.magnitude_min + 1.0,
                               max(params.magnitude_max, params.magnitude_min + 1.5), rng)
    n_after = rng.poisson(params.burst_size, n_burst)
    owner = np.repeat(np.arange(n_burst), n_after)
    t_after = t_main[owner] + omori_delays(len(owner), params.omori_c_s, params.omori_p,
                                           params.burst_duration_hours * 3600.0, rng)
    xyz_after = xyz_main[owner] + rng.normal(0.0, params.burst_radius_km, (len(owner), 3))
    xyz_after[:, 2] = np.clip(xyz_after[:, 2], params.depth_min_km, params.depth_max_km)
    m_after = gutenberg_richter(len(owner), params.b_value, params.magnitude_min, params.magnitude_max, rng)

    events = pd.DataFrame({
        "origin_s": np.concatenate([t_bg, t_main, t_after]),
        "x_km": np.concatenate([xyz_bg[:, 0], xyz_main[:, 0], xyz_after[:, 0]]),
        "y_km": np.concatenate([xyz_bg[:, 1], xyz_main[:, 1], xyz_after[:, 1]]),
        "depth_km": np.concatenate([xyz_bg[:, 2], xyz_main[:, 2], xyz_after[:, 2]]),
        "magnitude": np.concatenate([m_bg, np.minimum(m_main, params.magnitude_max), m_after]),
        "burst_id": np.concatenate([np.full(len(t_bg), -1), np.arange(n_burst), owner]).astype(np.int64),
    })
    events = events[events["origin_s"] < duration_s]
    return events.sort_values("origin_s", kind="stable").reset_index(drop=True)
