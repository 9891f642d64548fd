"""Our associator, PyOcto and GaMMA on the same scenarios in one run: quality, speed and memory.

    python scripts/benchmark.py --quick                  # two scenarios, one short training: < 20 min
    python scripts/benchmark.py --doc docs/benchmarks.md # every scenario, full training, the real data

Scenarios (``scripts/bench_scenarios.py``, fixed seeds) are written first as files any
associator can read (``OUT/scenarios/<name>/``). Ours is used as a user would use it, per station
network: ``genie calibrate`` against the reference catalog (events at or above the completeness
magnitude, not the picks' truth) of a separate day of the network's calibration scenario (its own
seed: the user's data, not the test picks), ``genie train --config small``, then
``genie associate`` on every scenario of that network; calibration and training are timed apart
from association. PyOcto and GaMMA get the same 1-D velocity model and their settings of
``scripts/peers.py`` (written beside the results; ``time_before`` at least the network's longest S
travel time).

Metrics (:mod:`catalogs.pick_overlap`): a predicted event matches a true one when they share at
least 60 % of the larger pick set; event precision, recall (true events with at least
``COUNTED_MIN_PICKS`` picks) and F1, pick-assignment precision and recall, median epicentral,
depth and origin-time errors of matched events, association wall time, picks per second, and the
peak resident memory of the process that ran it (each run in a fresh process, imports included).
All on ``--threads`` CPU threads (2 by default). GaMMA is skipped on scenarios, and on the real
days, with more than ``--gamma-max-picks`` picks (its time grows fast: ~20 min for 62,000 Salton
Sea picks); a run still going after ``--max-minutes`` (15) is stopped and reported unfinished.

The real data (full run, ``--salton-model``): ``scripts/bench_salton.py`` (the SCSN comparison of
the association issue) on the same threads; its table is appended.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shutil
import sys
import time
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalogs.fileio import write_text_atomic  # noqa: E402
from catalogs.pick_overlap import overlap_scores  # noqa: E402
from catalogs.picks import read_picks  # noqa: E402
from catalogs.projection import epicentral_distance_km  # noqa: E402
from catalogs.schema import InputError  # noqa: E402
from catalogs.stations import read_stations  # noqa: E402
from generator.network import Network  # noqa: E402
from generator.traveltimes import TravelTimes  # noqa: E402
from generator.velocity import VelocityModel  # noqa: E402
from genie.allocator import retain_freed_memory  # noqa: E402
from genie.train import load_config  # noqa: E402
from scripts.bench_scenarios import COUNTED_MIN_PICKS, scenarios, stations_for, write  # noqa: E402
from scripts.markdown import markdown_table  # noqa: E402
from scripts.peers import GAMMA_SETTINGS, ONE_PASS_SETTINGS, PYOCTO_SETTINGS  # noqa: E402

QUICK = ("grid 500/day, false x1", "grid 2000/day, false x2")
ONE_PASS = "genie, 1 pass"  # our associator with peers.ONE_PASS_SETTINGS
# --associators names (no commas or spaces) of the runs, in the order of the tables.
ASSOCIATOR_OPTIONS = {"genie": "genie", "genie-1pass": ONE_PASS, "pyocto": "pyocto", "gamma": "gamma"}
ALL_ASSOCIATORS = tuple(ASSOCIATOR_OPTIONS.values())
CALIBRATION = {"grid": "grid 500/day, false x1", "salton": "Salton Sea geometry, 531/day"}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


# --- runs in a fresh process each: peak memory of that run alone ---------------------------------

def _child(kind: str, kwargs: dict, threads: int):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    from scripts import peers

    if kind.startswith("genie"):
        result = peers.run_genie(**kwargs)
    else:
        result = getattr(peers, f"run_{kind}")(**kwargs, threads=threads)
    return result, _peak_mb()


def _peak_mb() -> float:
    """Peak resident memory (MB) of this process since it started. ``VmHWM`` of the process's own
    memory map: ``ru_maxrss`` would carry over the parent's peak across the spawn's exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child_to(pipe, kind: str, kwargs: dict, threads: int) -> None:
    try:
        pipe.send(("ok", _child(kind, kwargs, threads)))
    except BaseException as exc:  # reported by the parent, which raises it
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()


