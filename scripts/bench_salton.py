"""Salton Sea benchmark: our associator, PyOcto and GaMMA on the same 62,314 real PhaseNet picks,
each compared with the SCSN catalog (one-to-one, 3 s and 15 km), and the false-detection check.

    python scripts/bench_salton.py --model demo_out/model [--data ../shared/data] [--skip-gamma] [--skip-genie]

Prints one table (markdown) and writes ``bench_salton.json`` next to it (``--out``):

* events, count ratio to SCSN, recall overall and at M >= 1.0 / 1.5 / 2.0 / 3.0, recall of the
  SCSN events with at least 6 labelled picks at M >= 1.5 (the pickable events), median epicentral
  and depth difference of matched events, associated picks, association wall time and picks/s;
* the false-detection check: the same picks with each station's picks shifted by its own
  random offset of 20-120 s (rates kept, moveout destroyed); events found there, and as a
  fraction of the events found on the real picks;
* the pickable-event ceiling: SCSN events with >= 4 and >= 6 picks labelled to them
  (:func:`calibration.reference.label_picks` with station statics) per magnitude bin.

Peers use their documented settings for a local network with the same 1-D model and statics
as ours (PyOcto: VelocityModel1D from our travel-time table, station residuals = our statics; GaMMA:
its own homogeneous model of its Salton Sea example, vp 6.0, vs = vp / 1.75, BGMM with DBSCAN);
their settings are printed beside the results. Peers are optional (``pip install .[bench]``);
missing ones are skipped. Timings are ratios within one run on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calibration.reference import label_picks  # noqa: E402
from catalogs.events import read_catalog  # noqa: E402
from catalogs.matching import match_catalogs  # noqa: E402
from catalogs.picks import read_picks, station_shifted  # noqa: E402
from catalogs.stations import read_stations  # noqa: E402
from genie.allocator import retain_freed_memory  # noqa: E402
from scripts.markdown import markdown_table  # noqa: E402
from scripts.peers import (GAMMA_SETTINGS, ONE_PASS_SETTINGS, PYOCTO_SETTINGS, run_gamma, run_genie,  # noqa: E402
                          run_pyocto)

MAGNITUDES = (1.0, 1.5, 2.0, 3.0)
def score(events: pd.DataFrame, n_assigned: int, seconds: float, scsn: pd.DataFrame, pickable: np.ndarray,
          n_picks: int) -> dict:
    """Comparison figures of one catalog against SCSN."""
    pairs = match_catalogs(events, scsn, max_dt_s=3.0, max_dist_km=15.0) if len(events) else pd.DataFrame(
        {"catalog_index": [], "reference_index": [], "distance_km": []})
    found = np.zeros(len(scsn), dtype=bool)
    found[pairs["reference_index"].to_numpy(dtype=int)] = True
    mag = scsn["magnitude"].to_numpy()
    row = {"events": len(events), "count_ratio": len(events) / len(scsn), "recall": found.mean()}
    for m in MAGNITUDES:
        row[f"recall_M{m:g}"] = found[mag >= m].mean()
    big = (mag >= 1.5) & pickable
    row["recall_pickable_M1.5"] = found[big].mean()
    row["recall_pickable_M2"] = found[(mag >= 2.0) & pickable].mean()
    if len(pairs):
        cat = events.iloc[pairs["catalog_index"].to_numpy(dtype=int)]
        ref = scsn.iloc[pairs["reference_index"].to_numpy(dtype=int)]
        row["median_epicentre_km"] = float(np.median(pairs["distance_km"]))
        row["median_depth_km"] = float(np.median(np.abs(cat["depth_km"].to_numpy() - ref["depth_km"].to_numpy())))
        if "magnitude" in events and events["magnitude"].notna().any():
            row["median_abs_dmag"] = float(np.nanmedian(np.abs(cat["magnitude"].to_numpy() - ref["magnitude"].to_numpy())))
    row.update(assigned_picks=n_assigned, seconds=seconds, picks_per_s=n_picks / max(seconds, 1e-9))
    return row


def ceiling(labelled: pd.DataFrame) -> pd.DataFrame:
    """SCSN events with >= 4 and >= 6 labelled picks per magnitude bin."""
    n = labelled["n_p"] + labelled["n_s"]
    bins = pd.cut(labelled["magnitude"], [0, 1.0, 1.5, 2.0, 3.0, 9.0], right=False)
    return pd.DataFrame({"events": labelled.groupby(bins, observed=False).size(),
                         ">=4 picks": (n >= 4).groupby(bins, observed=False).mean().round(3),
                         ">=6 picks": (n >= 6).groupby(bins, observed=False).mean().round(3)})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory (genie train; make demo: demo_out/model)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="shared data directory")
    parser.add_argument("--out", default="bench_out", help="directory for bench_salton.json")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every associator (default 2)")
    parser.add_argument("--device", default="cpu", help="device of our model (default cpu)")
    parser.add_argument("--skip-genie", action="store_true", help="only the peers (e.g. GaMMA in a run of its own)")
    parser.add_argument("--skip-pyocto", action="store_true")
    parser.add_argument("--skip-gamma", action="store_true", help="GaMMA takes about 20 minutes per run here")
    parser.add_argument("--gamma-max-picks", type=int, help="skip GaMMA above this many picks (default: no limit)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the station shifts")
    args = parser.parse_args(argv)
    retain_freed_memory()  # as the genie command does before reading data (genie.allocator)

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from genie.model import GenieModel

    salton = Path(args.data) / "salton_sea_2020"
    picks = read_picks(salton / "picks_phasenet.csv")
    stations = read_stations(salton / "stations.csv")
    scsn = read_catalog(salton / "catalog_scsn.csv")
    model = GenieModel.load(args.model)
    network, travel_times = model.network, model.travel_times
    labelled = label_picks(scsn, picks, network, travel_times, min_stations=0).events
    pickable = ((labelled["n_p"] + labelled["n_s"]) >= 6).to_numpy()
    fake = station_shifted(picks, args.seed)
    runs = {}

    def record(name, real, fake_result):
        events, pick_event, seconds = real
        n_assigned = int((pick_event >= 0).sum())
        row = score(events, n_assigned, seconds, scsn, pickable, len(picks))
        row["shifted_events"] = len(fake_result[0])
        row["shifted_fraction"] = len(fake_result[0]) / max(len(events), 1)
        row["shifted_seconds"] = fake_result[2]
        runs[name] = row
        print(f"{name}: {row['events']} events, recall {row['recall']:.3f}, {seconds:.1f} s; shifted: "
              f"{row['shifted_events']} events", flush=True)

    if not args.skip_genie:
        stages = {}
        real = run_genie(args.model, picks, stations, args.device, timings=stages)
        record("genie (this model)", real, run_genie(args.model, fake, stations, args.device))
        runs["genie (this model)"]["stages_s"] = {k: round(v, 2) for k, v in stages.items() if k.endswith("_s")}
        record("genie, 1 pass", run_genie(args.model, picks, stations, args.device, settings=ONE_PASS_SETTINGS),
               run_genie(args.model, fake, stations, args.device, settings=ONE_PASS_SETTINGS))
    if not args.skip_pyocto:
        try:
            import pyocto  # noqa: F401
        except ImportError:
            print("pyocto not installed (pip install .[bench]); skipped")
        else:
            statics = model.statics.cpu().numpy()
            record("PyOcto 1-D", run_pyocto(picks, network, travel_times, statics, args.threads),
                   run_pyocto(fake, network, travel_times, statics, args.threads))
    if args.gamma_max_picks is not None and len(picks) > args.gamma_max_picks:
        print(f"GaMMA skipped: {len(picks)} picks > --gamma-max-picks {args.gamma_max_picks}")
    elif not args.skip_gamma:
        try:
            import gamma  # noqa: F401
        except ImportError:
            print("gmma not installed (pip install .[bench]); skipped")
        else:
            record("GaMMA", run_gamma(picks, network, args.threads), run_gamma(fake, network, args.threads))

    table = pd.DataFrame(runs).T
    columns = ["events", "count_ratio", "recall", "recall_M1", "recall_M1.5", "recall_M2", "recall_M3",
               "recall_pickable_M1.5", "median_epicentre_km", "median_depth_km", "assigned_picks", "seconds",
               "picks_per_s", "shifted_events", "shifted_fraction"]
    print()
    print(f"SCSN: {len(scsn)} events; {len(picks)} picks; {args.threads} CPU threads")
    print(markdown_table(table[[c for c in columns if c in table]]))
    print()
    print("pickable-event ceiling (SCSN events with >= 4 / >= 6 labelled picks):")
    print(markdown_table(ceiling(labelled)))
    print(f"\nPyOcto settings: {PYOCTO_SETTINGS}\nGaMMA settings: {GAMMA_SETTINGS}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_salton.json").write_text(json.dumps(
        {"runs": runs, "ceiling": ceiling(labelled).reset_index().astype(str).to_dict("records"),
         "pyocto_settings": PYOCTO_SETTINGS, "gamma_settings": GAMMA_SETTINGS, "threads": args.threads},
        indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
