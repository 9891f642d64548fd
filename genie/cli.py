"""The ``genie`` command: one console script, one subcommand per job.

``main(argv=None)`` parses, calls the library and reports; it returns the exit status (0 success,
2 bad input) so tests can call ``main([...])`` in-process.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from genie import __version__
from genie.allocator import retain_freed_memory

logger = logging.getLogger("genie")


def _reference_catalog(spec: str, region_of, start, end, cache_dir: Path):
    """``(events, label, info)`` of ``--reference``: a catalog file, or ``usgs`` (ComCat through
    FDSN for ``region_of()`` = (lat_min, lat_max, lon_min, lon_max) between start and end,
    cached in ``cache_dir``)."""
    from catalogs.events import read_catalog
    from catalogs.fdsn import SERVICES, fetch_catalog

    if spec.lower() in SERVICES:
        events, path = fetch_catalog(region_of(), start, end, cache_dir, spec.lower())
        print(f"reference: {len(events)} events from the {SERVICES[spec.lower()]} FDSN service, cached in {path}")
        return events, spec.lower(), {"source": spec.lower(), "cached": str(path), "region": list(region_of()),
                                      "start": str(start), "end": str(end)}
    return read_catalog(spec), Path(spec).stem, {"source": str(spec)}


def _padded_region(latitude, longitude, padding_km: float) -> tuple[float, float, float, float]:
    import numpy as np

    pad_lat = padding_km / 111.2
    pad_lon = padding_km / (111.2 * max(np.cos(np.radians(float(np.mean(latitude)))), 0.1))
    return (float(np.min(latitude)) - pad_lat, float(np.max(latitude)) + pad_lat,
            float(np.min(longitude)) - pad_lon, float(np.max(longitude)) + pad_lon)


def _compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from catalogs.compare import summary_table, write_comparison
    from catalogs.events import read_catalog
    from catalogs.fileio import write_csv_atomic
    from catalogs.picks import attach_stations, read_picks
    from catalogs.schema import InputError, format_times
    from catalogs.stations import read_stations

    out = Path(args.out)
    inputs = {Path(p).resolve() for p in (args.catalog, args.reference, args.stations, args.picks) if p}
    outputs = ["report.json", "matched.csv", "missed.csv", "new.csv", "excluded_picks.csv",
               "gutenberg_richter.png", "map.png", "recall_vs_magnitude.png", "differences.png"]
    clash = [name for name in outputs if (out / name).resolve() in inputs]
    if clash:
        raise InputError(f"--out {out} would overwrite input file(s) {clash}; choose another directory")

    catalog = read_catalog(args.catalog)
    reference, reference_label, reference_info = _reference_catalog(
        args.reference, lambda: _padded_region(catalog["latitude"], catalog["longitude"], 10.0),
        catalog["time"].min(), catalog["time"].max() + pd.Timedelta(seconds=1), out / "reference")
    labels = {"catalog": args.catalog_label or Path(args.catalog).stem,
              "reference": args.reference_label or reference_label}
    stations = read_stations(args.stations) if args.stations else None
    extra = {"inputs": {"catalog": str(args.catalog), "reference": reference_info,
                        "stations": args.stations and str(args.stations), "picks": args.picks and str(args.picks)}}
    out.mkdir(parents=True, exist_ok=True)
    if args.picks:
        picks = read_picks(args.picks)
        summary = {"n_read": len(picks), "n_P": int((picks["phase"] == "P").sum()),
                   "n_S": int((picks["phase"] == "S").sum())}
        if stations is not None:
            kept, excluded = attach_stations(picks, stations, source=str(args.picks))
            summary.update(n_used=len(kept), n_excluded=len(excluded),
                           excluded_station_ids=excluded["station_id"].value_counts().to_dict())
            if len(excluded):
                write_csv_atomic(excluded.assign(time=format_times(excluded["time"])), out / "excluded_picks.csv")
                summary["excluded_file"] = "excluded_picks.csv"
            picks = kept
        per_station = picks.groupby(["station_id", "phase"]).size().unstack(fill_value=0)
        summary["per_station"] = {s: {p: int(n) for p, n in row.items()} for s, row in per_station.iterrows()}
        extra["picks"] = summary
    report = write_comparison(catalog, reference, out, labels, stations, args.max_dt, args.max_dist,
                              args.magnitude_bin, args.dm, extra)
    print(f"catalog: {labels['catalog']}   reference: {labels['reference']}")
    print(summary_table(report))
    if "picks" in report:
        p = report["picks"]
        print(f"picks: {p['n_read']} read ({p['n_P']} P, {p['n_S']} S)"
              + (f", {p['n_excluded']} excluded (unknown stations)" if "n_excluded" in p else ""))
    print(f"report and figures written to {out}/")
    return 0


def _synth(args: argparse.Namespace) -> int:
    import numpy as np

    from catalogs.events import read_catalog, write_catalog
    from catalogs.fileio import write_csv_atomic
    from catalogs.schema import InputError, format_times
    from catalogs.stations import read_stations
    from generator.network import Network
    from generator.params import GeneratorParams
    from generator.plots import plot_selection
    from generator.synthesize import generate, travel_time_extent
    from generator.traveltimes import TravelTimes
    from generator.velocity import load_velocity_model

    if args.hours <= 0:
        raise InputError(f"--hours must be positive (got {args.hours})")
    params = GeneratorParams.from_json(args.params) if args.params else GeneratorParams()
    if args.events_per_day is not None:
        params = params.replace(event_rate_per_day=float(args.events_per_day))
    network = Network.from_stations(read_stations(args.stations))
    model = load_velocity_model(args.velocity_model)
    reference = read_catalog(args.reference_catalog) if args.reference_catalog else None
    max_dist, max_depth = travel_time_extent(network, params)
    travel_times = TravelTimes.build(model, max_dist, max_depth, spacing_km=args.tt_spacing, cache_dir=args.cache)
    picks, events = generate(network, travel_times, params, args.hours * 3600.0, args.seed, start=args.start,
                             reference=reference)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(picks.assign(time=format_times(picks["time"])), out / "picks.csv")
    write_catalog(events, None, None, out / "events.csv")
    write_csv_atomic(network.stations, out / "stations.csv")
    params.to_json(out / "params.json")
    figures = out / "figures"
    # Events spread over the magnitude range of detected events, largest last.
    detected = events[events["n_p"] + events["n_s"] > 0].sort_values("magnitude")
    quantiles = np.linspace(0.5, 1.0, args.figures) if args.figures > 1 else np.array([1.0])
    chosen = detected.iloc[np.unique(np.round(quantiles * (len(detected) - 1)).astype(int))] if len(detected) else detected
    for number, ev in enumerate(chosen.itertuples(index=False)):
        plot_selection(network, [ev.x_km, ev.y_km, ev.depth_km], ev.magnitude, params,
                       figures / f"selection_{number}_event{ev.event_id}.png", rng=args.seed + number)
    counts = picks["pick_type"].value_counts()
    true = picks[picks["event_id"] >= 0]
    print(f"{len(events)} events (M {events['magnitude'].min():.1f}-{events['magnitude'].max():.1f}), "
          f"{len(picks)} picks in {args.hours:g} h on {len(network)} stations, model {model.name}")
    print("picks: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    detected = int((events["n_p"] + events["n_s"] > 0).sum())
    print(f"true picks per event: {len(true) / max(len(events), 1):.1f} (events with >= 1 pick: {detected}); "
          f"written to {out}/ (picks.csv, events.csv, stations.csv, params.json, figures/)")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from catalogs.events import read_catalog
    from catalogs.fileio import write_text_atomic
    from catalogs.picks import read_picks
    from catalogs.schema import InputError
    from catalogs.stations import read_stations
    from calibration.objective import Objective
    from calibration.optimize import CalibrationSettings, calibrate
    from calibration.budget import simulate_rates
    from calibration.plots import plot_convergence, plot_metrics_by_bin, plot_pick_budget, plot_profiles, plot_residuals
    from calibration.reference import label_picks
    from generator.network import Network
    from generator.params import GeneratorParams
    from generator.plots import plot_real_vs_synthetic
    from generator.synthesize import travel_time_extent
    from generator.timing import arrival_errors
    from generator.traveltimes import TravelTimes
    from generator.velocity import load_velocity_model

    if args.n_calls < 5:
        raise InputError(f"--n-calls must be at least 5 (got {args.n_calls})")
    settings = (CalibrationSettings.from_json(args.config, n_calls=args.n_calls, seed=args.seed,
                                              timing_calls=args.timing_calls)
                if args.config else CalibrationSettings(n_calls=args.n_calls, seed=args.seed,
                                                        timing_calls=args.timing_calls))
    start = GeneratorParams.from_json(args.params) if args.params else GeneratorParams()
    network = Network.from_stations(read_stations(args.stations))
    picks = read_picks(args.picks)
    catalog = read_catalog(args.catalog)
    model = load_velocity_model(args.velocity_model)
    travel_times = TravelTimes.build(model, *travel_time_extent(network, start), spacing_km=args.tt_spacing,
                                     cache_dir=args.cache)
    reference = label_picks(catalog, picks, network, travel_times, min_stations=args.min_stations)
    if len(reference) < 20:
        raise InputError(f"only {len(reference)} catalog events have picks on >= {args.min_stations} stations; "
                         "calibration needs at least 20 (check times, station ids and the velocity model)")
    objective = Objective.from_reference(network, reference, per_bin=args.per_bin, replicates=args.replicates,
                                         seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    best, report = calibrate(network, reference, travel_times, picks=picks, start=start, settings=settings,
                             objective=objective, checkpoint_path=out / "checkpoint.json", progress=not args.quiet)
    report["labelling"] = reference.summary
    report["inputs"] = {"stations": str(args.stations), "picks": str(args.picks), "catalog": str(args.catalog),
                        "velocity_model": model.name}
    best.to_json(out / "generator_params.json")
    write_text_atomic(out / "calibration_report.json", json.dumps(report, indent=2, default=float) + "\n")
    figures = out / "figures"
    plot_convergence(report["rounds"], figures / "convergence.png")
    plot_metrics_by_bin(pd.DataFrame(report["per_bin_default"]), pd.DataFrame(report["per_bin_calibrated"]),
                        figures / "metrics_by_magnitude.png")
    unc = report["uncertainty"]
    plot_profiles(unc["profiles"], json.loads(best.to_json()), unc["intervals"], unc["identifiability"],
                  figures / "profiles.png")
    budget = pd.DataFrame(report["pick_budget"]["stations"]) if "pick_budget" in report else None
    if budget is not None:
        t0 = picks["time"].min().floor("h")
        duration = (picks["time"].max() - t0).total_seconds()
        default_rates = simulate_rates(network, travel_times, start, duration, t0, reference.events, args.seed)
        budget["synthetic_before"] = (default_rates[0] + default_rates[1]).round(2)
        plot_pick_budget(budget, figures / "picks_per_station_hour.png", before_label="synthetic, default")
    tt_ref = travel_times(reference.sources, network.xyz)
    plot_residuals(reference.residuals, {
        label: arrival_errors(tt_ref, network, params, np.random.default_rng(args.seed))
        for label, params in (("synthetic, default", start), ("synthetic, calibrated", best))},
        figures / "residuals.png", window_s=max(1.0, float(reference.summary.get("min_tolerance_s", 1.0))))
    order = np.argsort(reference.magnitudes)
    for q in (0.25, 0.6, 0.9):
        i = int(order[int(q * (len(order) - 1))])
        eid, mag = reference.events["event_id"].iloc[i], reference.magnitudes[i]
        for label, params in (("default", start), ("calibrated", best)):
            plot_real_vs_synthetic(network, reference.sources[i], mag, reference.selected_p[i],
                                   reference.selected_s[i], params,
                                   figures / f"real_vs_synthetic_event{eid}_{label}.png", rng=args.seed,
                                   title=f"event {eid} (M {mag:.2f}): real vs synthetic, {label} parameters")
    s = reference.summary
    print(f"labelled {s['picks_labelled']} of {s['picks']} picks ({s['picks_labelled_p']} P, {s['picks_labelled_s']} S) "
          f"to {s['events_kept']} of {s['events']} catalog events")
    print(f"objective: {report['objective_default']:.4f} at the starting parameters -> "
          f"{report['objective_calibrated']:.4f} calibrated")
    intervals = unc["intervals"]
    for name in ("radial_factor_p", "radial_factor_s", "miss_pick_rate", "p_exp", "lambda_noise", "sigma_noise",
                 "ps_selection_correlation", "ps_noise_correlation", "pdist_log10_km_at_m0", "pdist_per_magnitude",
                 "timing_floor_s", "event_bias_s", "event_rate_per_day", "background_rate_per_hour"):
        ci = f"  (bootstrap 5-95 %: {intervals[name]['low']:.4g} to {intervals[name]['high']:.4g})" \
            if name in intervals else ""
        print(f"  {name:24s} {getattr(start, name):10.4g} -> {getattr(best, name):10.4g}{ci}")
    if unc["fixed_at_prior"]:
        print(f"not identified by the data, kept at their starting values: {', '.join(unc['fixed_at_prior'])}")
    print(f"timing errors: {best.timing_distribution} (residual distance {report['rounds']['round3']['by_distribution']})"
          if "round3" in report["rounds"] else "timing errors: not fitted")
    cs = report["co_selection"]
    print("P/S co-selection (P(S|P), P(S|no P), within-event correlation): " + "; ".join(
        f"{k} {v['s_given_p']:.2f} {v['s_given_no_p']:.2f} {v['correlation']:.2f}" for k, v in cs.items()))
    if "background" in report["fits"]:
        bg = report["fits"]["background"]
        within = f" within {bg['coherence_pair_km']:.0f} km" if bg.get("coherence_pair_km") else ""
        print(f"unlabelled picks {bg['unlabelled_picks']}: {bg['coherent_picks']} line up across >= 4 stations{within} "
              f"(about {bg['coherent_by_chance']} by chance): arrivals of uncatalogued events, left out of the noise")
    if budget is not None:
        worst = budget.iloc[int((budget["ratio"] - 1).abs().argmax())]
        print(f"picks per station-hour, synthetic / real: {budget['ratio'].min():.2f} to {budget['ratio'].max():.2f} "
              f"(worst {worst['station_id']})")
    print(f"written to {out}/ (generator_params.json, calibration_report.json, figures/, checkpoint.json)")
    return 0


def _train(args: argparse.Namespace) -> int:
    from catalogs.schema import InputError
    from catalogs.stations import read_stations
    from generator.network import Network
    from generator.params import GeneratorParams
    from generator.velocity import load_velocity_model
    from genie import distributed
    from genie.model import resolve_device
    from genie.train import load_config, train, training_travel_times

    model_settings, config = load_config(args.config)
    if args.steps is not None:
        if args.steps < 1:
            raise InputError(f"--steps must be at least 1 (got {args.steps})")
        config.steps = args.steps
    if args.seed is not None:
        config.seed = args.seed
    device = resolve_device(args.device)
    distributed.check_nproc(args.nproc, device)
    under_torchrun = distributed.init_from_environment(device)
    if under_torchrun and args.nproc > 1:
        raise InputError("--nproc with torchrun: the ranks come from torchrun (--nproc-per-node); leave --nproc out")
    params = GeneratorParams.from_json(args.generator_params) if args.generator_params else GeneratorParams()
    network = Network.from_stations(read_stations(args.stations))
    velocity = load_velocity_model(args.velocity_model)
    travel_times = training_travel_times(network, params, model_settings, velocity, args.tt_spacing, args.cache)
    rank, world = distributed.rank_and_world()
    world = max(world, args.nproc)
    if rank == 0:
        print(f"training the {args.config} model on {len(network)} stations ({device}"
              f"{f', {world} ranks' if world > 1 else ''}), {config.steps} steps; "
              f"checkpoints in {args.out}/checkpoint.pt")
    # train's positional arguments; every rank runs train (rank 0 writes the model).
    job = (network, travel_times, params, model_settings, config, args.out, str(device), not args.quiet)
    if args.nproc > 1:
        from genie.model import GenieModel

        distributed.spawn(train, args.nproc, device, job)
        model = GenieModel.load(args.out)
        report = json.loads((Path(args.out) / "history.json").read_text())[-1]["validation"]
    else:
        try:
            model, report = train(*job)
        finally:
            distributed.leave()
    if rank != 0:
        return 0
    print(f"model: {model.n_sources} source nodes, {model.pairs.shape[0]} product nodes, "
          f"{sum(p.numel() for p in model.parameters())} weights")
    print(f"validation on {report['hours']:g} h of held-out synthetic picks ({report['rate_per_day']:g} events/day): "
          f"precision {report['precision']:.3f}, recall {report['recall']:.3f}, F1 {report['f1']:.3f}, "
          f"pick accuracy {report['pick_accuracy']:.3f} ({report['n_matched']} of {report['n_detected']} sources "
          f"matched; recall of the {report['n_admitted']} labelled events the acceptance rules admit with their "
          f"true picks; of all {report['n_labelled']} labelled: {report['recall_labelled']:.3f})")
    print(f"written to {args.out}/ (model.json, model.pt, checkpoint.pt, history.json, train_config.json, "
          "generator_params.json)")
    return 0


def _associate(args: argparse.Namespace) -> int:
    import time

    import pandas as pd
    import torch

    from catalogs.compare import summary_table, write_comparison
    from catalogs.fileio import write_csv_atomic, write_text_atomic
    from catalogs.picks import read_picks
    from catalogs.pickstore import is_dataset
    from catalogs.schema import InputError, format_times
    from catalogs.stations import read_stations
    from genie import __version__
    from genie.associate import Associator, write_outputs

    if is_dataset(args.picks):
        return _associate_dataset(args)
    if args.scheduler or args.workers:
        raise InputError(f"--scheduler and --workers need a pick dataset (genie picks import); {args.picks} is a file")
    if not args.stations:
        raise InputError("--stations is required with a pick file (a pick dataset carries its own)")
    started = time.perf_counter()
    out = Path(args.out)
    inputs = {Path(p).resolve() for p in (args.picks, args.stations, args.config) if p}
    clash = [n for n in ("events.csv", "assignments.csv", "catalog.xml", "run.json") if (out / n).resolve() in inputs]
    if clash:
        raise InputError(f"--out {out} would overwrite input file(s) {clash}; choose another directory")
    overrides = _associator_overrides(args)
    overrides["progress"] = not args.quiet
    associator = Associator.from_pretrained(args.model, device=args.device, **overrides)
    t_read = time.perf_counter()
    stations = read_stations(args.stations)
    picks = read_picks(args.picks)
    read_s = time.perf_counter() - t_read
    start = pd.Timestamp(args.start) if args.start else None
    end = pd.Timestamp(args.end) if args.end else None
    model = associator.model
    print(f"associating {len(picks)} picks on {len(stations)} stations with the model in {args.model} "
          f"({model.n_stations} stations, {model.device})")
    events, assignments = associator.associate(picks, stations, start, end, workdir=out)
    timings = {"read_s": read_s, **associator.timings}

    report = None
    scale_info = {"source": associator.scale.source}
    if args.reference:
        t_ref = time.perf_counter()
        span_start = start or picks["time"].min()
        span_end = end or picks["time"].max()
        ms = model.stations
        reference, reference_label, reference_info = _reference_catalog(
            args.reference, lambda: _padded_region(ms["latitude"], ms["longitude"], model.config.roi_padding_km),
            span_start, span_end, out / "reference")
        reference = reference[(reference["time"] >= span_start) & (reference["time"] < span_end)].reset_index(drop=True)
        if not args.magnitude_scale and len(events):
            # Station terms against the reference's magnitudes, saved for later runs.
            scale, summary = associator.fit_magnitude_scale(events, assignments, picks, reference, reference_label,
                                                            args.max_dt, args.max_dist)
            if scale is not None:
                scale.to_json(out / "magnitude_scale.json")
                events = associator.add_magnitudes(events, assignments, picks, scale)
                scale_info = {"source": scale.source, "file": str(out / "magnitude_scale.json"), **summary}
        report = write_comparison(events, reference, out / "compare", {"catalog": "genie", "reference": reference_label},
                                  stations, args.max_dt, args.max_dist, extra={"inputs": {"reference": reference_info}})
        timings["compare_s"] = time.perf_counter() - t_ref

    t_write = time.perf_counter()
    write_outputs(out, events, assignments, picks)
    if len(associator.excluded):
        excluded = associator.excluded
        write_csv_atomic(excluded.assign(time=format_times(excluded["time"])), out / "excluded_picks.csv")
    timings["write_s"] = time.perf_counter() - t_write
    timings["wall_s"] = time.perf_counter() - started
    n_picks = len(picks)
    run = {"genie_version": __version__, "torch_version": torch.__version__, "device": str(model.device),
           "threads": torch.get_num_threads(),
           "inputs": {"picks": str(args.picks), "stations": str(args.stations), "model": str(args.model),
                      "config": args.config, "reference": args.reference, "start": args.start, "end": args.end},
           "model": {"config": model.config.to_dict(), "station_ids": model.station_ids,
                     "statics_s": dict(zip(model.station_ids, model.statics.cpu().numpy().round(4).tolist()))},
           "settings": associator.settings.to_dict(), "magnitude_scale": scale_info,
           "counts": {**associator.counts, "assigned_picks": len(assignments)},
           "timings_s": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in timings.items()},
           "picks_per_second": n_picks / max(associator.timings.get("total_s", 0.0), 1e-9)}
    if report is not None:
        run["comparison"] = {k: report[k] for k in ("counts", "recall", "precision", "f1", "by_magnitude")}
    write_text_atomic(out / "run.json", json.dumps(run, indent=2, default=float) + "\n")
    n_p = int((assignments["phase"] == "P").sum())
    dropped = associator.counts.get("chance_events_dropped", 0)
    limit = associator.settings.max_chance_log10
    print(f"{len(events)} events" + (f" ({dropped} more dropped as chance alignments, chance above 1e{limit:g})"
                                     if limit is not None else "")
          + f", {len(assignments)} associated picks ({n_p} P, {len(assignments) - n_p} S) "
          f"of {n_picks}; {sum(associator.counts['excluded'].values())} excluded "
          f"({', '.join(f'{k} {v}' for k, v in associator.counts['excluded'].items() if v) or 'none'})")
    print(f"association {associator.timings.get('total_s', 0.0):.1f} s "
          f"({run['picks_per_second']:.0f} picks/s on {model.device}), wall {timings['wall_s']:.1f} s")
    if report is not None:
        print(summary_table(report))
        print(f"comparison written to {out / 'compare'}/")
    print(f"written to {out}/ (events.csv, assignments.csv, catalog.xml, run.json"
          + (", excluded_picks.csv" if len(associator.excluded) else "") + ")")
    return 0


def _self_train(args: argparse.Namespace) -> int:
    import time

    from catalogs.picks import read_picks
    from catalogs.schema import InputError
    from catalogs.stations import read_stations
    from generator.params import GeneratorParams
    from genie.selftrain import SelfTrainer, SelfTrainSettings

    started = time.perf_counter()
    overrides = {}
    for flag, name in (("seed", "seed"), ("rounds", "rounds"), ("finetune_steps", "finetune_steps"),
                       ("stop_change", "stop_change"), ("model_config", "config")):
        if getattr(args, flag) is not None:
            overrides[name] = getattr(args, flag)
    if args.keep_best:
        overrides["keep_best"] = True
    settings = SelfTrainSettings.from_json(args.config, **overrides) if args.config else SelfTrainSettings(**overrides)
    out = Path(args.out)
    inputs = {Path(p).resolve() for p in (args.picks, args.stations, args.reference, args.config) if p}
    if any(p.is_relative_to(out.resolve()) for p in inputs):
        raise InputError(f"--out {out} contains an input file; choose another directory")
    picks = read_picks(args.picks)
    stations = read_stations(args.stations)
    reference, label = None, "reference"
    if args.reference:
        reference, label, _ = _reference_catalog(
            args.reference, lambda: _padded_region(stations["latitude"], stations["longitude"], 20.0),
            picks["time"].min(), picks["time"].max(), out / "reference")
    params = GeneratorParams.from_json(args.generator_params) if args.generator_params else None
    trainer = SelfTrainer(picks, stations, out, settings, reference=reference, reference_label=label,
                          model_dir=args.model, generator_params=params, velocity_model=args.velocity_model,
                          device=args.device, tt_spacing_km=args.tt_spacing, cache_dir=args.cache,
                          progress=not args.quiet)
    print(f"self-training on {len(picks)} picks, {len(stations)} stations: {settings.rounds} round(s) after round 0 "
          f"({'from ' + str(args.model) if args.model else 'calibrate and train ' + settings.config}), {trainer.device}; "
          f"held out: 1 block in {settings.holdout_every} of {settings.block_hours:g} h")
    summary = trainer.run()
    print(selftrain_table(summary, label))
    print(f"wall {time.perf_counter() - started:.0f} s; written to {out}/ (round_*/, rounds.csv, summary.json, model/)")
    for name, path in summary["figures"].items():
        print(f"figure {name}: {path}")
    return 0


def selftrain_table(summary: dict, label: str = "reference") -> str:
    """The final table of ``genie self-train``: one line per round, then the G-R comparison."""
    rows = summary["rounds"]
    thresholds = summary["settings"]["magnitude_thresholds"]
    has_ref = "heldout_recall" in rows[0]
    head = f"{'round':>5} {'events':>7} {'picks':>7} {'unexpl/chance':>13} {'|res| s':>7} {'val F1':>6}"
    if has_ref:
        head += f" {'recall':>6}" + "".join(f" {'M>=' + format(m, 'g'):>6}" for m in thresholds) + f" {'ratio':>6}"
    head += f" {'shifted':>7} {'round s':>7}"
    lines = ["unexpl/chance: unassociated picks lining up on >= 4 other stations, and with moveout destroyed; "
             "recall, ratio and shifted events on the held-out blocks only:", head]
    for r in rows:
        unexplained = f"{r['unexplained_coherent_picks']}/{r['unexplained_coherent_chance']}"
        line = (f"{r['round']:>5} {r['events']:>7} {r['associated_picks']:>7} {unexplained:>13} "
                f"{r['mean_abs_residual_s']:>7.3f} {r.get('validation_f1', float('nan')):>6.3f}")
        if has_ref:
            line += f" {r['heldout_recall']:>6.3f}" + "".join(
                f" {r.get(f'heldout_recall_m{m:g}', float('nan')):>6.3f}" for m in thresholds)
            line += f" {r['heldout_count_ratio']:>6.2f}"
        line += f" {r.get('heldout_shifted_events', -1):>7} {r['round_s']:>7.0f}"
        lines.append(line)
    gr = summary.get("gutenberg_richter_heldout")
    if gr:
        lines.append("G-R on the held-out blocks (Mc by maximum curvature, b-value above it):")
        for name, g in gr.items():
            name = label if name == "reference" else f"genie {name}"
            b = f"{g['b']:.2f} ± {g['b_sigma']:.2f}" if g.get("b") is not None else "-"
            mc = f"{g['mc_maxc']:.1f}" if g.get("mc_maxc") is not None else "-"
            lines.append(f"  {name:16s} N {g['n']:>6}  Mc {mc:>4}  b {b}")
        for key, c in summary["counts_above"].items():
            lines.append(f"  M >= {key[1:]}: genie {c['genie']}, {label} {c['reference']} "
                         f"({c['difference_sigma']:+.1f} sigma)")
    return "\n".join(lines)


def _associator_overrides(args: argparse.Namespace) -> dict:
    """Associator settings of --config, --chunk-hours and --magnitude-scale."""
    from catalogs.fileio import read_json_object
    from catalogs.schema import InputError

    overrides = read_json_object(args.config, "JSON object of associator settings") if args.config else {}
    if args.chunk_hours is not None:
        if args.chunk_hours <= 0:
            raise InputError(f"--chunk-hours must be positive (got {args.chunk_hours})")
        overrides["chunk_s"] = args.chunk_hours * 3600.0
    if args.magnitude_scale:
        overrides["magnitude_scale"] = args.magnitude_scale
    return overrides


def _associate_dataset(args: argparse.Namespace) -> int:
    """``genie associate`` on a Parquet pick dataset: one task per UTC day (genie.dayruns)."""
    import torch

    from catalogs.compare import summary_table, write_comparison
    from catalogs.events import read_catalog
    from catalogs.fileio import write_text_atomic
    from catalogs.pickstore import PickDataset, utc
    from catalogs.schema import InputError
    from genie.dayruns import associate_dataset
    from genie.model import GenieModel

    out = Path(args.out)
    if out.resolve() == Path(args.picks).resolve() or Path(args.picks).resolve() in out.resolve().parents:
        raise InputError(f"--out {out} lies inside the pick dataset {args.picks}; choose another directory")
    if args.chunk_hours is not None:
        raise InputError("--chunk-hours does not apply to a pick dataset: it is associated one UTC day per task")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be at least 1 (got {args.workers})")
    overrides = _associator_overrides(args)
    dataset = PickDataset(args.picks)
    if args.stations:
        logger.warning("--stations %s is not used: the pick dataset carries its own station table (%s)",
                       args.stations, dataset.root / "stations.csv")
    info = dataset.summary()
    print(f"associating the pick dataset {args.picks}: {info['picks']} picks on {info['days']} day(s) "
          f"({info['first_day']} to {info['last_day']}) with the model in {args.model}"
          + (f", scheduler {args.scheduler}" + (f" ({args.workers} workers)" if args.workers else "")
             if args.scheduler else ""))
    summary = associate_dataset(args.model, args.picks, str(out), args.start, args.end, device=args.device,
                                settings=overrides, scheduler=args.scheduler, workers=args.workers,
                                progress=not args.quiet)
    run = {"genie_version": __version__, "torch_version": torch.__version__,
           "inputs": {"picks": str(args.picks), "model": str(args.model), "config": args.config,
                      "start": args.start, "end": args.end, "reference": args.reference}, **summary}
    print(f"{summary['events']} events, {summary['assignments']} associated picks of {summary['picks']} on "
          f"{summary['days']} day(s) ({summary['days_resumed']} resumed); {summary['seconds']:.1f} s, "
          f"{summary['picks_per_second']:.0f} picks/s")
    if args.reference:
        model = GenieModel.load(args.model, device="cpu")
        span_start, span_end = dataset.span
        span_start = utc(args.start) if args.start else span_start
        span_end = utc(args.end) if args.end else span_end
        ms = model.stations
        reference, label, info_ref = _reference_catalog(
            args.reference, lambda: _padded_region(ms["latitude"], ms["longitude"], model.config.roi_padding_km),
            span_start, span_end, out / "reference")
        reference = reference[(reference["time"] >= span_start) & (reference["time"] < span_end)].reset_index(drop=True)
        report = write_comparison(read_catalog(out / "events.csv"), reference, out / "compare",
                                  {"catalog": "genie", "reference": label}, dataset.stations(), args.max_dt,
                                  args.max_dist, extra={"inputs": {"reference": info_ref}})
        run["comparison"] = {k: report[k] for k in ("counts", "recall", "precision", "f1", "by_magnitude")}
        print(summary_table(report))
    write_text_atomic(out / "run.json", json.dumps(run, indent=2, default=float) + "\n")
    print(f"written to {out}/ (events.csv, assignments.csv, run.json; per day: days/day=YYYY-MM-DD/ with "
          "catalog.xml)")
    return 0


def _picks_import(args: argparse.Namespace) -> int:
    from catalogs.pickstore import PickDataset, import_picks
    from catalogs.schema import InputError

    out = Path(args.out)
    given = {Path(p).resolve() for p in (*args.picks, args.stations)}
    if any(p == out.resolve() or out.resolve() in p.parents for p in given):
        raise InputError(f"--out {out} holds an input file; choose another directory")
    summary = import_picks(args.picks, args.stations, out)
    info = PickDataset(out).summary()
    print(f"{summary['added']} picks added ({summary['duplicates']} duplicates dropped); the dataset in {out} holds "
          f"{info['picks']} picks on {info['days']} day(s), {info['first_day']} to {info['last_day']}")
    return 0


def _add_common(p: argparse.ArgumentParser, device: bool = False, seed: bool = False) -> None:
    """The flags every subcommand shares: --quiet; --device and --seed where they apply."""
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings and errors only")
    if device:
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="torch device (default auto)")
    if seed:
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by the commands that compute travel times on a network."""
    p.add_argument("--stations", required=True, help="station file")
    p.add_argument("--velocity-model", default="hadley_kanamori",
                   help="CSV with depth_km, vp, vs (layer tops), or hadley_kanamori, or homogeneous[:vp[:vs]]")
    p.add_argument("--tt-spacing", type=float, default=1.0, help="travel-time table grid, km (default 1)")
    p.add_argument("--cache", help="travel-time cache directory (default $GENIE_CACHE or ~/.cache/genie)")
    p.add_argument("--out", required=True, help="output directory")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genie",
        description="GNN earthquake phase association with a generator calibrated to your network.",
    )
    parser.add_argument("--version", action="version", version=f"genie {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "compare",
        help="compare a catalog with a reference catalog (recall, precision, Mc, b-value, figures)",
        description="Match a catalog one-to-one to a reference catalog and write report.json, "
        "matched/missed/new CSVs and figures (G-R curves, map, recall versus magnitude, differences).",
    )
    p.add_argument("--catalog", required=True, help="catalog to assess (CSV, QuakeML or hypoDD .pha)")
    p.add_argument("--reference", required=True,
                   help="reference catalog (ComCat CSV, the SCSN table, QuakeML, ...) or 'usgs' to fetch ComCat for "
                        "the catalog's region and time range (cached in OUT/reference/)")
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    p.add_argument("--stations", help="station file, drawn on the map and used to check the picks")
    p.add_argument("--picks", help="pick file; counts and picks on unknown stations go into the report")
    p.add_argument("--max-dt", type=float, default=3.0, help="match window in origin time, s (default 3)")
    p.add_argument("--max-dist", type=float, default=15.0, help="match window in epicentral distance, km (default 15)")
    p.add_argument("--magnitude-bin", type=float, default=0.5, help="bin width for recall by magnitude (default 0.5)")
    p.add_argument("--dm", type=float, default=0.1, help="magnitude binning for G-R analysis (default 0.1)")
    p.add_argument("--catalog-label", help="name of the catalog in figures (default: file name)")
    p.add_argument("--reference-label", help="name of the reference in figures (default: file name)")
    _add_common(p)
    p.set_defaults(func=_compare)

    p = sub.add_parser(
        "synth",
        help="generate synthetic picks and events on a station network",
        description="Synthetic picks (with truth columns), events and figures from the generator.",
    )
    _add_model_arguments(p)
    p.add_argument("--hours", type=float, default=24.0, help="duration to simulate, hours (default 24)")
    p.add_argument("--events-per-day", type=float, help="background event rate (default: from --params)")
    p.add_argument("--params", help="GeneratorParams JSON (e.g. from genie calibrate); default parameters otherwise")
    p.add_argument("--reference-catalog", help="place events near this catalog's epicentres")
    p.add_argument("--start", default="2020-01-01T00:00:00Z", help="start time, UTC (default 2020-01-01)")
    p.add_argument("--figures", type=int, default=3,
                   help="selection maps of N events spread over the detected magnitudes (default 3)")
    _add_common(p, seed=True)
    p.set_defaults(func=_synth)

    p = sub.add_parser(
        "calibrate",
        help="calibrate the generator to a real network (Bayesian optimisation)",
        description="Label real picks to a reference catalog, then fit the generator's parameters so that "
        "synthetic station selections match the real ones per magnitude bin. Resumes from DIR/checkpoint.json.",
    )
    _add_model_arguments(p)
    p.add_argument("--picks", required=True, help="real picks (PhaseNet, SeisBench, ...)")
    p.add_argument("--catalog", required=True, help="reference catalog for the same period")
    p.add_argument("--n-calls", type=int, default=150, help="GP evaluations, rounds 1 + 2 (default 150)")
    p.add_argument("--timing-calls", type=int, default=25, help="evaluations of round 3, timing (default 25)")
    p.add_argument("--per-bin", type=int, default=100, help="real events sampled per magnitude bin (default 100)")
    p.add_argument("--replicates", type=int, default=5, help="synthetic replicates per real event (default 5)")
    p.add_argument("--min-stations", type=int, default=3, help="keep events picked on at least N stations (default 3)")
    p.add_argument("--params", help="starting GeneratorParams JSON (default: built-in defaults)")
    p.add_argument("--config", help="JSON with spatial_bounds / timing_bounds / fixed overrides")
    _add_common(p, seed=True)
    p.set_defaults(func=_calibrate)

    p = sub.add_parser(
        "train",
        help="train the GENIE model on synthetic picks from the (calibrated) generator",
        description="Train the GNN on batches drawn on the fly from the generator; writes model.json + "
        "model.pt, resumes from DIR/checkpoint.pt, validates on held-out synthetic picks.",
    )
    _add_model_arguments(p)
    p.add_argument("--generator-params", help="GeneratorParams JSON (from genie calibrate); defaults otherwise")
    p.add_argument("--config", default="small",
                   help="small (2 CPU cores, ~15 min), full (GENIE-sized, GPU) or a JSON file (default small)")
    p.add_argument("--steps", type=int, help="optimiser steps (default: from the configuration)")
    p.add_argument("--nproc", type=int, default=1,
                   help="ranks of a DistributedDataParallel run on this machine (gloo on CPU, sharing its threads; "
                        "nccl with one GPU each); each draws its own batches, so a step sees N batches. Under "
                        "torchrun the ranks come from its environment instead (default 1)")
    _add_common(p, device=True, seed=True)
    p.set_defaults(func=_train, seed=None)

    p = sub.add_parser(
        "associate",
        help="associate continuous picks into a located catalog with magnitudes (the trained model)",
        description="Detect and locate earthquakes in continuous picks with a trained model, in chunks that a "
        "restarted run resumes; writes events.csv, assignments.csv, catalog.xml (QuakeML) and run.json, and with "
        "--reference the comparison of genie compare into OUT/compare/.",
    )
    p.add_argument("--picks", required=True,
                   help="picks (PhaseNet, SeisBench, PyOcto, GaMMA formats), or a pick dataset from genie picks import "
                        "(read one UTC day at a time)")
    p.add_argument("--stations", help="station file (checked against the model's stations); a pick dataset carries its own")
    p.add_argument("--model", required=True, help="model directory from genie train (model.json, model.pt)")
    p.add_argument("--out", required=True, help="output directory (created if missing; chunks kept for resuming)")
    p.add_argument("--start", help="first origin time, UTC (default: the first pick less the longest travel time)")
    p.add_argument("--end", help="end of the range, UTC (default: the last pick)")
    p.add_argument("--reference", help="reference catalog file, or 'usgs' (ComCat via FDSN, cached in OUT/reference/)")
    p.add_argument("--config", help="JSON of associator settings (AssociatorSettings names; \"detect\": {...})")
    p.add_argument("--magnitude-scale", help="magnitude scale JSON with station terms (from an earlier --reference run)")
    p.add_argument("--chunk-hours", type=float, help="chunk length, hours (default 24)")
    p.add_argument("--max-dt", type=float, default=3.0, help="match window in origin time, s (default 3)")
    p.add_argument("--max-dist", type=float, default=15.0, help="match window in epicentral distance, km (default 15)")
    p.add_argument("--scheduler", help="pick datasets only: run the days on Dask, 'local' (a LocalCluster) or "
                                       "tcp://HOST:PORT (a running scheduler); default: in this process")
    p.add_argument("--workers", type=int, help="worker processes of --scheduler local (default: half the CPU cores)")
    _add_common(p, device=True)
    p.set_defaults(func=_associate)

    p = sub.add_parser(
        "picks",
        help="pick datasets for years of picks: genie picks import",
        description="Pick datasets: Parquet partitioned by UTC day with the station table beside it, read one "
        "day at a time by genie associate (needs pyarrow: pip install 'genie-associator[scale]').",
    )
    picks_sub = p.add_subparsers(dest="picks_command", metavar="ACTION", required=True)
    q = picks_sub.add_parser("import", help="add pick files to a Parquet pick dataset (created if missing)",
                             description="Read pick files (any genie reader format) and merge their picks into the "
                             "day partitions of the dataset in OUT; exact duplicates are dropped.")
    q.add_argument("--picks", required=True, nargs="+", help="pick files (PhaseNet, SeisBench, PyOcto, GaMMA formats)")
    q.add_argument("--stations", required=True, help="station file, kept beside the picks")
    q.add_argument("--out", required=True, help="dataset directory (created if missing; more files merge into it)")
    _add_common(q)
    q.set_defaults(func=_picks_import)

    p = sub.add_parser(
        "self-train",
        help="the semi-supervised loop: calibrate, train, associate, harvest pseudo-labels, recalibrate, fine-tune",
        description="Round 0 calibrates the generator to the reference catalog and trains (or takes --model), "
        "then associates the picks; each later round harvests confident events outside the held-out time blocks, "
        "recalibrates the generator against them, fine-tunes the model on synthetic plus pseudo-labelled real "
        "windows and re-associates. Writes OUT/round_k/, rounds.csv, rounds.png and summary.json; a restarted run "
        "continues after the last finished round.",
    )
    p.add_argument("--picks", required=True, help="real picks (PhaseNet, SeisBench, PyOcto, GaMMA formats)")
    p.add_argument("--reference", help="reference catalog file, or 'usgs' (ComCat via FDSN, cached in OUT/reference/)")
    p.add_argument("--rounds", type=int, help="self-training rounds after round 0 (default 2)")
    p.add_argument("--model", help="start from this trained model (skips round 0's calibration and training)")
    p.add_argument("--generator-params", help="GeneratorParams JSON of round 0 (default: the model's, or calibrated)")
    p.add_argument("--config", help="JSON of self-training settings (SelfTrainSettings names; \"confidence\": {...})")
    p.add_argument("--model-config",
                   help="model configuration trained in round 0: small, full or a JSON file (default small)")
    p.add_argument("--finetune-steps", type=int, help="fine-tuning steps per round (default 1000)")
    p.add_argument("--stop-change", type=float,
                   help="stop when fewer than this fraction of events differ from the last round (default 0.02; "
                        "0: run every round)")
    p.add_argument("--keep-best", action="store_true", help="continue from and keep the round with the best held-out score")
    _add_model_arguments(p)
    _add_common(p, device=True, seed=True)
    p.set_defaults(func=_self_train, seed=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    from catalogs.schema import InputError

    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else (logging.WARNING if quiet else logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    # Before any data is read: blocks freed while reading picks then serve the window batches.
    retain_freed_memory()
    try:
        return args.func(args)
    except InputError as exc:
        print(f"genie {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
