"""Calibration objective cost: one evaluation on 500 real-like events with 5 replicates each.

Usage: python scripts/bench_calibration.py [--stations 16] [--events 500] [--replicates 5]
Prints a table; the target is under 1 s per evaluation on one CPU core.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from calibration.objective import Objective, magnitude_bins  # noqa: E402
from calibration.reference import ReferenceEvents  # noqa: E402
from generator.detection import sample_selections  # noqa: E402
from generator.events import gutenberg_richter  # noqa: E402
from generator.network import Network  # noqa: E402
from generator.params import GeneratorParams  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stations", type=int, default=16)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--replicates", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    st = pd.DataFrame({"station_id": [f"XX.S{i:03d}" for i in range(args.stations)],
                       "latitude": 33.0 + rng.uniform(-0.4, 0.4, args.stations),
                       "longitude": -115.6 + rng.uniform(-0.5, 0.5, args.stations), "elevation_m": 0.0})
    net = Network.from_stations(st)
    n = args.events
    src = np.column_stack([rng.uniform(-30, 30, n), rng.uniform(-30, 30, n), rng.uniform(2, 12, n)])
    mag = gutenberg_richter(n, 0.8, 0.5, 4.5, rng)
    sel = sample_selections(net, src, mag, GeneratorParams(radial_factor_p=1.3), rng)
    events = pd.DataFrame({"event_id": np.arange(n).astype(str), "magnitude": mag, "x_km": src[:, 0],
                           "y_km": src[:, 1], "depth_km": src[:, 2]})
    ref = ReferenceEvents(events, sel.p, sel.s, np.full((n, args.stations, 2), np.nan), pd.DataFrame())
    objective = Objective(net, ref, magnitude_bins(mag), replicates=args.replicates)
    params = GeneratorParams()
    objective(params)
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        objective(params)
        times.append(time.perf_counter() - t0)
    print(f"{'stations':>9s}{'events':>8s}{'replicates':>11s}{'median s/eval':>15s}{'evals/s':>10s}")
    median = float(np.median(times))
    print(f"{args.stations:>9d}{n:>8d}{args.replicates:>11d}{median:>15.4f}{1 / median:>10.1f}")


if __name__ == "__main__":
    main()
