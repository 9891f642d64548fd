"""GENIE model speed: training samples per second and forward windows per second.

Usage: python scripts/bench_genie.py --stations STATIONS.csv [--config small] [--threads 2]
                                     [--devices cpu,cuda] [--windows 512]

On a station file (the Salton Sea network for the issue's target), builds the model of the named
configuration with the Hadley-Kanamori model and default generator parameters, then times

* training: optimiser steps on generator batches (windows per second, batch generation included);
* inference: the source-likelihood grid (:func:`genie.detect.grid_likelihood`, features
  included) over a synthetic hour, in ms per window; the target is 5 ms per window on 2 CPU
  cores. It runs with the forward-pass size of :func:`genie.detect.windows_per_pass` and with
  passes of 64 windows (the earlier default), which shows what keeping a pass in cache is worth.

Prints one row per device and pass size, and the CUDA speed-up when a GPU is present.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from catalogs.stations import read_stations
from generator.network import Network
from generator.params import GeneratorParams
from generator.synthesize import travel_time_extent
from generator.traveltimes import TravelTimes
from generator.velocity import VelocityModel
from genie.batches import draw_batch, synthetic_truth
from genie.detect import WindowStore, grid_likelihood, windows_per_pass
from genie.features import PickTable
from genie.model import GenieModel
from genie.train import batch_losses, load_config, model_config_for, total_loss


def bench(device: str, network, travel_times, params, model_settings, config, n_windows: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = GenieModel.build(model_config_for(model_settings, params, network), network, travel_times).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for step in range(steps + 2):
        if step == 2:  # two warm-up steps
            sync()
            t0 = time.perf_counter()
        batch = draw_batch(model, network, travel_times, params, config.batch, np.random.default_rng(step))
        loss = total_loss(batch_losses(model, batch), config.loss_weights)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    sync()
    train_s = (time.perf_counter() - t0) / steps

    truth = synthetic_truth(network, travel_times, params, 3600.0, np.random.default_rng(1))
    picks = PickTable(truth.station, truth.time_s, truth.phase, model.n_stations, device=device)
    model.eval()
    k = model.config.n_offsets
    sizes = (windows_per_pass(model), 64)

    def grid(n, pass_windows):
        store = WindowStore(model, picks, 60.0, n + k - 1, batch_windows=pass_windows)
        grid_likelihood(model, store, np.ones(n, dtype=bool), keep_above=1.1)

    for size in sizes:  # warm-up
        grid(n_windows // 4, size)
    # Interleaved repeats, median: one timing on a shared machine swings by tens of percent.
    seconds = {size: [] for size in sizes}
    for _ in range(3):
        for size in sizes:
            sync()
            t0 = time.perf_counter()
            grid(n_windows, size)
            sync()
            seconds[size].append((time.perf_counter() - t0) / n_windows)
    rows = []
    for size in sizes:
        forward_s = float(np.median(seconds[size]))
        rows.append({"device": device, "pass_windows": size, "train_windows_per_s": config.batch.windows / train_s,
                     "step_s": train_s, "forward_windows_per_s": 1.0 / forward_s, "ms_per_window": 1e3 * forward_s,
                     "product_nodes": model.pairs.shape[0], "sources": model.n_sources})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", required=True, help="station file")
    parser.add_argument("--config", default="small")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2, the CI machine)")
    parser.add_argument("--devices", default="cpu,cuda", help="devices to time, those present (default cpu,cuda)")
    parser.add_argument("--windows", type=int, default=1024, help="windows in the inference timing")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    network = Network.from_stations(read_stations(args.stations))
    params = GeneratorParams()
    travel_times = TravelTimes.build(VelocityModel.hadley_kanamori(), *travel_time_extent(network, params))
    model_settings, config = load_config(args.config)
    devices = [d for d in args.devices.split(",") if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    rows = [row for d in devices
            for row in bench(d, network, travel_times, params, model_settings, config, args.windows, args.steps)]
    print(f"config {args.config}: {len(network)} stations, {rows[0]['sources']} source nodes, "
          f"{rows[0]['product_nodes']} product nodes; {args.threads} CPU threads; "
          f"{config.batch.windows} windows x {model_settings['n_offsets']} offsets per training batch")
    print(f"{'device':>7s}{'windows/pass':>14s}{'train windows/s':>17s}{'s/step':>9s}{'forward windows/s':>19s}"
          f"{'ms/window':>11s}{'vs 5 ms target':>16s}")
    for r in rows:
        print(f"{r['device']:>7s}{r['pass_windows']:>14d}{r['train_windows_per_s']:>17.1f}{r['step_s']:>9.3f}"
              f"{r['forward_windows_per_s']:>19.1f}{r['ms_per_window']:>11.2f}{r['ms_per_window'] / 5.0:>15.2f}x")
    by_device = {r["device"]: r for r in rows}  # each device's last row: passes of 64
    if len(by_device) == 2:
        cpu, cuda = by_device["cpu"], by_device["cuda"]
        print(f"CUDA speed-up: training {cpu['step_s'] / cuda['step_s']:.1f}x, "
              f"inference {min(r['ms_per_window'] for r in rows if r['device'] == 'cpu') / cuda['ms_per_window']:.1f}x "
              f"(against the CPU's faster pass size)")


if __name__ == "__main__":
    main()
