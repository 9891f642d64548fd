"""What our associator's errors on one benchmark scenario are made of.

    python scripts/scenario_errors.py --scenario OUT/scenarios/grid_2000_day__false_x2 \
        --model OUT/models/grid/model [--settings '{"passes": 1}']

Runs ``genie.Associator`` (the model's settings, overridden by ``--settings``, JSON names of
``AssociatorSettings``/``DetectSettings``) on a scenario written by ``scripts/bench_scenarios.py``
(``picks.csv``, ``pick_truth.csv``, ``stations.csv``, ``events.csv``), scores it as
``scripts/benchmark.py`` does (pick overlap, true events with >= 6 picks counted) and prints the
false events and the missed events with what they are made of
(:func:`catalogs.pick_overlap.error_tables`): a false event made mostly of a matched event's
picks is a fragment or a split half of it; one mixing false picks with a few picks of neighbours
is a chance combination; a missed event without assigned picks was never detected.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_scenarios import COUNTED_MIN_PICKS  # noqa: E402
from catalogs import read_picks, read_stations  # noqa: E402
from catalogs.pick_overlap import error_tables, overlap_scores  # noqa: E402
from peers import run_genie  # noqa: E402

FILES = ("picks.csv", "pick_truth.csv", "stations.csv", "events.csv")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", required=True, help="scenario directory (scripts/bench_scenarios.py)")
    parser.add_argument("--model", required=True, help="model directory (genie train)")
    parser.add_argument("--settings", default="{}", help="JSON object of associator settings overriding the model's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    scenario = Path(args.scenario)
    missing = [f for f in FILES if not (scenario / f).is_file()]
    if missing:
        parser.error(f"{scenario} lacks {missing}: not a scenario of scripts/bench_scenarios.py")
    if not (Path(args.model) / "model.json").is_file():
        parser.error(f"{args.model} has no model.json: not a model directory")
    try:
        settings = json.loads(args.settings)
    except json.JSONDecodeError as err:
        parser.error(f"--settings is not JSON: {err}")
    if not isinstance(settings, dict):
        parser.error("--settings must be a JSON object")

    import torch

    torch.set_num_threads(args.threads)
    picks, stations = read_picks(scenario / "picks.csv"), read_stations(scenario / "stations.csv")
    truth = pd.read_csv(scenario / "events.csv")
    true_event = pd.read_csv(scenario / "pick_truth.csv")["event_id"].to_numpy(dtype=np.int64)
    counted = truth["n_picks"].to_numpy() >= COUNTED_MIN_PICKS
    _, pick_event, seconds = run_genie(args.model, picks, stations, args.device, settings=settings)
    s = overlap_scores(true_event, pick_event, counted)
    print(f"{scenario.name}: F1 {s['f1']:.3f} (precision {s['precision']:.3f}, recall {s['recall']:.3f}), "
          f"picks {s['pick_precision']:.3f} / {s['pick_recall']:.3f}, {s['n_pred']} events, {seconds:.1f} s")
    false, missed = error_tables(true_event, pick_event, counted)
    print(f"\n{len(false)} false events: {int(false['main_matched'].sum())} hold most of their true picks from an "
          f"event another one matched; {int((false['n_false'] > 0).sum())} hold false picks")
    if len(false):
        print(false.to_string(index=False))
    truth_cols = [c for c in ("time", "magnitude", "depth_km") if c in truth]
    missed = missed.join(truth[truth_cols], on="true_event")
    print(f"\n{len(missed)} missed events: {int((missed['n_assigned'] == 0).sum())} with no pick assigned; "
          f"median {float(missed['n_picks'].median()) if len(missed) else 0:g} picks")
    if len(missed):
        print(missed.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
