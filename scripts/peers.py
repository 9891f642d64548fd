"""Associators on our pick contract, run alike: ours, PyOcto and GaMMA (the peers optional,
``pip install .[bench]``).

Each runner (``run_genie``, ``run_pyocto``, ``run_gamma``) takes picks (``station_id, time, phase``, optional ``score, amplitude``), a
:class:`~generator.network.Network` and settings, and returns ``(events, pick_event, seconds)``:
events in the catalog contract (``event_id, time, latitude, longitude, depth_km, magnitude``),
``pick_event [N]`` the row of ``events`` each pick was assigned to (-1 unassociated), and the
association wall time (s). Settings are plain dicts, printed beside every result.

* PyOcto: ``VelocityModel1D`` from our travel-time table (the same 1-D model the other
  associators get), station residuals from statics; the documented thresholds of a local
  network with our acceptance rule's counts (``PYOCTO_SETTINGS``: 6 picks, 3 P, 1 station with
  P and S; ``time_before`` at least the longest S travel time).
* GaMMA: BGMM with DBSCAN pre-clustering, its 1-D eikonal travel times from the same layered
  model (``GAMMA_SETTINGS``; ``gamma_settings`` gives the homogeneous variant of GaMMA's Salton
  Sea example). GaMMA writes its eikonal scratch into the working directory: runners switch to
  a temporary one.
"""

from __future__ import annotations

import os
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from catalogs.picks import station_index
from catalogs.schema import seconds_since

PYOCTO_SETTINGS = dict(n_picks=6, n_p_picks=3, n_s_picks=2, n_p_and_s_picks=1, pick_match_tolerance=1.5,
                       min_node_size=10.0, min_node_size_location=1.5, time_before=40.0, min_interevent_time=3.0,
                       tolerance_s=1.0)
GAMMA_SETTINGS = dict(method="BGMM", oversample_factor=4, vp=6.0, vs=6.0 / 1.75, use_dbscan=True, dbscan_eps=10.0,
                      dbscan_min_samples=3, min_picks_per_eq=6, max_sigma11=2.0, max_sigma22=1.0, max_sigma12=1.0,
                      use_amplitude=True, eikonal=False)

EVENT_COLUMNS = ["event_id", "time", "latitude", "longitude", "depth_km", "magnitude"]


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in EVENT_COLUMNS})


# Our associator with one detection pass (DetectSettings.passes = 1): the faster setting the
# benchmarks run beside the default.
ONE_PASS_SETTINGS = {"passes": 1}


def run_genie(model_dir: str, picks: pd.DataFrame, stations: pd.DataFrame, device: str,
              timings: dict | None = None, settings: dict | None = None):
    """Our associator (``genie.Associator``) with the model in ``model_dir`` and its settings
    overridden by ``settings``; ``timings``, when given, receives its seconds per stage."""
    from genie import Associator

    associator = Associator.from_pretrained(model_dir, device=device, progress=False, **(settings or {}))
    t = time.perf_counter()
    events, assignments = associator.associate(picks, stations)
    seconds = time.perf_counter() - t
    if timings is not None:
        timings.update(associator.timings)
    pick_event = np.full(len(picks), -1)
    pick_event[assignments["pick_index"].to_numpy(dtype=np.int64)] = pd.Index(events["event_id"]).get_indexer(
        assignments["event_id"])
    return events[EVENT_COLUMNS], pick_event, seconds


def write_pyocto_table(travel_times, path: Path) -> None:
    """Our travel-time table in PyOcto's binary 1-D layout (``iid`` header nx, nz, delta, then P
    and S times ``[distance, depth]``)."""
    p = np.ascontiguousarray(travel_times.times[0].T, dtype=np.float64)
    s = np.ascontiguousarray(travel_times.times[1].T, dtype=np.float64)
    with open(path, "wb") as f:
        f.write(struct.pack("iid", p.shape[0], p.shape[1], float(travel_times.spacing_km)))
        f.write(p.tobytes())
        f.write(s.tobytes())


