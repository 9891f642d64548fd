"""Benchmark scenarios from a simple pick generator that is not ours (used by scripts/benchmark.py).

Our model trains on the calibrated generator (``generator/``); grading it on picks from the same
generator would grade it on its own training distribution. These picks follow the PyOcto
benchmark's recipe instead:

* events Poisson in time at ``rate_per_day``, uniform over the stations' box (``BOX_PADDING_KM``
  beyond it) and ``depth_km``, Gutenberg-Richter magnitudes (b = 1) from ``MAGNITUDE_MIN``
  (``aftershocks``: an M 6 at the box centre one hour in, followed by that many events in Omori-
  Utsu time, c = 60 s, p = 1.1, within ``AFTERSHOCK_RADIUS_KM`` of it, on top of the background);
* a station picks P with probability ``sigmoid((M - m50(r)) / DETECTION_WIDTH)`` at hypocentral
  distance ``r``, ``m50(r) = DETECTION_SLOPE * log10(r) + DETECTION_OFFSET`` (M 1 to about 30 km,
  M 2 to 80 km, M 3 to 200 km), and S likewise ``S_HANDICAP`` magnitude units harder;
* arrival times from the 1-D model with every velocity times ``velocity_scale`` (the mismatch
  cases: associators are given the unscaled model), Gaussian errors of ``TIMING_S`` (P, S);
* false picks, ``false_ratio`` per true pick, uniform over stations and time, P or S at random;
* amplitudes: peak ground velocities (m/s, the pick contract's unit, as PhaseNet's) from GaMMA's
  magnitude-distance law (:class:`catalogs.magnitude.MagnitudeScale`, Zhu et al. 2022) with a
  log-normal scatter of 0.3 (natural log), so associators that use them can.

Files per scenario (``write``): ``stations.csv``, ``picks.csv`` (the pick contract only: what an
associator reads), ``pick_truth.csv`` (row by row: ``event_id``, -1 for false picks, and
``true_phase``), ``events.csv`` (truth, with ``n_picks``), ``catalog.csv`` (the reference an agency would list:
events at or above the completeness magnitude, :func:`completeness`), ``velocity.csv`` (the model
the associators get) and ``scenario.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from catalogs.fileio import write_csv_atomic, write_text_atomic
from catalogs.magnitude import MagnitudeScale
from catalogs.schema import format_times
from catalogs.stations import read_stations
from generator.network import Network
from generator.traveltimes import TravelTimes
from generator.velocity import VelocityModel

START = pd.Timestamp("2022-03-01T00:00:00Z")
GRID_CENTRE = (35.5, -117.5)
MAGNITUDE_MIN, MAGNITUDE_MAX, B_VALUE = 0.5, 5.5, 1.0
DETECTION_SLOPE, DETECTION_OFFSET, DETECTION_WIDTH, S_HANDICAP = 2.4, -2.55, 0.2, 0.3
TIMING_S = (0.1, 0.2)
BOX_PADDING_KM = 10.0
AFTERSHOCK_RADIUS_KM, OMORI_C_S, OMORI_P = 8.0, 60.0, 1.1
COUNTED_MIN_PICKS = 6  # true events with fewer picks are not counted in recall (no associator's rules admit them)


@dataclass(frozen=True)
class Scenario:
    """One benchmark case (see module doc); ``network`` is ``grid`` (10 x 10 stations over
    2 x 2 degrees) or ``salton`` (the 16 Salton Sea stations of the shared data)."""

    name: str
    network: str
    rate_per_day: float
    false_ratio: float
    hours: float = 24.0
    velocity_scale: float = 1.0
    aftershocks: int = 0
    depth_km: tuple = (0.0, 30.0)
    seed: int = 0


def scenarios(hours: float = 24.0) -> list[Scenario]:
    """The issue's scenarios, ``hours`` long (the aftershock day is always 24 h)."""
    out = [Scenario(f"grid {rate:g}/day, false x{ratio:g}", "grid", rate, ratio, hours, seed=i)
           for i, (rate, ratio) in enumerate((r, f) for r in (50, 500, 2000) for f in (0.1, 1.0, 2.0))]
    # The denser grid case (it quotes PyOcto at F1 0.85 there).
    out.append(Scenario("grid 5000/day, false x2", "grid", 5000, 2.0, hours, seed=9))
    out += [Scenario(f"grid 500/day, picks from a {abs(s - 1) * 100:.0f} % {'faster' if s > 1 else 'slower'} model",
                     "grid", 500, 1.0, hours, velocity_scale=s, seed=10 + k) for k, s in enumerate((1.05, 0.95))]
    out.append(Scenario("grid aftershocks: M6 + 5,000 in a day", "grid", 50, 1.0, 24.0, aftershocks=5000, seed=20))
    out.append(Scenario("Salton Sea geometry, 531/day", "salton", 531, 1.0, hours, depth_km=(0.0, 15.0), seed=30))
    return out


