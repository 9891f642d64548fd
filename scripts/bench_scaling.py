"""Scale-out throughput: association on Dask workers, training on gloo ranks, and what a decade on
500 stations would take.

    python scripts/bench_scaling.py --model demo_out/benchmark/models/grid/model --days 7

1. A synthetic month (``--month-days``, 30) of picks on the benchmark's 10 x 10 station grid
   (``scripts/bench_scenarios.py``: 500 events/day, as many false picks as true ones) is written
   once as a Parquet pick dataset (``OUT/month/``, :mod:`catalogs.pickstore`).
2. Its first ``--days`` days are associated three times with the same model: in one process
   (``--threads`` torch threads, no Dask), on a Dask ``LocalCluster`` of 1 worker and of 2 workers
   (one thread each). Picks per second count the associated days' picks over the wall time of the
   whole run (cluster start and model loads included); the scaling efficiency is the 2-worker
   rate over twice the 1-worker rate. The three catalogs must be byte-identical.
3. Training: optimiser steps per second of ``genie train --config small`` on the same network, in
   one process (``--threads`` threads) and as 2 gloo ranks (``--nproc 2``, one thread each; a
   step there is two batches), and on CUDA when there is a GPU. The rate is taken between the
   first and last checkpoint, so start-up and validation are left out.
4. The projection: hours for a decade of picks on 500 stations from the measured per-worker rate,
   with its assumptions printed beside it.

Prints the tables (markdown) and writes ``OUT/scaling.json``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalogs.fileio import write_csv_atomic, write_text_atomic  # noqa: E402
from catalogs.pickstore import PickDataset, import_picks  # noqa: E402
from catalogs.schema import format_times  # noqa: E402
from generator.velocity import VelocityModel  # noqa: E402
from scripts.bench_scenarios import START, Scenario, generate, grid_stations  # noqa: E402
from scripts.markdown import markdown_table  # noqa: E402

RATE_PER_DAY, FALSE_RATIO, SEED = 500.0, 1.0, 40
DECADE_DAYS, DECADE_STATIONS = 3653, 500


def write_month(out: Path, days: int, cache: Path) -> PickDataset:
    """The synthetic month as a pick dataset in ``out`` (kept when it is already there)."""
    if (out / "dataset.json").is_file():
        dataset = PickDataset(out)
        if len(dataset.days) == days:
            return dataset
        shutil.rmtree(out)
    scenario = Scenario(f"grid {RATE_PER_DAY:g}/day, false x{FALSE_RATIO:g}, {days} days", "grid", RATE_PER_DAY,
                        FALSE_RATIO, hours=24.0 * days, seed=SEED)
    stations = grid_stations()
    network, events, picks = generate(scenario, VelocityModel.hadley_kanamori(), stations, cache)
    table = pd.DataFrame({"station_id": network.ids[picks["station"].to_numpy()],
                          "time": format_times(START + pd.to_timedelta(picks["time_s"], unit="s")),
                          "phase": np.array(["P", "S"])[picks["phase"].to_numpy()],
                          "score": picks["score"].round(3), "amplitude": picks["amplitude"]})
    import_picks([table], stations, out)
    print(f"wrote {len(table):,} picks of {len(events):,} events over {days} days to {out}/", flush=True)
    return PickDataset(out)


def associate(model: str, dataset: Path, out: Path, days: int, scheduler: str | None, workers: int | None,
              threads: int | None) -> dict:
    from genie.dayruns import associate_dataset

    shutil.rmtree(out, ignore_errors=True)
    first = PickDataset(dataset).days[0]
    end = str(first + pd.Timedelta(days=days))
    return associate_dataset(model, str(dataset), str(out), device="cpu", start=str(first), end=end,
                             scheduler=scheduler, workers=workers, threads=threads, progress=False)


def identical(a: Path, b: Path) -> bool:
    return all(filecmp.cmp(a / name, b / name, shallow=False) for name in ("events.csv", "assignments.csv"))


def training_rate(out: Path, stations: Path, params: str | None, nproc: int, device: str, steps: int,
                  cache: Path) -> dict:
    """Steps per second of ``genie train`` between its first and last checkpoint."""
    from genie.cli import main

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    every = max(steps // 5, 1)
    config = out / "config.json"
    config.write_text(json.dumps({"base": "small", "train": {"checkpoint_every": every, "validation_hours": 0.1}}))
    argv = ["train", "--stations", str(stations), "--config", str(config), "--steps", str(steps),
            "--out", str(out / "model"), "--device", device, "--nproc", str(nproc), "--cache", str(cache), "--quiet"]
    if params:
        argv += ["--generator-params", params]
    t0 = time.perf_counter()
    if main(argv):
        raise SystemExit("genie train failed")
    wall = time.perf_counter() - t0
    history = [h for h in json.loads((out / "model" / "history.json").read_text()) if "seconds" in h]
    first, last = history[0], history[-1]
    rate = (last["step"] - first["step"]) / max(last["seconds"] - first["seconds"], 1e-9)
    return {"ranks": nproc, "device": device, "steps": steps, "steps_per_s": rate,
            "batches_per_s": rate * nproc, "wall_s": wall}


def projection(picks_per_s_worker: float, efficiency: float, picks_per_station_day: float,
               cores_per_machine: int) -> tuple[list[dict], float]:
    """Hours for a decade on 500 stations by machine count (every core one worker)."""
    total = DECADE_DAYS * DECADE_STATIONS * picks_per_station_day
    rows = []
    for machines in (1, 10, 50, 200):
        workers = machines * cores_per_machine
        rate = picks_per_s_worker * workers * efficiency
        rows.append({"machines": machines, "workers (cores)": workers, "picks/s": f"{rate:,.0f}",
                     "hours": f"{total / rate / 3600.0:,.1f}", "days": f"{total / rate / 86400.0:,.2f}"})
    return rows, total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo_out/benchmark/models/grid/model",
                        help="a model trained on the benchmark grid (make benchmark writes one)")
    parser.add_argument("--generator-params", help="generator of the training runs (default: the model's)")
    parser.add_argument("--out", default="demo_out/scaling")
    parser.add_argument("--month-days", type=int, default=30, help="days of synthetic picks written (default 30)")
    parser.add_argument("--days", type=int, default=30, help="days of them associated per run (default 30)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the one-process runs (default 2)")
    parser.add_argument("--train-steps", type=int, default=50, help="training steps per measurement (default 50)")
    parser.add_argument("--picks-per-station-day", type=float, default=1000.0,
                        help="pick density assumed for the decade (default 1000: PhaseNet on a busy network)")
    parser.add_argument("--cores-per-machine", type=int, default=16)
    parser.add_argument("--cache", default=os.environ.get("GENIE_CACHE", str(Path.home() / ".cache" / "genie")))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    model = Path(args.model)
    if not (model / "model.json").is_file():
        raise SystemExit(f"{model}: no model (train one on the benchmark grid: make benchmark)")
    if not 1 <= args.days <= args.month_days:
        raise SystemExit(f"--days must be 1 to --month-days ({args.month_days}); got {args.days}")
    out, cache = Path(args.out), Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    dataset = write_month(out / "month", args.month_days, cache)
    n_picks = sum(dataset.day_counts[d.strftime("%Y-%m-%d")] for d in dataset.days[:args.days])

    runs, dirs = {}, []
    for name, scheduler, workers, threads in (("one process", None, None, args.threads),
                                              ("Dask, 1 worker", "local", 1, None),
                                              ("Dask, 2 workers", "local", 2, None)):
        dirs.append(out / "assoc" / name.replace(", ", "_").replace(" ", "_"))
        runs[name] = associate(str(model), out / "month", dirs[-1], args.days, scheduler, workers, threads)
        r = runs[name]
        print(f"{name}: {r['events']:,} events, {r['picks']:,} picks, {r['seconds']:.0f} s, "
              f"{r['picks_per_second']:.0f} picks/s", flush=True)
    same = all(identical(dirs[0], d) for d in dirs[1:])
    one, two = runs["Dask, 1 worker"]["picks_per_second"], runs["Dask, 2 workers"]["picks_per_second"]
    efficiency = two / (2 * one)

    params = args.generator_params or str(model / "generator_params.json")
    train_dir = out / "train"
    write_csv_atomic(grid_stations(), train_dir / "stations.csv")
    training = [training_rate(train_dir / "r1", train_dir / "stations.csv", params, 1, "cpu", args.train_steps, cache),
                training_rate(train_dir / "r2", train_dir / "stations.csv", params, 2, "cpu", args.train_steps, cache)]
    if torch.cuda.is_available():
        training.append(training_rate(train_dir / "cuda", train_dir / "stations.csv", params, 1, "cuda",
                                      args.train_steps, cache))
    rows, total = projection(one, min(efficiency, 1.0), args.picks_per_station_day, args.cores_per_machine)

    association_table = [{"run": name, "workers x threads": ("1 x %d" % args.threads) if r["scheduler"] == "none"
                          else f"{r['workers']} x 1", "days": r["days"], "picks": f"{r['picks']:,}",
                          "events": f"{r['events']:,}", "wall s": f"{r['seconds']:.0f}",
                          "picks/s": f"{r['picks_per_second']:.0f}"} for name, r in runs.items()]
    training_table = [{"ranks": t["ranks"], "device": t["device"] + (f" ({args.threads // t['ranks']} thread(s) each)"
                                                                      if t["device"] == "cpu" else ""),
                       "steps/s": f"{t['steps_per_s']:.2f}", "batches/s": f"{t['batches_per_s']:.2f}"}
                      for t in training]
    lines = [f"## Scaling ({platform.node()}, {os.cpu_count()} CPU cores, torch {torch.__version__})", "",
             f"Association of {args.days} of the {args.month_days} synthetic days ({n_picks:,} picks on 100 "
             f"stations, {RATE_PER_DAY:g} events/day, false picks x{FALSE_RATIO:g}), model `{model}`:", "",
             markdown_table(pd.DataFrame(association_table).set_index("run")), "",
             f"Scaling efficiency of 2 Dask workers: {efficiency:.2f} (2-worker rate / twice the 1-worker rate). "
             f"Catalogs of the three runs byte-identical: {'yes' if same else 'NO'}.", "",
             f"Training (`small` on the same network, {args.train_steps} steps per run):", "",
             markdown_table(pd.DataFrame(training_table).set_index("ranks")), "",
             f"A decade on {DECADE_STATIONS} stations at {args.picks_per_station_day:g} picks per station-day: "
             f"{total / 1e9:.2f} billion picks; {one:.0f} picks/s per one-thread worker (measured above), "
             f"parallel efficiency {min(efficiency, 1.0):.2f} at every scale (days are independent tasks), "
             f"{args.cores_per_machine} one-thread workers per machine, the per-pick cost of this network and pick "
             f"density ({n_picks / args.days / 100:,.0f} picks per station-day here; a 500-station model is sized to "
             "the same product-graph budget, but denser picks give more candidates per window), Parquet reads "
             "negligible (1.5 s for 62,314 picks):", "",
             markdown_table(pd.DataFrame(rows).set_index("machines"))]
    if not torch.cuda.is_available():
        lines += ["", "No GPU on this machine: CUDA training not measured."]
    print("\n".join(lines))
    record = {"days": args.days, "month_days": args.month_days, "picks": n_picks, "runs": runs,
              "identical": same, "efficiency": efficiency, "training": training,
              "decade_picks": total, "projection": rows, "wall_s": time.perf_counter() - started}
    write_text_atomic(out / "scaling.json", json.dumps(record, indent=2, default=str) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
