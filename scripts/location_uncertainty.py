"""How often the reported 1-sigma location uncertainties cover the location errors.

    python scripts/location_uncertainty.py --model demo_out/model --synth demo_out/synth \
        [--data ../shared/data]

Associates a synthetic day written by ``genie synth`` (``picks.csv`` with the truth's
``event_id``, ``events.csv``, ``stations.csv``) with ``genie.Associator`` and matches its events to
the true ones by picks (>= 60 % of the larger pick set shared); with ``--data``, associates the
real Salton Sea days too and matches them to SCSN by time and distance (``genie compare``'s
rule). Prints, per set, the fraction of events whose epicentral distance lies within 1, 2 and 3
horizontal semi-major axes and within the 1, 2 and 3-sigma error ellipses, whose depth and
origin-time differences lie within 1, 2 and 3 sigmas (:func:`catalogs.compare.uncertainty_coverage`),
and the median sigmas and differences. Against SCSN, whose own errors are not in its
catalog, the differences include those errors and the two velocity models'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalogs import read_catalog, read_picks, read_stations  # noqa: E402
from catalogs.compare import uncertainty_coverage  # noqa: E402
from catalogs.matching import match_catalogs  # noqa: E402
from catalogs.pick_overlap import match_by_picks  # noqa: E402
from catalogs.projection import epicentral_distance_km  # noqa: E402


def coverage(events: pd.DataFrame, truth: pd.DataFrame, ours, theirs) -> dict:
    """Fractions within 1 / 2 / 3 sigmas (:func:`catalogs.compare.uncertainty_coverage`) and
    the median sigmas and differences of the matched rows ``ours`` of ``events`` and
    ``theirs`` of ``truth``."""
    within = uncertainty_coverage(events, truth, ours, theirs)
    a, b = events.iloc[np.asarray(ours)], truth.iloc[np.asarray(theirs)]
    error = {"epicentre": epicentral_distance_km(a["latitude"].to_numpy(), a["longitude"].to_numpy(),
                                                 b["latitude"].to_numpy(), b["longitude"].to_numpy()),
             "depth": np.abs(a["depth_km"].to_numpy() - b["depth_km"].to_numpy()),
             "origin_time": np.abs((pd.DatetimeIndex(a["time"]) - pd.DatetimeIndex(b["time"])).total_seconds())}
    sigma = {"epicentre": a["horizontal_uncertainty_km"], "depth": a["depth_uncertainty_km"],
             "origin_time": a["time_uncertainty_s"]}
    row = {"events": len(a), "epicentre, ellipse": " / ".join(f"{w:.2f}" for w in within["epicentre"]["within"]),
           "epicentre, semi-major axis": " / ".join(
               f"{np.mean(error['epicentre'] <= k * sigma['epicentre'].to_numpy()):.2f}" for k in (1, 2, 3))}
    for name in ("depth", "origin_time"):
        row[name.replace("_", " ")] = " / ".join(f"{w:.2f}" for w in within[name]["within"])
    for name in sigma:
        row[f"median sigma / error, {name.replace('_', ' ')}"] = \
            f"{np.nanmedian(sigma[name].to_numpy(dtype='float64')):.2f} / {np.median(error[name]):.2f}"
    return row


def synthetic(associator, directory: Path) -> dict:
    picks, stations = read_picks(directory / "picks.csv"), read_stations(directory / "stations.csv")
    truth = pd.read_csv(directory / "events.csv")
    truth["time"] = pd.to_datetime(truth["time"], utc=True)
    events, assignments = associator.associate(picks, stations)
    predicted = np.full(len(picks), -1)
    predicted[assignments["pick_index"].to_numpy()] = pd.Index(events["event_id"]).get_indexer(assignments["event_id"])
    pairs = match_by_picks(picks["event_id"].to_numpy(dtype=np.int64), predicted)
    rows = pd.Index(truth["event_id"]).get_indexer(pairs["true_event"].to_numpy())
    return coverage(events, truth, pairs["pred_event"].to_numpy(), rows)


def real(associator, directory: Path) -> dict:
    picks, stations = read_picks(directory / "picks_phasenet.csv"), read_stations(directory / "stations.csv")
    reference = read_catalog(directory / "catalog_scsn.csv")
    events, _ = associator.associate(picks, stations)
    pairs = match_catalogs(events, reference)
    return coverage(events, reference, pairs["catalog_index"].to_numpy(), pairs["reference_index"].to_numpy())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory (genie train)")
    parser.add_argument("--synth", required=True, help="directory of genie synth (picks.csv, events.csv, stations.csv)")
    parser.add_argument("--data", help="directory holding salton_sea_2020/ (real picks and SCSN)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    synth = Path(args.synth)
    missing = [f for f in ("picks.csv", "events.csv", "stations.csv") if not (synth / f).is_file()]
    if missing:
        parser.error(f"{synth} lacks {missing}: not a directory of genie synth")
    salton = Path(args.data) / "salton_sea_2020" if args.data else None
    if salton is not None and not (salton / "picks_phasenet.csv").is_file():
        parser.error(f"{salton} has no picks_phasenet.csv")

    import torch

    from genie import Associator
    from scripts.markdown import markdown_table

    torch.set_num_threads(args.threads)
    associator = Associator.from_pretrained(args.model, device=args.device, progress=False)
    rows = {"synthetic day, truth": synthetic(associator, synth)}
    if salton is not None:
        rows["real days, SCSN"] = real(associator, salton)
    print("fraction within 1 / 2 / 3 sigma (a normal error: 0.68 / 0.95 / 0.997; a 2-D normal within the "
          "ellipse 0.39 / 0.86 / 0.99, within the semi-major axis at least that); medians in km and s")
    print(markdown_table(pd.DataFrame(rows).T))
    return 0


if __name__ == "__main__":
    sys.exit(main())