def grid_stations() -> pd.DataFrame:
    """10 x 10 stations on a regular 2 x 2 degree grid (station contract)."""
    lat, lon = np.meshgrid(GRID_CENTRE[0] + np.linspace(-1, 1, 10), GRID_CENTRE[1] + np.linspace(-1, 1, 10))
    return pd.DataFrame({"station_id": [f"BM.G{i:02d}..HH" for i in range(100)], "latitude": lat.ravel(),
                         "longitude": lon.ravel(), "elevation_m": np.zeros(100)})


def stations_for(scenario: Scenario, data_dir: Path | None) -> pd.DataFrame:
    if scenario.network == "grid":
        return grid_stations()
    if data_dir is None:
        raise FileNotFoundError("the Salton Sea scenario needs the shared data directory (--data)")
    return read_stations(Path(data_dir) / "salton_sea_2020" / "stations.csv")


def scaled(model: VelocityModel, factor: float) -> VelocityModel:
    return VelocityModel(model.depth_km, tuple(v * factor for v in model.vp), tuple(v * factor for v in model.vs),
                         name=f"{model.name} x{factor:g}")


def _magnitudes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Truncated Gutenberg-Richter magnitudes (b = ``B_VALUE``)."""
    span = 1.0 - 10.0 ** (-B_VALUE * (MAGNITUDE_MAX - MAGNITUDE_MIN))
    return MAGNITUDE_MIN - np.log10(1.0 - rng.uniform(0, span, n)) / B_VALUE


def make_events(scenario: Scenario, network: Network, rng: np.random.Generator) -> pd.DataFrame:
    """Truth events: ``time_s`` (from START), ``x_km, y_km, depth_km, magnitude``."""
    duration = scenario.hours * 3600.0
    lo, hi = network.xyz[:, :2].min(0) - BOX_PADDING_KM, network.xyz[:, :2].max(0) + BOX_PADDING_KM
    n = rng.poisson(scenario.rate_per_day * scenario.hours / 24.0)
    t, xy = rng.uniform(0, duration, n), rng.uniform(lo, hi, (n, 2))
    z, m = rng.uniform(*scenario.depth_km, n), _magnitudes(rng, n)
    if scenario.aftershocks:
        k, t0, centre = scenario.aftershocks, 3600.0, (lo + hi) / 2
        # Omori-Utsu rate (t + c)^-p after the mainshock, truncated at the end of the day.
        a, b = OMORI_C_S ** (1 - OMORI_P), (duration - t0 + OMORI_C_S) ** (1 - OMORI_P)
        dt = (a + rng.uniform(0, 1, k) * (b - a)) ** (1 / (1 - OMORI_P)) - OMORI_C_S
        t = np.r_[t, t0, t0 + dt]
        xy = np.r_[xy, centre[None], centre + rng.normal(0, AFTERSHOCK_RADIUS_KM / 2, (k, 2))]
        z = np.r_[z, 10.0, np.clip(rng.normal(10.0, 4.0, k), 1.0, 25.0)]
        m = np.r_[m, 6.0, np.minimum(_magnitudes(rng, k), 5.5)]
    order = np.argsort(t, kind="stable")
    return pd.DataFrame({"time_s": t[order], "x_km": xy[order, 0], "y_km": xy[order, 1], "depth_km": z[order],
                         "magnitude": m[order]})


def make_picks(scenario: Scenario, network: Network, events: pd.DataFrame, travel_times: TravelTimes,
               rng: np.random.Generator) -> pd.DataFrame:
    """Picks (times in s from START): ``station, time_s, phase (0 P / 1 S), event (-1 false),
    amplitude, score``, sorted by time."""
    xyz = events[["x_km", "y_km", "depth_km"]].to_numpy()
    n_sta = len(network.ids)
    r = np.maximum(np.linalg.norm(xyz[:, None, :] - network.xyz[None, :, :], axis=-1), 1.0)  # [E, S]
    m50 = DETECTION_SLOPE * np.log10(r) + DETECTION_OFFSET
    mag = events["magnitude"].to_numpy()[:, None, None]
    p = 1.0 / (1.0 + np.exp(-(mag - (m50[..., None] + np.array([0.0, S_HANDICAP]))) / DETECTION_WIDTH))
    hit = rng.uniform(size=p.shape) < p  # [E, S, 2]
    e, s, k = np.nonzero(hit)
    tt = travel_times.paired(xyz[e], network.xyz[s], k)
    time_s = events["time_s"].to_numpy()[e] + tt + rng.normal(0.0, 1.0, len(e)) * np.asarray(TIMING_S)[k]
    law = MagnitudeScale()
    amp = law.amplitudes(events["magnitude"].to_numpy()[e], r[e, s]) * rng.lognormal(0.0, 0.3, len(e))
    duration = scenario.hours * 3600.0
    inside = (time_s >= 0) & (time_s < duration)
    e, s, k, time_s, amp = e[inside], s[inside], k[inside], time_s[inside], amp[inside]
    n_false = int(round(scenario.false_ratio * len(e)))
    false_amp = law.amplitudes(_magnitudes(rng, n_false), rng.uniform(5, 100, n_false))
    out = pd.DataFrame({"station": np.r_[s, rng.integers(0, n_sta, n_false)],
                        "time_s": np.r_[time_s, rng.uniform(0, duration, n_false)],
                        "phase": np.r_[k, rng.integers(0, 2, n_false)],
                        "event": np.r_[e, np.full(n_false, -1)],
                        "amplitude": np.r_[amp, false_amp],
                        "score": rng.uniform(0.3, 1.0, len(e) + n_false)})
    return out.sort_values("time_s", kind="stable").reset_index(drop=True)


def completeness(events: pd.DataFrame, picks: pd.DataFrame, share: float = 0.9, min_picks: int = 8) -> float:
    """The smallest magnitude (0.1 steps) from which on every 0.1 bin holding events has at
    least ``share`` of them with ``min_picks`` true picks: what an agency catalog lists
    completely."""
    n = np.bincount(picks["event"][picks["event"] >= 0], minlength=len(events))
    bins = np.floor(events["magnitude"].to_numpy() * 10).astype(int)
    good = pd.Series(n >= min_picks).groupby(bins).mean()
    bad = good.index[good < share]
    return (int(bad.max()) + 1) / 10 if len(bad) else MAGNITUDE_MIN


def generate(scenario: Scenario, velocity: VelocityModel, stations: pd.DataFrame, cache_dir=None):
    """``(network, events, picks)`` of a scenario (deterministic in its seed)."""
    network = Network.from_stations(stations)
    rng = np.random.default_rng(scenario.seed)
    events = make_events(scenario, network, rng)
    extent = float(np.linalg.norm(network.xyz[:, :2].max(0) - network.xyz[:, :2].min(0))) + 4 * BOX_PADDING_KM
    picks_model = scaled(velocity, scenario.velocity_scale) if scenario.velocity_scale != 1.0 else velocity
    tt = TravelTimes.build(picks_model, extent, scenario.depth_km[1] + 10.0, cache_dir=cache_dir)
    picks = make_picks(scenario, network, events, tt, rng)
    return network, events, picks


def write(scenario: Scenario, velocity: VelocityModel, stations: pd.DataFrame, out: Path, cache_dir=None) -> dict:
    """The scenario's files under ``out`` (module doc); returns its summary."""
    out.mkdir(parents=True, exist_ok=True)
    network, events, picks = generate(scenario, velocity, stations, cache_dir)
    lat, lon = network.projection.to_latlon(events["x_km"].to_numpy(), events["y_km"].to_numpy())
    n_picks = np.bincount(picks["event"][picks["event"] >= 0], minlength=len(events))
    truth = pd.DataFrame({"event_id": np.arange(len(events)).astype(str),
                          "time": format_times(START + pd.to_timedelta(events["time_s"], unit="s")),
                          "latitude": lat, "longitude": lon, "depth_km": events["depth_km"],
                          "magnitude": events["magnitude"].round(2), "n_picks": n_picks})
    mc = completeness(events, picks)
    write_csv_atomic(stations, out / "stations.csv")
    write_csv_atomic(truth, out / "events.csv")
    write_csv_atomic(truth[truth["magnitude"] >= mc].drop(columns="n_picks"), out / "catalog.csv")
    write_csv_atomic(velocity.to_frame(), out / "velocity.csv")
    is_true = picks["event"].to_numpy() >= 0
    table = pd.DataFrame({"station_id": network.ids[picks["station"].to_numpy()],
                          "time": format_times(START + pd.to_timedelta(picks["time_s"], unit="s")),
                          "phase": np.array(["P", "S"])[picks["phase"].to_numpy()],
                          "score": picks["score"].round(3), "amplitude": picks["amplitude"]})
    write_csv_atomic(table, out / "picks.csv")
    write_csv_atomic(pd.DataFrame({"event_id": picks["event"].to_numpy(),
                                   "true_phase": np.where(is_true, table["phase"], "")}), out / "pick_truth.csv")
    summary = {**dataclasses.asdict(scenario), "events": len(events), "picks": len(picks),
               "true_picks": int((picks["event"] >= 0).sum()), "counted_events": int((n_picks >= COUNTED_MIN_PICKS).sum()),
               "completeness_magnitude": mc, "reference_events": int((truth["magnitude"] >= mc).sum())}
    write_text_atomic(out / "scenario.json", json.dumps(summary, indent=2) + "\n")
    return summary