def isolated(kind: str, kwargs: dict, threads: int, timeout_s: float | None = None):
    """``(events, pick_event, seconds), peak_mb`` of one associator run in a fresh process, or
    ``None`` when it is still running after ``timeout_s`` (then killed)."""
    context = get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child_to, args=(send, kind, kwargs, threads))
    process.start()
    send.close()
    if not receive.poll(timeout_s):
        process.kill()
        process.join()
        return None
    try:
        status, value = receive.recv()
    except EOFError:
        status, value = "error", "the process died"
    process.join()
    if status == "error":
        raise RuntimeError(f"{kind}: {value}")
    return value


# --- stages ---------------------------------------------------------------------------------------

def run_cli(argv: list[str]) -> None:
    from genie.cli import main

    code = main(argv)
    if code:
        raise SystemExit(f"genie {argv[0]} failed with exit code {code}")


def train_network(out: Path, scenario_dir: Path, steps: int | None, device: str,
                  validation_hours: float | None = None, config: str = "small") -> dict:
    """Calibrate against the scenario's reference catalog and train ``config`` (a named
    configuration or a ``genie train --config`` file; model in ``out``; ``validation_hours`` of
    synthetic validation instead of the configuration's)."""
    common = ["--quiet", "--velocity-model", str(scenario_dir / "velocity.csv"), "--cache", str(out.parent / "cache")]
    t0 = time.perf_counter()
    run_cli(["calibrate", "--stations", str(scenario_dir / "stations.csv"), "--picks", str(scenario_dir / "picks.csv"),
             "--catalog", str(scenario_dir / "catalog.csv"), "--out", str(out / "calibration"), *common])
    t1 = time.perf_counter()
    if validation_hours is not None:
        base = json.loads(Path(config).read_text()) if Path(config).is_file() else {"base": config}
        base.setdefault("train", {})["validation_hours"] = validation_hours
        config = str(out / "train_config_override.json")
        write_text_atomic(Path(config), json.dumps(base))
    run_cli(["train", "--stations", str(scenario_dir / "stations.csv"), "--config", config, "--device", device,
             "--generator-params", str(out / "calibration" / "generator_params.json"), "--out", str(out / "model"),
             *common, *(["--steps", str(steps)] if steps else [])])
    t2 = time.perf_counter()
    validation = json.loads((out / "model" / "history.json").read_text())[-1]["validation"]
    return {"calibration_s": t1 - t0, "training_s": t2 - t1, "validation_f1": validation["f1"],
            "steps": steps or 4000}


