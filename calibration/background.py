"""The false-pick background of a real network, from the picks no catalog event explains.

Not every unlabelled pick is false: many are arrivals of events below the catalog's
completeness, and those line up across stations with a travel-time moveout. Counting them as
noise makes a generator whose false picks are too many and too easy (a model trained on it
learns to ignore coherent small events). :func:`coherent_picks` flags an unlabelled pick when
picks of the same label on at least ``min_stations`` other stations fall within the largest
moveout any source in the region can give between the two stations (from the travel-time table,
plus the difference of the station statics and a tolerance). The same count on the same picks
with each station's times shifted by its own random offset (moveout destroyed, rates kept) is
the number flagged by chance. Only station pairs within twice the median distance at which the
reference's events are picked count as partners (:func:`coherence_distance_km`): two stations
that pick one typical event lie within that of each other, while on a network much wider than
that (100 stations over 300 km) distant partners, with moveout bounds near a minute, would make
nearly every pick coherent by chance and the chance correction meaningless. On a local network
the distance exceeds the aperture and every pair counts. The background rate of each station is then its unflagged
unlabelled picks divided by the fraction a pure-noise stream keeps (1 minus the chance rate,
measured on a shifted stream thinned to the noise rate so estimated, iterated), so chance
coincidences in a busy stream are not taken out of the noise.

:func:`fit_background` returns the generator's background parameters: per-station mean rates
(``station_background``), their network mean and log spread, the day-night amplitude and peak
hour (UTC), the variability of the hourly rate beyond Poisson and the day-night cycle, the P
fraction, PhaseNet's hour-edge picks and P/S double picks; and the counts behind them, the
coherent picks being the pseudo-label candidates of the self-training loop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from catalogs.picks import station_index
from catalogs.schema import seconds_since
from calibration.reference import ReferenceEvents
from generator.network import Network
from generator.traveltimes import TravelTimes

# A pick this soon after a full hour is PhaseNet's artefact of hourly input files.
EDGE_WINDOW_S = 0.05
# Double picks: the same station reported with both labels within this time.
DUPLICATE_WINDOW_S = 0.1


def coherence_distance_km(reference: ReferenceEvents, network: Network) -> float:
    """Twice the median epicentral distance (km) of the reference events' picking stations: the
    farthest apart two stations picking a typical event are (module doc)."""
    picked = reference.selected_p | reference.selected_s
    distance = network.epicentral_km(reference.sources)
    return 2.0 * float(np.median(distance[picked])) if picked.any() else float("inf")


def pair_moveout_bounds(network: Network, travel_times: TravelTimes, statics: np.ndarray, padding_km: float = 20.0,
                        depth_max_km: float = 20.0, spacing_km: float = 5.0, tolerance_s: float = 1.0,
                        max_pair_km: float = float("inf")) -> np.ndarray:
    """``[M, M, 2]`` largest |arrival-time difference| (s) between two stations, P and S, over
    sources on a ``spacing_km`` grid of the padded network region (depths 0 to ``depth_max_km``),
    with statics ``[M, 2]``, plus ``tolerance_s``; -1 (no coincidence possible) for station pairs
    farther apart than ``max_pair_km``."""
    x0, x1, y0, y1 = network.region(padding_km)
    gx, gy, gz = np.meshgrid(np.arange(x0, x1 + spacing_km, spacing_km), np.arange(y0, y1 + spacing_km, spacing_km),
                             np.arange(0.0, depth_max_km + spacing_km, spacing_km), indexing="ij")
    sources = np.column_stack([gx.ravel(), gy.ravel(), gz.ravel()])
    m = len(network)
    spread = np.zeros((m, m, 2))
    # Grid chunks keep the [chunk, M, M, 2] differences near 8 M values on any network size.
    chunk = max(1, 8_000_000 // (2 * m * m))
    for lo in range(0, len(sources), chunk):
        arrival = travel_times(sources[lo:lo + chunk], network.xyz) + statics[None]  # [G, M, 2]
        np.maximum(spread, np.abs(arrival[:, :, None, :] - arrival[:, None, :, :]).max(0), out=spread)
    spread += tolerance_s
    spread[network.distances_km() > max_pair_km] = -1.0
    return spread


def coherent_picks(station: np.ndarray, time_s: np.ndarray, phase: np.ndarray, bounds: np.ndarray,
                   min_stations: int = 4) -> np.ndarray:
    """Boolean ``[K]``: picks with a pick of the same label on at least ``min_stations`` other
    stations within the pair's moveout bound (``bounds [M, M, 2]`` s). Arrays: station index,
    time (s), phase code (0 P, 1 S)."""
    k = len(time_s)
    if k == 0:
        return np.zeros(0, bool)
    order = np.argsort(time_s, kind="stable")
    t, sta, ph = time_s[order], station[order], phase[order]
    reach = float(bounds.max())
    lo = np.searchsorted(t, t - reach, side="left")
    hi = np.searchsorted(t, t + reach, side="right")
    n_pairs = hi - lo
    i = np.repeat(np.arange(k), n_pairs)
    j = lo[i] + (np.arange(n_pairs.sum()) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs))
    ok = (sta[i] != sta[j]) & (ph[i] == ph[j]) & (np.abs(t[i] - t[j]) <= bounds[sta[i], sta[j], ph[i]])
    i, other = i[ok], sta[j[ok]]
    m = int(bounds.shape[0])
    distinct = np.unique(i.astype(np.int64) * m + other)
    counts = np.bincount(distinct // m, minlength=k)
    out = np.zeros(k, bool)
    out[order] = counts >= min_stations
    return out


def _station_shifted(station: np.ndarray, time_s: np.ndarray, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Each station's times moved by its own offset (20-120 s, either sign), wrapped into the stretch."""
    offset = rng.uniform(20.0, 120.0, station.max() + 1) * rng.choice([-1.0, 1.0], station.max() + 1)
    return np.mod(time_s + offset[station], duration_s)


