"""Association speed on the Salton Sea days: wall time per stage and picks per second.

    python scripts/bench_associate.py --model demo_out/model [--data ../shared/data] [--hours 48]

Runs ``Associator.associate`` on the 62,314 real PhaseNet picks with 2 CPU threads (``--threads``)
and, when a GPU is present, again on CUDA; prints one table (markdown) with the stages of
:func:`genie.detect.detect` (screen, grid, peaks, refine, relocation rounds, association,
assignment, location) and the totals.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalogs.picks import read_picks  # noqa: E402
from catalogs.stations import read_stations  # noqa: E402
from scripts.markdown import markdown_table  # noqa: E402

STAGES = ["prepare_s", "screen_s", "grid_s", "peaks_s", "refine_s", "relocation_rounds_s", "association_s",
          "assignment_s", "location_s", "chance_s", "magnitudes_s", "total_s"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory (make demo: demo_out/model)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hours", type=float, default=None, help="only the first N hours (default: both days)")
    args = parser.parse_args(argv)

    import torch

    from genie import Associator

    torch.set_num_threads(args.threads)
    salton = Path(args.data) / "salton_sea_2020"
    picks = read_picks(salton / "picks_phasenet.csv")
    stations = read_stations(salton / "stations.csv")
    end = picks["time"].min().floor("D") + pd.Timedelta(hours=args.hours) if args.hours else None
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = {}
    for device in devices:
        associator = Associator.from_pretrained(args.model, device=device, progress=False)
        t = time.perf_counter()
        events, assignments = associator.associate(picks, stations, end=end)
        wall = time.perf_counter() - t
        timings = associator.timings
        row = {stage: round(timings.get(stage, 0.0), 2) for stage in STAGES}
        row.update(windows=int(timings.get("windows", 0)), skipped=int(timings.get("windows_skipped", 0)),
                   ms_per_window=round(1e3 * timings.get("grid_s", 0.0) / max(timings.get("windows", 1), 1), 2),
                   events=len(events), picks_per_s=round(associator.counts["picks"] / wall))
        name = f"{device} ({args.threads} threads)" if device == "cpu" else f"cuda ({torch.cuda.get_device_name()})"
        rows[name] = row
    table = pd.DataFrame(rows).T
    print(f"{len(picks)} picks, {len(stations)} stations; model {args.model}")
    print(markdown_table(table))
    if len(rows) > 1:
        cpu, gpu = rows.values()
        print(f"\nCUDA speed-up: {cpu['total_s'] / max(gpu['total_s'], 1e-9):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
