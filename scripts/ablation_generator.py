"""Does calibrating the generator help on real picks? The generator ablation on the Salton Sea days.

    python scripts/ablation_generator.py [--data ../shared/data] [--out demo_out/ablation] [--config small]

Trains the same model (same configuration, seed and steps) on three generators and associates
the two real days with each:

* (a) the default generator (:class:`generator.params.GeneratorParams` defaults);
* (b) the generator as calibrated before the synthetic-to-real work
  (``scripts/ablation_params/calibrated_before_issue11.json``, the ``make demo`` calibration of
  that time: independent P/S selection, normal timing errors, background rate taken as a median,
  uncatalogued arrivals counted as noise, catalog event rate);
* (c) the generator calibrated now (``genie calibrate``; run here into ``--out/calibration_new``
  unless ``--new-params`` is given).

A model directory ``--out/model_{a,b,c}`` that already holds ``model.pt`` is reused (so a run
can resume, or take a model trained elsewhere with the same settings). Each catalog is compared
with SCSN (one-to-one within 3 s and 15 km): recall overall and at M >= 1.0 / 1.5 / 2.0, recall
of the pickable events (>= 6 labelled picks, M >= 1.5), count ratio, median epicentre and depth
differences, events per hour against SCSN's (mean, and the correlation of the hourly counts),
and the events found on the same picks with each station shifted in time (moveout destroyed).
The generator side is scored too: the calibration objective of each parameter set on the real
selections, synthetic picks per station-hour against real (worst station) and P/S co-selection.
Prints a markdown table and writes ``ablation.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calibration.budget import picks_per_station_hour, simulate_rates  # noqa: E402
from calibration.metrics import co_selection  # noqa: E402
from calibration.objective import Objective  # noqa: E402
from calibration.reference import label_picks  # noqa: E402
from catalogs.events import read_catalog  # noqa: E402
from catalogs.matching import match_catalogs  # noqa: E402
from catalogs.picks import read_picks, station_shifted  # noqa: E402
from catalogs.stations import read_stations  # noqa: E402
from generator.params import GeneratorParams  # noqa: E402
from scripts.bench_salton import score  # noqa: E402
from scripts.markdown import markdown_table  # noqa: E402

BEFORE = ROOT / "scripts" / "ablation_params" / "calibrated_before_issue11.json"


def hourly(events: pd.DataFrame, start: pd.Timestamp, hours: int) -> np.ndarray:
    """Events per hour ``[hours]`` from ``start``."""
    index = ((events["time"] - start).dt.total_seconds() // 3600).to_numpy(dtype=int)
    return np.bincount(index[(index >= 0) & (index < hours)], minlength=hours)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="shared data directory")
    parser.add_argument("--out", default="demo_out/ablation", help="models, calibration and ablation.json")
    parser.add_argument("--config", default="small", help="training configuration (default small)")
    parser.add_argument("--before-params", default=str(BEFORE), help="generator (b)")
    parser.add_argument("--new-params", help="generator (c); calibrated into --out/calibration_new when absent")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="training seed and seed of the station shifts")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from genie import Associator
    from genie.cli import main as genie_main
    from genie.model import GenieModel

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    salton = Path(args.data) / "salton_sea_2020"
    files = {"stations": salton / "stations.csv", "picks": salton / "picks_phasenet.csv",
             "catalog": salton / "catalog_scsn.csv"}
    new_params = Path(args.new_params) if args.new_params else out / "calibration_new" / "generator_params.json"
    if not new_params.is_file():
        genie_main(["calibrate", "--stations", str(files["stations"]), "--picks", str(files["picks"]),
                    "--catalog", str(files["catalog"]), "--out", str(new_params.parent), "--seed", str(args.seed),
                    "--quiet"])
    default_path = out / "params_default.json"
    GeneratorParams().to_json(default_path)
    variants = {"a": ("(a) default generator", default_path), "b": ("(b) calibrated before", Path(args.before_params)),
                "c": ("(c) calibrated now", new_params)}

    picks = read_picks(files["picks"])
    stations = read_stations(files["stations"])
    scsn = read_catalog(files["catalog"])
    fake = station_shifted(picks, args.seed)
    start = picks["time"].min().floor("h")
    hours = int(np.ceil((picks["time"].max() - start).total_seconds() / 3600.0))
    scsn_hourly = hourly(scsn, start, hours)
    rows, reference, objective = {}, None, None
    for key, (label, params_path) in variants.items():
        model_dir = out / f"model_{key}"
        if not (model_dir / "model.pt").is_file():
            genie_main(["train", "--stations", str(files["stations"]), "--generator-params", str(params_path),
                        "--config", args.config, "--out", str(model_dir), "--seed", str(args.seed), "--quiet"])
        model = GenieModel.load(model_dir)
        if reference is None:
            labelled = label_picks(scsn, picks, model.network, model.travel_times, min_stations=0).events
            pickable = ((labelled["n_p"] + labelled["n_s"]) >= 6).to_numpy()
            reference = label_picks(scsn, picks, model.network, model.travel_times)
            objective = Objective.from_reference(model.network, reference, seed=args.seed)
        associator = Associator.from_pretrained(model_dir, device="cpu", progress=False)
        t = time.perf_counter()
        events, assignments = associator.associate(picks, stations)
        seconds = time.perf_counter() - t
        fake_events, _ = Associator.from_pretrained(model_dir, device="cpu", progress=False).associate(fake, stations)
        row = score(events, len(assignments), seconds, scsn, pickable, len(picks))
        ours = hourly(events, start, hours)
        row.update(events_per_hour=ours.mean(), scsn_per_hour=scsn_hourly.mean(),
                   hourly_correlation=float(np.corrcoef(ours, scsn_hourly)[0, 1]),
                   shifted_events=len(fake_events), shifted_fraction=len(fake_events) / max(len(events), 1))
        params = GeneratorParams.from_json(params_path)
        row["objective"] = objective(params)
        arrivals, noise = simulate_rates(model.network, model.travel_times, params, hours * 3600.0, start,
                                         reference.events, args.seed)
        real_rates = picks_per_station_hour(picks, model.network.ids, hours)
        ratio = (arrivals + noise) / np.maximum(real_rates, 1e-9)
        row["picks_per_station_hour_ratio_min"], row["picks_per_station_hour_ratio_max"] = ratio.min(), ratio.max()
        sel = objective.synthetic(params)
        seen = (sel.p | sel.s).sum(1) >= objective.min_stations
        cs = co_selection(sel.p[seen], sel.s[seen])
        row.update({f"syn_{k}": v for k, v in cs.items()})
        rows[label] = row
        print(f"{label}: {row['events']} events, recall {row['recall']:.3f}, shifted {row['shifted_events']}", flush=True)
    real_cs = co_selection(objective.reference.selected_p, objective.reference.selected_s)
    table = pd.DataFrame(rows).T
    columns = ["recall", "recall_M1", "recall_M1.5", "recall_M2", "recall_pickable_M1.5", "events", "count_ratio",
               "median_epicentre_km", "median_depth_km", "events_per_hour", "hourly_correlation", "shifted_events",
               "shifted_fraction", "objective", "picks_per_station_hour_ratio_min", "picks_per_station_hour_ratio_max",
               "syn_s_given_p", "syn_s_given_no_p", "syn_correlation"]
    print()
    print(f"SCSN: {len(scsn)} events, {scsn_hourly.mean():.1f} per hour; real P/S co-selection: P(S|P) "
          f"{real_cs['s_given_p']:.3f}, P(S|no P) {real_cs['s_given_no_p']:.3f}, correlation {real_cs['correlation']:.3f}")
    print(markdown_table(table[columns]))
    (out / "ablation.json").write_text(json.dumps({"runs": rows, "real_co_selection": real_cs,
                                                   "scsn_per_hour": float(scsn_hourly.mean())}, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
