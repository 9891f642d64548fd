"""Time to a first catalog on a new, large network: every stage timed from nothing.

Usage: python scripts/bench_new_network.py --out DIR [--threads 2] [--device cpu] [--resume]

Builds a 100-station network on a jittered 10 x 10 grid over 300 km x 300 km (central
California coordinates), a mid-crustal 1-D velocity model (7 layers, Moho at 32 km), and one day of
synthetic picks from the generator at default settings but for the event rate and depths
(``TRUTH``). The reference catalog is what an agency would list: the day's events with picks on at
least 5 stations. Then, with an empty travel-time cache, as a user would on a new network:

1. ``table``: the travel-time table for the network (and, for the issue's target, a 400 km x 40 km
   table at 1 km on one core; TauP's time for the same table is estimated from one depth);
2. ``calibrate``: ``genie calibrate`` against the reference catalog and the day's picks;
3. ``train``: ``genie train --config small`` (validation F1 on held-out synthetic picks);
4. ``associate``: ``genie associate`` on the day's picks;
5. ``compare``: the comparison with the reference catalog (``genie associate --reference``).

Prints one table (stage, seconds, result) and writes ``DIR/timings.json``. ``--resume`` keeps the
stages a killed run finished (their times are those recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalogs.fileio import write_csv_atomic, write_text_atomic  # noqa: E402
from catalogs.projection import LocalProjection  # noqa: E402
from catalogs.schema import format_times  # noqa: E402
from catalogs.stations import read_stations  # noqa: E402
from generator.network import Network  # noqa: E402
from generator.params import GeneratorParams  # noqa: E402
from generator.synthesize import generate, travel_time_extent  # noqa: E402
from generator.traveltimes import TravelTimes, layered_first_arrivals, taup_first_arrivals  # noqa: E402
from generator.velocity import VelocityModel  # noqa: E402

CENTRE = (36.5, -120.0)  # latitude, longitude of the grid centre
GRID, SPACING_KM, JITTER_KM = 10, 30.0, 8.0
VP = (4.0, 5.2, 5.9, 6.3, 6.7, 7.1, 7.9)
VELOCITY = VelocityModel((0.0, 1.5, 4.0, 10.0, 18.0, 25.0, 32.0), VP, tuple(v / 1.75 for v in VP), name="midcrust7")
TRUTH = {"event_rate_per_day": 1000.0, "depth_min_km": 2.0, "depth_max_km": 22.0}
REFERENCE_MIN_STATIONS = 5
START = "2021-06-01T00:00:00Z"


def make_network(rng: np.random.Generator) -> pd.DataFrame:
    """A jittered 10 x 10 grid (``SPACING_KM`` apart) in the station contract."""
    axis = (np.arange(GRID) - (GRID - 1) / 2) * SPACING_KM
    x, y = (a.ravel() for a in np.meshgrid(axis, axis))
    x, y = x + rng.uniform(-JITTER_KM, JITTER_KM, x.size), y + rng.uniform(-JITTER_KM, JITTER_KM, y.size)
    lat, lon = LocalProjection(*CENTRE).to_latlon(x, y)
    return pd.DataFrame({"station_id": [f"XX.S{i:03d}..HH" for i in range(x.size)], "latitude": lat,
                         "longitude": lon, "elevation_m": rng.uniform(0.0, 1500.0, x.size).round(0)})


def make_inputs(out: Path) -> dict:
    """Stations, velocity model, a day of picks and the reference catalog under ``out/inputs``."""
    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    stations = make_network(np.random.default_rng(0))
    write_csv_atomic(stations, inputs / "stations.csv")
    write_csv_atomic(VELOCITY.to_frame(), inputs / "velocity.csv")
    network = Network.from_stations(stations)
    params = GeneratorParams().replace(**TRUTH)
    # The synthetic day's own table lives apart from the timed cache.
    tt = TravelTimes.build(VELOCITY, *travel_time_extent(network, params), cache_dir=out / "truth_cache")
    picks, events = generate(network, tt, params, 86400.0, 1, start=START)
    write_csv_atomic(picks.assign(time=format_times(picks["time"])), inputs / "picks.csv")
    picked = picks[picks["event_id"] >= 0].groupby("event_id")["station_id"].nunique()
    picked.index = picked.index.astype(str)  # picks carry the generator's integer ids, events strings
    events = events.assign(n_stations=events["event_id"].map(picked).fillna(0).astype(int))
    reference = events[events["n_stations"] >= REFERENCE_MIN_STATIONS]
    columns = ["event_id", "time", "latitude", "longitude", "depth_km", "magnitude"]
    write_csv_atomic(reference[columns].assign(time=format_times(reference["time"])), inputs / "catalog.csv")
    return {"stations": len(stations), "picks": len(picks), "true_picks": int((picks["event_id"] >= 0).sum()),
            "events": len(events), "reference_events": len(reference)}


def table_stage(out: Path, cache: Path) -> dict:
    """The network's table from an empty cache, and the issue's 400 km x 40 km table timed alone."""
    network = Network.from_stations(read_stations(out / "inputs" / "stations.csv"))
    t0 = time.perf_counter()
    table = TravelTimes.build(VELOCITY, *travel_time_extent(network, GeneratorParams()), cache_dir=cache)
    network_s = time.perf_counter() - t0
    depths, distances = np.arange(41.0), np.arange(401.0)
    t0 = time.perf_counter()
    layered_first_arrivals(VELOCITY, depths, distances)
    big_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    taup_first_arrivals(VELOCITY, depths[10:11], distances[::20])
    taup_s = (time.perf_counter() - t0) * len(depths) * len(distances) / len(distances[::20])
    return {"seconds": network_s, "table_shape": list(table.times.shape), "table_400x40_s": big_s,
            "taup_400x40_estimate_s": taup_s}


def run_cli(argv: list[str]) -> None:
    from genie.cli import main

    code = main(argv)
    if code:
        raise SystemExit(f"genie {argv[0]} failed with exit code {code}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory (emptied unless --resume)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="torch device (default cpu)")
    parser.add_argument("--resume", action="store_true", help="keep the stages a previous run finished")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    record_path = out / "timings.json"
    if not args.resume and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    record = json.loads(record_path.read_text()) if args.resume and record_path.is_file() else {}
    cache = out / "cache"
    os.environ["GENIE_CACHE"] = str(cache)
    inputs = out / "inputs"
    common = ["--quiet", "--velocity-model", str(inputs / "velocity.csv"), "--cache", str(cache)]

    def stage(name: str, work) -> None:
        if name in record:
            print(f"{name}: kept from the earlier run ({record[name]['seconds']:.0f} s)")
            return
        t0 = time.perf_counter()
        result = work() or {}
        record[name] = {"seconds": time.perf_counter() - t0, **result}
        write_text_atomic(record_path, json.dumps(record, indent=2) + "\n")
        print(f"{name}: {record[name]['seconds']:.1f} s", flush=True)

    stage("inputs", lambda: make_inputs(out))
    stage("table", lambda: table_stage(out, cache))

    def calibrate():
        run_cli(["calibrate", "--stations", str(inputs / "stations.csv"), "--picks", str(inputs / "picks.csv"),
                 "--catalog", str(inputs / "catalog.csv"), "--out", str(out / "calibration"), *common])

    stage("calibrate", calibrate)

    def train():
        run_cli(["train", "--stations", str(inputs / "stations.csv"), "--config", "small", "--device", args.device,
                 "--generator-params", str(out / "calibration" / "generator_params.json"),
                 "--out", str(out / "model"), *common])
        history = json.loads((out / "model" / "history.json").read_text())
        meta = json.loads((out / "model" / "model.json").read_text())
        config = meta["config"]
        return {"validation": history[-1]["validation"], "n_sources": config["n_sources"],
                "label_sigma_km": config["label_sigma_km"], "max_distance_km": config["max_distance_km"]}

    stage("train", train)

    def associate():
        run_cli(["associate", "--picks", str(inputs / "picks.csv"), "--stations", str(inputs / "stations.csv"),
                 "--model", str(out / "model"), "--reference", str(inputs / "catalog.csv"), "--device", args.device,
                 "--out", str(out / "associate"), "--quiet"])
        run = json.loads((out / "associate" / "run.json").read_text())
        return {"association_s": run["timings_s"]["total_s"], "compare_s": run["timings_s"].get("compare_s", 0.0),
                "comparison": run["comparison"], "events": run["counts"].get("events", None)}

    stage("associate", associate)

    inp, tab, cal, trn, asc = (record[k] for k in ("inputs", "table", "calibrate", "train", "associate"))
    val, comp = trn["validation"], asc["comparison"]
    first_catalog = tab["seconds"] + cal["seconds"] + trn["seconds"] + asc["seconds"]
    rows = [
        ("travel-time table", tab["seconds"], f"{tab['table_shape'][1]} depths x {tab['table_shape'][2]} distances; "
         f"400 x 40 km at 1 km {tab['table_400x40_s']:.2f} s (TauP ~{tab['taup_400x40_estimate_s'] / 60:.0f} min)"),
        ("calibration", cal["seconds"], f"against {inp['reference_events']} reference events"),
        ("training small", trn["seconds"], f"{trn['n_sources']} source nodes, label {trn['label_sigma_km']:g} km, "
         f"pairs within {trn['max_distance_km'] or 'any'} km; validation F1 {val['f1']:.3f}"),
        ("association (1 day)", asc["association_s"], f"{inp['picks']} picks"),
        ("comparison", asc["compare_s"], f"recall {comp['recall']:.3f}, precision {comp['precision']:.3f} "
         f"against the reference"),
        ("nothing -> first catalog", first_catalog, f"{first_catalog / 60:.1f} min on {args.threads} CPU threads"
         if args.device == "cpu" else f"{first_catalog / 60:.1f} min on {args.device}"),
    ]
    print(f"\n{inp['stations']} stations, {inp['events']} events ({inp['reference_events']} in the reference), "
          f"{inp['picks']} picks ({inp['true_picks']} true) in one day")
    print(f"{'stage':<26} {'seconds':>8}  note")
    for name, seconds, note in rows:
        print(f"{name:<26} {seconds:>8.1f}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
