"""False picks: station background, coda picks, network-wide spikes, and phase-label flips.

* Background: per station a Poisson process with rate ``background_rate_per_hour`` times a
  log-normal station factor, modulated by a day-night cycle of relative amplitude
  ``background_diurnal_amplitude`` (thinning); labelled P with probability ``false_p_fraction``.
* Coda: each true arrival spawns, with probability ``coda_pick_rate``, a pick of the same label
  an exponential delay (mean ``coda_delay_s``) later.
* Spikes: Poisson(``spike_rate_per_day``) instants at which a fraction ``spike_station_fraction``
  of the stations pick within ``spike_spread_s`` (like the picks at file edges in real streams).
* Flips: a fraction ``phase_flip_rate`` of true picks get the other label.

All return plain arrays: station index, time (s from the start), phase code (0 = P, 1 = S).
"""

from __future__ import annotations

import numpy as np

from generator.params import GeneratorParams


def background_picks(n_stations: int, duration_s: float, params: GeneratorParams, rng: np.random.Generator):
    """``(station [K], time_s [K], phase [K])`` of background false picks."""
    amp = params.background_diurnal_amplitude
    rates = params.background_rate_per_hour / 3600.0 * rng.lognormal(0.0, params.background_rate_spread, n_stations)
    counts = rng.poisson(rates * (1.0 + amp) * duration_s)
    station = np.repeat(np.arange(n_stations), counts)
    time = rng.uniform(0.0, duration_s, len(station))
    phase_of_day = rng.uniform(0, 2 * np.pi, n_stations)[station]
    keep = rng.random(len(station)) * (1.0 + amp) < 1.0 + amp * np.sin(2 * np.pi * time / 86400.0 + phase_of_day)
    phase = (rng.random(len(station)) >= params.false_p_fraction).astype(np.int8)
    return station[keep], time[keep], phase[keep]


def coda_picks(station, time, phase, params: GeneratorParams, rng: np.random.Generator):
    """Coda picks following the given true arrivals."""
    spawn = rng.random(len(station)) < params.coda_pick_rate
    delay = rng.exponential(params.coda_delay_s, spawn.sum())
    return station[spawn], time[spawn] + delay, phase[spawn]


def spike_picks(n_stations: int, duration_s: float, params: GeneratorParams, rng: np.random.Generator):
    """Network-wide spikes of near-simultaneous false picks."""
    n = rng.poisson(params.spike_rate_per_day * duration_s / 86400.0)
    t0 = rng.uniform(0.0, duration_s, n)
    hit = rng.random((n, n_stations)) < params.spike_station_fraction
    spike, station = np.nonzero(hit)
    time = t0[spike] + rng.normal(0.0, params.spike_spread_s, len(spike))
    phase = (rng.random(len(spike)) < 0.5).astype(np.int8)
    return station, time, phase


def flip_phases(phase: np.ndarray, params: GeneratorParams, rng: np.random.Generator) -> np.ndarray:
    """Labels with a fraction ``phase_flip_rate`` swapped between P (0) and S (1)."""
    flip = rng.random(len(phase)) < params.phase_flip_rate
    return np.where(flip, 1 - phase, phase).astype(np.int8)