def fit_background(picks: pd.DataFrame, reference: ReferenceEvents, network: Network,
                   travel_times: TravelTimes | None = None, statics: np.ndarray | None = None,
                   min_stations: int = 4, seed: int = 0) -> dict:
    """Background parameters of the generator from the picks ``reference`` leaves unlabelled
    (module doc). ``statics [M, 2]`` (s, P and S; 0 when None) widen the moveout bounds. Without
    ``travel_times`` no pick is flagged as coherent."""
    labelled = np.zeros(len(picks), bool)
    labelled[reference.assignments["pick_index"].to_numpy(dtype=int)] = True
    sta = station_index(picks, network.stations, source="background fit")
    epoch = picks["time"].min().floor("h")
    seconds = seconds_since(picks["time"], epoch)
    hours = max((picks["time"].max() - epoch).total_seconds() / 3600.0, 1.0)
    n_sta = len(network)
    known = sta >= 0

    edge = known & (np.mod(seconds, 3600.0) < EDGE_WINDOW_S)
    phase_code = (picks["phase"].to_numpy() == "S").astype(np.int64)
    # P/S double picks: the same station with the other label within DUPLICATE_WINDOW_S.
    order = np.lexsort((seconds, sta))
    s_sorted, t_sorted, p_sorted = sta[order], seconds[order], phase_code[order]
    twin = (s_sorted[1:] == s_sorted[:-1]) & (p_sorted[1:] != p_sorted[:-1]) & \
        (np.diff(t_sorted) < DUPLICATE_WINDOW_S) & (s_sorted[1:] >= 0)

    free = (~labelled) & known & ~edge
    f_sta, f_t, f_ph = sta[free], seconds[free], phase_code[free]
    chance = np.zeros(n_sta)
    coherent = np.zeros(len(f_t), bool)
    pair_km = float("inf")
    if travel_times is not None and len(f_t):
        pair_km = coherence_distance_km(reference, network)
        bounds = pair_moveout_bounds(network, travel_times, np.zeros((n_sta, 2)) if statics is None else statics,
                                     max_pair_km=pair_km)
        coherent = coherent_picks(f_sta, f_t, f_ph, bounds, min_stations)
        rng = np.random.default_rng(seed)
        shifted = _station_shifted(f_sta, f_t, hours * 3600.0, rng)
        total = np.bincount(f_sta, minlength=n_sta)
        kept = np.bincount(f_sta[~coherent], minlength=n_sta)
        noise_count = total.astype(float)
        # The chance rate depends on the rate of the noise itself: start from all unlabelled picks
        # (too many), then thin the shifted stream to the noise estimated; two steps settle it.
        for _ in range(3):
            keep_fraction = noise_count / np.maximum(total, 1)
            sample = rng.random(len(f_t)) < keep_fraction[f_sta]
            by_chance = coherent_picks(f_sta[sample], shifted[sample], f_ph[sample], bounds, min_stations)
            chance = np.bincount(f_sta[sample][by_chance], minlength=n_sta) / np.maximum(
                np.bincount(f_sta[sample], minlength=n_sta), 1)
            noise_count = np.minimum(kept / np.maximum(1.0 - chance, 0.05), total)
    noise = ~coherent
    kept = np.bincount(f_sta[noise], minlength=n_sta)
    per_station = kept / np.maximum(1.0 - chance, 0.05) / hours
    active = per_station > 0

    # Day-night cycle and variability of the hourly network rate of the noise picks.
    hour_index = np.floor(f_t[noise] / 3600.0).astype(np.int64)
    hourly = np.bincount(hour_index, minlength=int(np.ceil(hours)))[: int(np.floor(hours))].astype(float)
    hour_of_day = (epoch.hour + np.arange(len(hourly))) % 24
    by_hour = np.bincount(hour_of_day, weights=hourly, minlength=24) / np.maximum(np.bincount(hour_of_day, minlength=24), 1)
    first = np.fft.rfft(by_hour)[1]
    amplitude = float(min(2.0 * np.abs(first) / 24.0 / max(by_hour.mean(), 1e-9), 0.95))
    peak_hour = float(np.mod(-np.angle(first) * 24.0 / (2 * np.pi) + 0.5, 24.0))
    cycle = 1.0 + amplitude * np.cos(2 * np.pi * (hour_of_day + 0.5 - peak_hour) / 24.0)
    usable = hourly > 0
    variability = 0.0
    if usable.sum() >= 6:
        ratio = np.log(hourly[usable] / cycle[usable])
        # Poisson scatter of a count n adds about 1/n to the variance of log n.
        variability = float(np.sqrt(max(ratio.var() - np.mean(1.0 / hourly[usable]), 0.0)))
    return {
        "background_rate_per_hour": float(per_station[active].mean()) if active.any() else 0.0,
        "background_rate_spread": float(np.log(per_station[active]).std()) if active.sum() > 1 else 0.0,
        "station_background": {str(sid): round(float(r), 3) for sid, r in zip(network.ids, per_station) if r > 0},
        "background_rate_variability": variability,
        "background_diurnal_amplitude": amplitude,
        "background_diurnal_peak_hour": peak_hour,
        "false_p_fraction": float((f_ph[noise] == 0).mean()) if noise.any() else 0.5,
        "edge_pick_rate_per_hour": float(min(edge.sum() / max(n_sta * hours, 1.0), 1.0)),
        "edge_p_fraction": float((phase_code[edge] == 0).mean()) if edge.any() else 1.0,
        "duplicate_rate": float(twin.sum() / max(known.sum(), 1)),
        "duplicate_spread_s": DUPLICATE_WINDOW_S,
        "hours": hours,
        "unlabelled_picks": int(free.sum()),
        "coherent_picks": int(coherent.sum()),
        "coherent_by_chance": int(round(float((per_station * hours - kept).sum()))),
        "coherence_pair_km": pair_km if np.isfinite(pair_km) else None,
        "edge_picks": int(edge.sum()),
        "double_picks": int(twin.sum()),
    }