def run_pyocto(picks: pd.DataFrame, network, travel_times, statics: np.ndarray, threads: int,
               settings: dict | None = None, zlim: tuple = (0.0, 20.0)):
    """PyOcto on ``picks`` (module doc); ``statics [S, 2]`` s (P, S) in the network's order."""
    import pyocto

    s = {**PYOCTO_SETTINGS, **(settings or {})}
    pick_event = np.full(len(picks), -1)
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "model.bin"
        write_pyocto_table(travel_times, table)
        velocity = pyocto.VelocityModel1D(str(table), tolerance=s["tolerance_s"])
        x, y = network.xyz[:, 0], network.xyz[:, 1]
        associator = pyocto.OctoAssociator(
            xlim=(x.min() - 20, x.max() + 20), ylim=(y.min() - 20, y.max() + 20), zlim=tuple(zlim),
            velocity_model=velocity, time_before=s["time_before"], n_picks=s["n_picks"], n_p_picks=s["n_p_picks"],
            n_s_picks=s["n_s_picks"], n_p_and_s_picks=s["n_p_and_s_picks"],
            pick_match_tolerance=s["pick_match_tolerance"], min_node_size=s["min_node_size"],
            min_node_size_location=s["min_node_size_location"], min_interevent_time=s["min_interevent_time"],
            n_threads=threads)
        stations = pd.DataFrame({"id": network.ids, "x": x, "y": y, "z": network.xyz[:, 2],
                                 "p_residual": statics[:, 0], "s_residual": statics[:, 1]})
        sta = station_index(picks, network.stations)
        rows = np.flatnonzero(sta >= 0)
        table = pd.DataFrame({"station": network.ids[sta[rows]], "phase": picks["phase"].to_numpy()[rows],
                              "time": seconds_since(picks["time"].iloc[rows], pd.Timestamp(0, tz="UTC"))})
        t = time.perf_counter()
        events, assignments = associator.associate(table, stations)
        seconds = time.perf_counter() - t
    if len(events) == 0:
        return _empty(), pick_event, seconds
    # PyOcto numbers events by event_idx; rows of its events table follow that order.
    code = pd.Index(events["idx"].to_numpy() if "idx" in events else np.arange(len(events)))
    pick_event[rows[assignments["pick_idx"].to_numpy()]] = code.get_indexer(assignments["event_idx"].to_numpy())
    lat, lon = network.projection.to_latlon(events["x"].to_numpy(), events["y"].to_numpy())
    out = pd.DataFrame({"event_id": np.arange(len(events)).astype(str),
                        "time": pd.to_datetime(events["time"].to_numpy(), unit="s", utc=True),
                        "latitude": lat, "longitude": lon, "depth_km": events["z"].to_numpy(), "magnitude": np.nan})
    return out, pick_event, seconds


def run_gamma(picks: pd.DataFrame, network, threads: int, settings: dict | None = None, velocity=None,
              zlim: tuple = (0.0, 20.0)):
    """GaMMA on ``picks`` (module doc); with ``settings['eikonal']`` its eikonal travel times
    in the layered ``velocity`` (:class:`~generator.velocity.VelocityModel`), else homogeneous
    ``vp``, ``vs``."""
    from gamma.utils import association

    s = {**GAMMA_SETTINGS, **(settings or {})}
    pick_event = np.full(len(picks), -1)
    sta = station_index(picks, network.stations)
    rows = np.flatnonzero(sta >= 0)
    amplitude = picks["amplitude"] if "amplitude" in picks else pd.Series(np.nan, index=picks.index)
    score = picks["score"] if "score" in picks else pd.Series(1.0, index=picks.index)
    table = pd.DataFrame({"id": network.ids[sta[rows]],
                          "timestamp": picks["time"].iloc[rows].dt.tz_convert(None).to_numpy(),
                          "type": picks["phase"].str.lower().to_numpy()[rows],
                          "prob": score.to_numpy()[rows],
                          "amp": amplitude.fillna(1e-7).to_numpy()[rows]}, index=rows)
    x, y = network.xyz[:, 0], network.xyz[:, 1]
    stations = pd.DataFrame({"id": network.ids, "x(km)": x, "y(km)": y, "z(km)": network.xyz[:, 2]})
    config = {"dims": ["x(km)", "y(km)", "z(km)"], "use_dbscan": s["use_dbscan"], "use_amplitude": s["use_amplitude"],
              "x(km)": (x.min() - 20, x.max() + 20), "y(km)": (y.min() - 20, y.max() + 20), "z(km)": tuple(zlim),
              "method": s["method"], "oversample_factor": s["oversample_factor"],
              "vel": {"p": s["vp"], "s": s["vs"]}, "dbscan_eps": s["dbscan_eps"],
              "dbscan_min_samples": s["dbscan_min_samples"], "min_picks_per_eq": s["min_picks_per_eq"],
              "max_sigma11": s["max_sigma11"], "max_sigma22": s["max_sigma22"], "max_sigma12": s["max_sigma12"],
              "ncpu": threads}
    if s["eikonal"]:
        if velocity is None:
            raise ValueError("GaMMA's eikonal travel times need the layered velocity model")
        config["eikonal"] = {"vel": {"z": list(velocity.depth_km), "p": list(velocity.vp), "s": list(velocity.vs)},
                             "h": 1.0, "xlim": config["x(km)"], "ylim": config["y(km)"],
                             "zlim": (min(zlim[0], float(network.xyz[:, 2].min()) - 1.0), zlim[1])}
    config["bfgs_bounds"] = ((config["x(km)"][0] - 1, config["x(km)"][1] + 1),
                             (config["y(km)"][0] - 1, config["y(km)"][1] + 1), (zlim[0], zlim[1] + 1), (None, None))
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            t = time.perf_counter()
            events, assignments = association(table, stations, config, method=config["method"])
            seconds = time.perf_counter() - t
        finally:
            os.chdir(here)
    events = pd.DataFrame(events)
    if events.empty:
        return _empty(), pick_event, seconds
    code = pd.Index(events["event_index"].to_numpy())
    a = np.asarray(assignments, dtype=object)
    pick_event[a[:, 0].astype(np.int64)] = code.get_indexer(a[:, 1].astype(np.int64))
    lat, lon = network.projection.to_latlon(events["x(km)"].to_numpy(), events["y(km)"].to_numpy())
    out = pd.DataFrame({"event_id": np.arange(len(events)).astype(str),
                        "time": pd.to_datetime(events["time"], utc=True), "latitude": lat, "longitude": lon,
                        "depth_km": events["z(km)"].to_numpy(), "magnitude": events.get("magnitude", np.nan)})
    return out, pick_event, seconds
