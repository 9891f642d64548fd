"""Assembling synthetic picks with their truth: events -> travel times -> selections -> picks.

Output picks follow the data contract (``station_id, time, phase, score, amplitude``) plus truth
columns ``event_id`` (-1 for false picks), ``true_phase`` (the arrival's phase; ``""`` for false
picks) and ``pick_type`` (``arrival``, ``coda``, ``background``, ``spike``, ``edge``, ``incoherent``,
``duplicate``). Events follow the
contract (``event_id`` as str) plus ``x_km, y_km, n_p, n_s, burst_id`` and ``origin_s`` (seconds
from the start).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from generator.amplitudes import arrival_amplitudes, station_terms
from generator.detection import sample_selections
from generator.events import sample_events
from generator.false_picks import background_picks, coda_picks, duplicate_picks, edge_picks, flip_phases, spike_picks
from generator.network import Network
from generator.params import GeneratorParams
from generator.timing import arrival_errors
from generator.traveltimes import TravelTimes

# Events are processed in blocks so that the [events, stations, 2] arrays stay small for long runs.
EVENT_BLOCK = 20_000


def _scores(n: int, beta: tuple, params: GeneratorParams, rng: np.random.Generator) -> np.ndarray:
    return params.score_min + (1.0 - params.score_min) * rng.beta(beta[0], beta[1], n)


def travel_time_extent(network: Network, params: GeneratorParams) -> tuple[float, float]:
    """Table extent (max distance, max depth; km) covering events in the padded region of both
    ``params`` and the default parameters, so that calibration (which starts from the defaults),
    training and association on one network share one cached table, and locations may go
    deeper than the calibrated event depths."""
    def extent(p: GeneratorParams) -> tuple[float, float]:
        x0, x1, y0, y1 = network.region(p.region_padding_km + p.reference_jitter_km)
        return float(np.hypot(x1 - x0, y1 - y0)) + 5.0, float(p.depth_max_km) + 5.0

    (d1, z1), (d0, z0) = extent(params), extent(GeneratorParams())
    return max(d0, d1), max(z0, z1)


def _event_picks(events: pd.DataFrame, network: Network, travel_times: TravelTimes, params: GeneratorParams,
                 terms: np.ndarray, statics: np.ndarray, rng: np.random.Generator):
    """Arrivals of ``events``: ``(event, station, true phase, time_s, amplitude)`` per pick and the
    P and S counts per event."""
    parts, n_p, n_s = [], np.zeros(len(events), int), np.zeros(len(events), int)
    for lo in range(0, len(events), EVENT_BLOCK):
        block = events.iloc[lo:lo + EVENT_BLOCK]
        src = block[["x_km", "y_km", "depth_km"]].to_numpy()
        tt = travel_times(src, network.xyz)
        sel = sample_selections(network, src, block["magnitude"].to_numpy(), params, rng)
        arrival = (block["origin_s"].to_numpy()[:, None, None] + tt + statics[None]
                   + arrival_errors(tt, network, params, rng))
        hyp = np.sqrt(((src[:, None, :] - network.xyz[None, :, :]) ** 2).sum(-1))
        amp = arrival_amplitudes(block["magnitude"].to_numpy(), hyp, terms, params, rng)
        chosen = np.stack([sel.p, sel.s], axis=-1)
        ev, sta, ph = np.nonzero(chosen)
        n_p[lo:lo + len(block)] = sel.p.sum(1)
        n_s[lo:lo + len(block)] = sel.s.sum(1)
        parts.append((ev + lo, sta, ph.astype(np.int8), arrival[ev, sta, ph], amp[ev, sta, ph]))
    ev, sta, true_phase, t, amp = (np.concatenate([p[k] for p in parts]) if parts else np.zeros(0)
                                   for k in range(5))
    return ev.astype(np.int64), sta.astype(np.int64), true_phase.astype(np.int8), t, amp, n_p, n_s


def incoherent_picks(network: Network, travel_times: TravelTimes, params: GeneratorParams, duration_s: float,
                     terms: np.ndarray, statics: np.ndarray, rng: np.random.Generator,
                     reference: pd.DataFrame | None = None):
    """False picks that look like arrivals at each station but line up across none: the picks of
    ``incoherent_fraction`` x the event rate of further events, each station's shifted by its own
    offset, uniform within ``+-incoherent_shift_s`` (wrapped into the stretch). A station keeps its
    P-S pairs and its rate, the network loses the moveout: what a real stream holds from
    uncatalogued, distant or overlapping events, and exactly what the false-detection check
    (station-shifted picks) feeds an associator. ``(station, time_s, label)``."""
    empty = np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64)
    if params.incoherent_fraction <= 0 or duration_s <= 0:
        return empty
    extra = sample_events(network, params.replace(event_rate_per_day=params.event_rate_per_day * params.incoherent_fraction,
                                                  burst_rate_per_day=0.0), duration_s, rng, reference)
    _, sta, phase, t, _, _, _ = _event_picks(extra, network, travel_times, params, terms, statics, rng)
    offset = rng.uniform(-params.incoherent_shift_s, params.incoherent_shift_s, len(network))
    return sta, np.mod(t + offset[sta], duration_s), phase.astype(np.int64)


def generate(stations, travel_times: TravelTimes, params: GeneratorParams, duration,
             rng: np.random.Generator | int, start="2020-01-01T00:00:00Z",
             reference: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic ``(picks, events)`` for ``duration`` (s, or a Timedelta) from ``start`` (UTC).

    ``stations``: contract DataFrame or :class:`Network`; ``travel_times`` must cover the padded
    region (see :func:`travel_time_extent`); ``reference``: optional events table guiding where
    events are placed. Deterministic for a given seed.
    """
    rng = np.random.default_rng(rng)
    network = stations if isinstance(stations, Network) else Network.from_stations(stations)
    duration_s = duration.total_seconds() if isinstance(duration, pd.Timedelta) else float(duration)
    start = pd.Timestamp(start)
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    n_sta = len(network)

    events = sample_events(network, params, duration_s, rng, reference)
    terms = station_terms(n_sta, params, rng)
    statics = params.statics_for(network.ids)
    ev, sta, true_phase, t, amp, n_p, n_s = _event_picks(events, network, travel_times, params, terms, statics, rng)
    label = flip_phases(true_phase, params, rng)
    c_sta, c_t, c_ph = coda_picks(sta, t, label, params, rng)
    start_hour = (start - start.floor("D")).total_seconds() / 3600.0
    b_sta, b_t, b_ph = background_picks(network.ids, duration_s, params, rng, start_hour)
    s_sta, s_t, s_ph = spike_picks(n_sta, duration_s, params, rng)
    e_sta, e_t, e_ph = edge_picks(n_sta, duration_s, params, rng, start_hour)
    i_sta, i_t, i_ph = incoherent_picks(network, travel_times, params, duration_s, terms, statics, rng, reference)
    # The picker's double picks come from any pick it made, true or false.
    parts = [(sta, t, label), (c_sta, c_t, c_ph), (b_sta, b_t, b_ph), (s_sta, s_t, s_ph), (e_sta, e_t, e_ph),
             (i_sta, i_t, i_ph)]
    all_sta, all_t, all_ph = (np.concatenate([p[k] for p in parts]) for k in range(3))
    d_sta, d_t, d_ph = duplicate_picks(all_sta.astype(np.int64), all_t, all_ph.astype(np.int8), params, rng)
    parts.append((d_sta, d_t, d_ph))
    n_true = len(t)
    n_false = sum(len(p[1]) for p in parts) - n_true
    noise_amp = params.noise_amplitude * 10.0 ** rng.normal(0.0, 0.3, n_false)

    picks = pd.DataFrame({
        "station_id": network.ids[np.concatenate([p[0] for p in parts]).astype(np.int64)],
        "time_s": np.concatenate([p[1] for p in parts]),
        "phase": np.array(["P", "S"])[np.concatenate([p[2] for p in parts]).astype(np.int64)],
        "score": np.concatenate([_scores(n_true, params.true_score_beta, params, rng),
                                 _scores(n_false, params.false_score_beta, params, rng)]),
        "amplitude": np.concatenate([amp, noise_amp]),
        "event_id": np.concatenate([ev, np.full(n_false, -1)]),
        "true_phase": np.concatenate([np.array(["P", "S"])[true_phase], np.full(n_false, "")]),
        "pick_type": np.repeat(["arrival", "coda", "background", "spike", "edge", "incoherent", "duplicate"],
                               [len(p[1]) for p in parts]),
    })
    picks = picks[(picks["time_s"] >= 0.0) & (picks["time_s"] < duration_s)]
    picks = picks.sort_values(["time_s", "station_id", "phase"], kind="stable").reset_index(drop=True)
    picks.insert(1, "time", start + pd.to_timedelta(np.round(picks["time_s"].to_numpy() * 1e9), unit="ns"))
    picks["time"] = picks["time"].dt.as_unit("ns")
    picks = picks.drop(columns="time_s")

    lat, lon = network.projection.to_latlon(events["x_km"], events["y_km"])
    out = pd.DataFrame({
        "event_id": np.arange(len(events)).astype(str),
        "time": (start + pd.to_timedelta(np.round(events["origin_s"].to_numpy() * 1e9), unit="ns")).as_unit("ns"),
        "latitude": lat,
        "longitude": lon,
        "depth_km": events["depth_km"].to_numpy(),
        "magnitude": events["magnitude"].to_numpy(),
        "x_km": events["x_km"].to_numpy(),
        "y_km": events["y_km"].to_numpy(),
        "n_p": n_p,
        "n_s": n_s,
        "burst_id": events["burst_id"].to_numpy(),
        "origin_s": events["origin_s"].to_numpy(),
    })
    return picks, out
