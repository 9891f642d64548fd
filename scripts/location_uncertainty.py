"""How often the reported 1-sigma location uncertainties cover the location errors.

    python scripts/location_uncertainty.py --model demo_out/model --synth demo_out/synth \
        [--data ../shared/data]

Associates a synthetic day written by ``genie synth`` (``picks.csv`` with the truth's
``event_id``, ``events.csv``, ``stations.csv``) with ``genie.Associator`` and matches its events to
the true ones by picks (>= 60 % of the larger pick set shared); with ``--data``, associates the
real Salton Sea days too and matches them to SCSN by time and distance (``genie compare``'s
rule). Prints, per set, the fraction of events whose epicentral distance lies within 1, 2 and 3
horizontal semi-major axes and within the 1, 2 and 3-sigma error ellipses, whose depth and
origin-time differences lie within 1, 2 and 3 sigmas, and the median sigmas and differences. Against SCSN, whose own errors are not in its
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
from catalogs.matching import match_catalogs  # noqa: E402
from catalogs.pick_overlap import match_by_picks  # noqa: E402
from catalogs.projection import epicentral_distance_km  # noqa: E402

SIGMAS = (1, 2, 3)
KM_PER_DEGREE = 111.195


def ellipse_sigmas(events: pd.DataFrame, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """``[E]`` the other epicentres' distances from ours in units of our error ellipse (the
    Mahalanobis distance: 1 on the 1-sigma ellipse), east and north offsets from degrees."""
    north = (np.asarray(latitude) - events["latitude"].to_numpy()) * KM_PER_DEGREE
    east = (np.asarray(longitude) - events["longitude"].to_numpy()) * KM_PER_DEGREE \
        * np.cos(np.radians(events["latitude"].to_numpy()))
    azimuth = np.radians(events["azimuth_max_horizontal_uncertainty_deg"].to_numpy(dtype="float64"))
    along = east * np.sin(azimuth) + north * np.cos(azimuth)
    across = east * np.cos(azimuth) - north * np.sin(azimuth)
    return np.hypot(along / events["horizontal_uncertainty_km"].to_numpy(dtype="float64"),
                    across / events["min_horizontal_uncertainty_km"].to_numpy(dtype="float64"))


def coverage(distance_km: np.ndarray, ddepth_km: np.ndarray, dt_s: np.ndarray, events: pd.DataFrame,
             ellipse: np.ndarray) -> dict:
    """Fractions within 1, 2, 3 sigmas and medians for matched ``events`` (our rows, in the order
    of the differences; ``ellipse`` from :func:`ellipse_sigmas`)."""
    sigma = {"epicentre": events["horizontal_uncertainty_km"].to_numpy(dtype="float64"),
             "depth": events["depth_uncertainty_km"].to_numpy(dtype="float64"),
             "origin time": events["time_uncertainty_s"].to_numpy(dtype="float64")}
    error = {"epicentre": np.asarray(distance_km), "depth": np.abs(ddepth_km), "origin time": np.abs(dt_s)}
    row = {"events": len(events),
           "epicentre, ellipse": " / ".join(f"{np.mean(ellipse <= k):.2f}" for k in SIGMAS)}
    for name in sigma:
        within = [np.mean(error[name] <= k * sigma[name]) for k in SIGMAS]
        row[name] = " / ".join(f"{w:.2f}" for w in within)
        row[f"median sigma / error, {name}"] = f"{np.nanmedian(sigma[name]):.2f} / {np.median(error[name]):.2f}"
    return row


def synthetic(associator, directory: Path) -> dict:
    picks, stations = read_picks(directory / "picks.csv"), read_stations(directory / "stations.csv")
    truth = pd.read_csv(directory / "events.csv")
    events, assignments = associator.associate(picks, stations)
    predicted = np.full(len(picks), -1)
    predicted[assignments["pick_index"].to_numpy()] = pd.Index(events["event_id"]).get_indexer(assignments["event_id"])
    pairs = match_by_picks(picks["event_id"].to_numpy(dtype=np.int64), predicted)
    true = truth.set_index("event_id").loc[pairs["true_event"].to_numpy()]
    ours = events.iloc[pairs["pred_event"].to_numpy()]
    distance = epicentral_distance_km(true["latitude"].to_numpy(), true["longitude"].to_numpy(),
                                      ours["latitude"].to_numpy(), ours["longitude"].to_numpy())
    dt = (pd.to_datetime(ours["time"].to_numpy(), utc=True)
          - pd.to_datetime(true["time"].to_numpy(), utc=True)).total_seconds()
    return coverage(distance, ours["depth_km"].to_numpy() - true["depth_km"].to_numpy(), np.asarray(dt), ours,
                    ellipse_sigmas(ours, true["latitude"].to_numpy(), true["longitude"].to_numpy()))


def real(associator, directory: Path) -> dict:
    picks, stations = read_picks(directory / "picks_phasenet.csv"), read_stations(directory / "stations.csv")
    reference = read_catalog(directory / "catalog_scsn.csv")
    events, _ = associator.associate(picks, stations)
    pairs = match_catalogs(events, reference)
    ours = events.iloc[pairs["catalog_index"].to_numpy()]
    theirs = reference.iloc[pairs["reference_index"].to_numpy()]
    return coverage(pairs["distance_km"].to_numpy(), pairs["ddepth_km"].to_numpy(), pairs["dt_s"].to_numpy(), ours,
                    ellipse_sigmas(ours, theirs["latitude"].to_numpy(), theirs["longitude"].to_numpy()))


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