def score(events: pd.DataFrame, pick_event: np.ndarray, seconds: float, peak_mb: float, truth: pd.DataFrame,
          true_event: np.ndarray) -> dict:
    """The module's metrics for one run."""
    counted = truth["n_picks"].to_numpy() >= COUNTED_MIN_PICKS
    s = overlap_scores(true_event, pick_event, counted)
    pairs = s.pop("pairs")
    row = {k: s[k] for k in ("precision", "recall", "f1", "pick_precision", "pick_recall", "n_pred", "n_true")}
    if len(pairs):
        pred = events.iloc[pairs["pred_event"].to_numpy()]
        true = truth.iloc[pairs["true_event"].to_numpy()]
        row["epicentre_km"] = float(np.median(epicentral_distance_km(
            pred["latitude"].to_numpy(), pred["longitude"].to_numpy(), true["latitude"].to_numpy(),
            true["longitude"].to_numpy())))
        row["depth_km"] = float(np.median(np.abs(pred["depth_km"].to_numpy() - true["depth_km"].to_numpy())))
        dt = (pd.to_datetime(pred["time"], utc=True).to_numpy() - pd.to_datetime(true["time"], utc=True).to_numpy())
        row["origin_s"] = float(np.median(np.abs(dt / np.timedelta64(1, "s"))))
    row.update(seconds=seconds, picks_per_s=len(true_event) / max(seconds, 1e-9), peak_mb=peak_mb)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench_out/benchmark", help="working directory (default bench_out/benchmark)")
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK}, training 1,600 steps, validating on 3 h")
    parser.add_argument("--hours", type=float, default=6.0,
                        help="length of the Poisson scenarios, rates still per day (default 6; the aftershock day is 24)")
    parser.add_argument("--steps", type=int, help="training steps (default: the configuration's 4,000; quick 1,600)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="shared data directory")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every associator (default 2)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device of our model (default cpu)")
    parser.add_argument("--gamma-max-picks", type=int, default=30000,
                        help="skip GaMMA above this many picks (the real Salton Sea days too)")
    parser.add_argument("--skip-gamma", action="store_true")
    parser.add_argument("--max-minutes", type=float, default=15.0,
                        help="stop an associator run after this many minutes and record it as unfinished (default 15)")
    parser.add_argument("--salton-model", help="model for the real Salton Sea days (make demo: demo_out/model)")
    parser.add_argument("--doc", help="write the tables as markdown here (e.g. docs/benchmarks.md)")
    parser.add_argument("--resume", action="store_true", help="keep scenario files, models and runs already done")
    parser.add_argument("--config", default="small",
                        help="our training configuration: a name or a genie train --config file (default small)")
    parser.add_argument("--associators", default=",".join(ASSOCIATOR_OPTIONS),
                        help=f"comma-separated subset of {','.join(ASSOCIATOR_OPTIONS)} (default all)")
    parser.add_argument("--networks", default="grid,salton",
                        help="comma-separated scenario networks to run: grid, salton (default both)")
    args = parser.parse_args(argv)
    given = {name.strip() for name in args.associators.split(",")}
    networks = {name.strip() for name in args.networks.split(",")}
    # Checked before the working directory is touched (without --resume it is emptied).
    unknown = sorted((given - set(ASSOCIATOR_OPTIONS)) | (networks - set(CALIBRATION)))
    if unknown:
        parser.error(f"unknown associator(s) or network(s) {unknown}: associators {list(ASSOCIATOR_OPTIONS)}, "
                     f"networks {sorted(CALIBRATION)}")
    wanted = {ASSOCIATOR_OPTIONS[name] for name in given}
    try:
        load_config(args.config)  # genie train's own reading: a bad name, file or setting stops here
    except InputError as error:
        parser.error(str(error))
    retain_freed_memory()  # as the genie command does before reading data (genie.allocator)

    import torch

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    hours = args.hours
    steps = args.steps or (1600 if args.quick else None)
    out = Path(args.out)
    if out.exists() and not args.resume:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "runs.json"
    record = json.loads(record_path.read_text()) if args.resume and record_path.is_file() else {}
    record.setdefault("scenarios", {})
    record.setdefault("models", {})
    record.setdefault("runs", {})

    def save():
        write_text_atomic(record_path, json.dumps(record, indent=2, default=float) + "\n")

    velocity = VelocityModel.hadley_kanamori()
    chosen = [s for s in scenarios(hours) if (not args.quick or s.name in QUICK) and s.network in networks]
    data = Path(args.data) if Path(args.data).is_dir() else None
    if data is None:
        skipped = [s.name for s in chosen if s.network == "salton"]
        chosen = [s for s in chosen if s.network != "salton"]
        if skipped:
            print(f"no shared data at {args.data}: skipped {skipped}")
    for s in chosen:
        if s.name not in record["scenarios"]:
            record["scenarios"][s.name] = write(s, velocity, stations_for(s, data), out / "scenarios" / slug(s.name),
                                                cache_dir=out / "cache")
            save()

    # Ours: one calibrated, trained model per network (none when only the peers run).
    ours = bool(wanted & {"genie", ONE_PASS})
    for network in sorted({s.network for s in chosen} if ours else ()):
        if network not in record["models"]:
            # A day of the calibration scenario with a seed of its own: the user's data, not the test picks.
            base = next(s for s in scenarios(24.0) if s.name == CALIBRATION[network])
            cal = dataclasses.replace(base, name=f"{base.name} (calibration day)", seed=base.seed + 100)
            if cal.name not in record["scenarios"]:
                record["scenarios"][cal.name] = write(cal, velocity, stations_for(cal, data),
                                                      out / "scenarios" / slug(cal.name), cache_dir=out / "cache")
            print(f"{network}: calibrating on '{cal.name}' and training {args.config}", flush=True)
            record["models"][network] = {"scenario": cal.name, **train_network(
                out / "models" / network, out / "scenarios" / slug(cal.name), steps, args.device,
                3.0 if args.quick else None, args.config)}
            save()

    peers = {name: name in wanted for name in ALL_ASSOCIATORS}
    peers["gamma"] &= not args.skip_gamma
    for name, module in (("pyocto", "pyocto"), ("gamma", "gamma")):
        try:
            if peers[name]:
                __import__(module)
        except ImportError:
            peers[name] = False
            print(f"{name} not installed (pip install .[bench]); skipped")
    for s in chosen:
        d = out / "scenarios" / slug(s.name)
        picks, stations = read_picks(d / "picks.csv"), read_stations(d / "stations.csv")
        truth = pd.read_csv(d / "events.csv")
        true_event = pd.read_csv(d / "pick_truth.csv")["event_id"].to_numpy(dtype=np.int64)
        network = Network.from_stations(stations)
        zlim = (0.0, float(s.depth_km[1]))
        reach = float(np.linalg.norm(network.xyz[:, :2].max(0) - network.xyz[:, :2].min(0))) + 40.0
        tt = TravelTimes.build(velocity, reach, zlim[1] + 10.0, cache_dir=out / "cache")
        longest_s = float(tt.times[1].max())
        genie = dict(model_dir=str(out / "models" / s.network / "model"), picks=picks, stations=stations,
                     device=args.device)
        jobs = {"genie": genie, ONE_PASS: {**genie, "settings": ONE_PASS_SETTINGS},
                "pyocto": dict(picks=picks, network=network, travel_times=tt, statics=np.zeros((len(network.ids), 2)),
                               settings={"time_before": max(PYOCTO_SETTINGS["time_before"], longest_s)}, zlim=zlim),
                "gamma": dict(picks=picks, network=network, settings={"eikonal": True}, velocity=velocity, zlim=zlim)}
        for name, job in jobs.items():
            key = f"{s.name} | {name}"
            if not peers[name] or key in record["runs"]:
                continue
            if name == "gamma" and len(picks) > args.gamma_max_picks:
                record["runs"][key] = {"skipped": f"{len(picks)} picks > {args.gamma_max_picks}"}
                continue
            result = isolated(name, job, args.threads, args.max_minutes * 60.0)
            if result is None:
                record["runs"][key] = {"skipped": f"unfinished after {args.max_minutes:g} min (stopped)"}
                print(f"{key}: {record['runs'][key]['skipped']}", flush=True)
                save()
                continue
            (events, pick_event, seconds), peak = result
            record["runs"][key] = score(events, pick_event, seconds, peak, truth, true_event)
            r = record["runs"][key]
            print(f"{key}: F1 {r['f1']:.3f} (P {r['precision']:.3f}, R {r['recall']:.3f}), {seconds:.1f} s, "
                  f"{peak:.0f} MB", flush=True)
            save()

    record["wall_s"] = record.get("wall_s", 0.0) + time.perf_counter() - started
    save()
    lines = report(record, args, hours, steps)
    if args.salton_model and data is not None:
        from scripts import bench_salton

        bench_salton.main(["--model", args.salton_model, "--data", str(data), "--out", str(out),
                           "--threads", str(args.threads), "--device", args.device,
                           "--gamma-max-picks", str(args.gamma_max_picks)]
                          + (["--skip-gamma"] if args.skip_gamma else []))
        real = json.loads((out / "bench_salton.json").read_text())
        lines += ["", "## Real data: the Salton Sea days against SCSN", "",
                  f"`python scripts/bench_salton.py --model {args.salton_model}` in the same run (one-to-one "
                  "matching, 3 s and 15 km; shifted = the same picks with each station shifted by 20-120 s):", "",
                  markdown_table(pd.DataFrame(real["runs"]).T[["events", "count_ratio", "recall", "recall_M1.5",
                                                                "recall_M2", "median_epicentre_km", "seconds",
                                                                "picks_per_s", "shifted_events"]])]
    text = "\n".join(lines) + "\n"
    print(text)
    write_text_atomic(out / "benchmark.md", text)
    if args.doc:
        write_text_atomic(Path(args.doc), text)
    return 0


