"""False picks: station background, coda picks, network-wide spikes, hour-edge picks, double
picks and phase-label flips.

* Background: per station a Poisson process with the station's mean rate
  (``station_background``, else ``background_rate_per_hour`` times a log-normal factor of mean 1),
  modulated by a day-night cycle of relative amplitude ``background_diurnal_amplitude`` peaking at
  ``background_diurnal_peak_hour`` UTC (one phase for the network: the cycle is cultural and
  wind noise, shared by the stations) and by a smooth network-wide variation in time
  (``background_rate_variability``, as the real hourly pick counts vary several-fold); labelled P
  with probability ``false_p_fraction``.
* Coda: each true arrival spawns, with probability ``coda_pick_rate``, a pick of the same label
  an exponential delay (mean ``coda_delay_s``) later.
* Spikes: Poisson(``spike_rate_per_day``) instants at which a fraction ``spike_station_fraction``
  of the stations pick within ``spike_spread_s``.
* Edge picks: with probability ``edge_pick_rate_per_hour`` per station and full hour, a pick
  ``edge_offset_s`` after the hour, P with probability ``edge_p_fraction`` (PhaseNet run on
  hourly files picks the file edges).
* Doubles: a fraction ``duplicate_rate`` of all picks is reported again with the other phase
  label within ``duplicate_spread_s``.
* Flips: a fraction ``phase_flip_rate`` of true picks get the other label.

All return plain arrays: station index, time (s from the start), phase code (0 = P, 1 = S).
"""

from __future__ import annotations

import numpy as np

from generator.events import rate_modulation
from generator.params import GeneratorParams

# Bin (s) on which the background rate is evaluated: far shorter than the day-night cycle and
# the shortest period of the rate's variation.
BACKGROUND_BIN_S = 300.0


def station_background_rates(station_ids, params: GeneratorParams, rng: np.random.Generator) -> np.ndarray:
    """Mean false-pick rate per station ``[M]`` (1/h): ``station_background`` where listed, else
    ``background_rate_per_hour`` times a log-normal factor of mean 1 (``exp(N(-s^2/2, s))``, so the
    network mean is the rate given, not its median)."""
    ids = [str(s) for s in station_ids]
    spread = params.background_rate_spread
    drawn = params.background_rate_per_hour * rng.lognormal(-spread**2 / 2.0, spread, len(ids))
    table = params.station_background
    return np.array([table.get(sid, drawn[i]) for i, sid in enumerate(ids)], dtype="float64")


def background_picks(station_ids, duration_s: float, params: GeneratorParams, rng: np.random.Generator,
                     start_hour_utc: float = 0.0):
    """``(station [K], time_s [K], phase [K])`` of background false picks for the stations
    ``station_ids`` over ``[0, duration_s)``, time 0 being ``start_hour_utc`` hours into a UTC day."""
    rates = station_background_rates(station_ids, params, rng) / 3600.0
    n_bins = max(int(np.ceil(duration_s / BACKGROUND_BIN_S)), 1)
    edges = np.minimum(np.arange(n_bins + 1) * BACKGROUND_BIN_S, duration_s)
    centres, widths = (edges[:-1] + edges[1:]) / 2.0, np.diff(edges)
    hour = start_hour_utc + centres / 3600.0
    diurnal = 1.0 + params.background_diurnal_amplitude * np.cos(2 * np.pi * (hour - params.background_diurnal_peak_hour) / 24.0)
    varying = rate_modulation(centres, duration_s, params.background_rate_variability,
                              params.background_timescale_hours, rng)
    counts = rng.poisson(rates[:, None] * (diurnal * varying * widths)[None, :])  # [M, bins]
    station, bin_index = np.nonzero(counts)
    repeat = counts[station, bin_index]
    station, bin_index = np.repeat(station, repeat), np.repeat(bin_index, repeat)
    time = edges[bin_index] + rng.random(len(station)) * widths[bin_index]
    phase = (rng.random(len(station)) >= params.false_p_fraction).astype(np.int8)
    order = np.argsort(time, kind="stable")
    return station[order], time[order], phase[order]


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


def edge_picks(n_stations: int, duration_s: float, params: GeneratorParams, rng: np.random.Generator,
               start_hour_utc: float = 0.0):
    """Spurious picks ``edge_offset_s`` after each full UTC hour, per station with probability
    ``edge_pick_rate_per_hour``."""
    first = ((np.ceil(start_hour_utc) - start_hour_utc) * 3600.0) % 3600.0
    hours = np.arange(first, duration_s, 3600.0) + params.edge_offset_s
    hit = rng.random((len(hours), n_stations)) < params.edge_pick_rate_per_hour
    hour, station = np.nonzero(hit)
    phase = (rng.random(len(hour)) >= params.edge_p_fraction).astype(np.int8)
    return station, hours[hour], phase


def duplicate_picks(station, time, phase, params: GeneratorParams, rng: np.random.Generator):
    """A fraction ``duplicate_rate`` of the given picks again, with the other label, within
    ``duplicate_spread_s``."""
    twin = rng.random(len(station)) < params.duplicate_rate
    shift = rng.uniform(-params.duplicate_spread_s, params.duplicate_spread_s, twin.sum())
    return station[twin], time[twin] + shift, (1 - phase[twin]).astype(np.int8)


def flip_phases(phase: np.ndarray, params: GeneratorParams, rng: np.random.Generator) -> np.ndarray:
    """Labels with a fraction ``phase_flip_rate`` swapped between P (0) and S (1)."""
    flip = rng.random(len(phase)) < params.phase_flip_rate
    return np.where(flip, 1 - phase, phase).astype(np.int8)