def report(record: dict, args, hours: float, steps) -> list[str]:
    """The markdown tables: one row per scenario and associator, then models and settings."""
    rows = []
    # Scenarios in the order of the list (a resumed run may have written one added to it last),
    # the calibration days after them.
    listed = [s.name for s in scenarios(hours)]
    scenario_order = sorted(record["scenarios"], key=lambda n: listed.index(n) if n in listed else len(listed))
    peer_order = list(ALL_ASSOCIATORS)

    def position(key: str) -> tuple[int, int]:
        scenario, name = key.split(" | ")
        return scenario_order.index(scenario), peer_order.index(name)

    # Scenario by scenario, ours first, whatever order the runs were made in (a resumed run redoes some).
    for key in sorted(record["runs"], key=position):
        r = record["runs"][key]
        scenario, name = key.split(" | ")
        if "skipped" in r:
            rows.append({"scenario": scenario, "associator": name, "F1": "-", "note": r["skipped"]})
            continue
        rows.append({"scenario": scenario, "associator": name, "F1": f"{r['f1']:.3f}",
                     "precision": f"{r['precision']:.3f}", "recall": f"{r['recall']:.3f}",
                     "pick P": f"{r['pick_precision']:.3f}", "pick R": f"{r['pick_recall']:.3f}",
                     "epi km": f"{r.get('epicentre_km', np.nan):.2f}", "depth km": f"{r.get('depth_km', np.nan):.2f}",
                     "origin s": f"{r.get('origin_s', np.nan):.2f}", "seconds": f"{r['seconds']:.1f}",
                     "picks/s": f"{r['picks_per_s']:.0f}", "peak MB": f"{r['peak_mb']:.0f}", "note": ""})
    columns = ["scenario", "associator", "F1", "precision", "recall", "pick P", "pick R", "epi km", "depth km",
               "origin s", "seconds", "picks/s", "peak MB", "note"]
    table = pd.DataFrame(rows, columns=columns).fillna("").set_index("scenario")
    sc = pd.DataFrame(record["scenarios"]).T.loc[scenario_order][
        ["events", "counted_events", "picks", "true_picks", "completeness_magnitude", "reference_events"]]
    models = pd.DataFrame(record["models"]).T
    versions = {}
    for package in ("torch", "pyocto", "gmma", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return [
        "# Benchmark: genie, PyOcto and GaMMA on the same picks",
        "",
        f"Command: `python scripts/benchmark.py {' '.join(sys.argv[1:])}`; {args.threads} CPU threads; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible; Python "
        f"{platform.python_version()}; " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        f"Scenarios of {hours:g} h (the aftershock day 24 h) from `scripts/bench_scenarios.py`; a predicted event "
        f"matches a true one when they share >= 60 % of the larger pick set; recall over true events with >= "
        f"{COUNTED_MIN_PICKS} picks. Times are association wall times (our calibration and training below).",
        "",
        markdown_table(table),
        "",
        "Scenarios:",
        "",
        markdown_table(sc),
        "",
        f"Our models (calibrated against the reference catalog of the named scenario, `{args.config}`, "
        f"{steps or 4000} steps):",
        "",
        markdown_table(models),
        "",
        f"PyOcto settings: {PYOCTO_SETTINGS} (time_before raised to the longest S travel time of the network); "
        f"1-D model from our travel-time table.",
        f"GaMMA settings: {({**GAMMA_SETTINGS, 'eikonal': True})}: its eikonal 1-D travel times in the same layered "
        "model (vp, vs unused).",
        "",
        f"Wall time of the whole run: {record.get('wall_s', float('nan')) / 60:.1f} min (scenario files, our "
        "calibration and training, every association).",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
