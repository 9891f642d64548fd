"""The semi-supervised loop (the calibration report's Fig. 3.15): calibrate, train, associate,
harvest pseudo-labels, recalibrate, fine-tune, repeat.

    from genie.selftrain import SelfTrainer, SelfTrainSettings
    trainer = SelfTrainer(picks, stations, "out", SelfTrainSettings(rounds=2), reference=scsn,
                          model_dir="model")
    summary = trainer.run()

Round 0 calibrates the generator to the reference catalog and trains (or takes ``model_dir``),
then associates all picks. Round k >= 1:

1. **harvest**: the confident events of round k-1 (:func:`genie.pseudolabels.confident_events`)
   whose origins lie in harvest blocks (:func:`genie.pseudolabels.holdout_mask`: every
   ``holdout_every``-th block of ``block_hours`` is held out and never supplies labels);
2. **recalibrate** the generator against them with their own picks (the report's "best catalog
   so far", small uncatalogued events included; :func:`calibration.reference.from_associations`),
   starting from round k-1's parameters with a short search (``recalibration``). Station statics
   are updated by the median residual of the confident picks; the timing-error parameters stay
   at their round-0 values, fitted against the agency's independent locations (residuals to our
   own locations are biased low by the location fit). Background and pick budget use all picks:
   they are unlabelled statistics, no label of the held-out blocks enters;
3. **fine-tune** round k-1's model on the recalibrated generator mixed with real windows of the
   harvest blocks labelled by the confident events (``real_fraction`` of the steps;
   :func:`genie.pseudolabels.draw_real_batch`, which masks every place an unconfirmed event may
   be; ``shifted_fraction`` of those windows on station-shifted harvest picks, certain
   negatives, :func:`genie.pseudolabels.draw_shifted_batch`); validation on the fixed synthetic
   set of round 0's generator;
4. **re-associate** all picks.

Each round is scored on the held-out blocks (recall by magnitude threshold and count ratio
against the reference; events from the held-out picks shifted per station, the chance
alignments) and on the whole stretch (events, associated picks, unexplained coherent picks:
unassociated picks that line up with unassociated picks on at least 4 other stations,
:func:`calibration.background.coherent_picks`, with the count the same test gives on the
unassociated picks shifted per station, i.e. by chance; mean absolute residual). The held-out score of a
round (``--keep-best``) is the mean held-out recall over the magnitude thresholds minus the
fraction of held-out events the shifted picks reproduce (a false-detection rate): recall bought
with false events does not count. Without a reference it is the confident fraction of held-out
events minus the same rate. The loop stops after ``rounds`` rounds or when fewer than
``stop_change`` of the events differ from the previous round's.

Outputs under ``out``: ``round_k/`` (``model/``, ``generator_params.json``,
``calibration_report.json``, ``events.csv``, ``assignments.csv``, ``catalog.xml``,
``compare/`` and ``compare_heldout/`` with a reference, ``metrics.json``), ``rounds.csv``,
``rounds.png``, ``gutenberg_richter_heldout.png``, ``summary.json`` and ``model/`` (the final
round's model, or the best with ``keep_best``). A round is finished when its ``metrics.json``
exists; a restarted run continues after the last finished round (and inside a round, from the
calibration, training and association checkpoints).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from calibration.background import coherent_picks, pair_moveout_bounds
from calibration.objective import Objective
from calibration.optimize import TIMING_BOUNDS, CalibrationSettings, calibrate
from calibration.reference import from_associations, label_picks, median_residuals
from catalogs.compare import write_comparison
from catalogs.fileio import read_json_object, write_csv_atomic, write_text_atomic
from catalogs.gutenberg_richter import b_value, mc_max_curvature
from catalogs.matching import match_catalogs
from catalogs.picks import station_shifted
from catalogs.schema import InputError, seconds_since
from generator.network import Network
from generator.params import GeneratorParams
from genie.associate import Associator, write_outputs
from genie.model import GenieModel, resolve_device
from genie.pseudolabels import ConfidenceSettings, confident_events, holdout_mask, real_picks
from genie.train import TrainConfig, dataclass_from, load_config, train, training_travel_times

logger = logging.getLogger(__name__)

MODEL_FILES = ("model.json", "model.pt", "generator_params.json", "train_config.json", "history.json")


def _s(default, unit: str, doc: str):
    return field(default=default, metadata={"unit": unit, "doc": doc})


@dataclass
class SelfTrainSettings:
    """Settings of the loop (units in each field's metadata)."""

    rounds: int = _s(2, "1", "self-training rounds after round 0")
    block_hours: float = _s(4.0, "h", "length of the time blocks of the harvest / held-out split")
    holdout_every: int = _s(3, "1", "every this-many-th block is held out (1/3 of the time)")
    finetune_steps: int = _s(1000, "steps", "optimiser steps of each round's fine-tuning")
    finetune_learning_rate: float = _s(3e-4, "1", "Adam rate at the start of fine-tuning")
    finetune_final_learning_rate: float = _s(3e-5, "1", "... decaying to this at the last step")
    real_fraction: float = _s(0.5, "1", "fraction of fine-tuning steps on pseudo-labelled real windows")
    shifted_fraction: float = _s(0.25, "1", "fraction of those real batches on station-shifted picks (certain "
                                            "negatives with the real stream's statistics)")
    recalibration: dict = _s(None, "-", "CalibrationSettings of the recalibration (short search from the last fit)")
    round0_calibration: dict = _s(None, "-", "CalibrationSettings of round 0's calibration when no model is given "
                                             "(default: genie calibrate's)")
    stop_change: float = _s(0.02, "1", "stop when fewer than this fraction of events differ from the last round")
    keep_best: bool = _s(False, "-", "continue from and keep the round with the best held-out score")
    chance_check: bool = _s(True, "-", "associate the held-out picks shifted per station every round")
    magnitude_thresholds: tuple = _s((1.0, 1.5, 2.0), "M", "held-out recall is reported at M >= each")
    max_dt_s: float = _s(3.0, "s", "origin-time tolerance of a match with the reference")
    max_dist_km: float = _s(15.0, "km", "epicentre tolerance of a match with the reference")
    config: str = _s("small", "-", "model configuration of round 0 when no model is given")
    cuda_windows: int = _s(64, "1", "windows per batch when training on CUDA (a GPU takes larger batches at "
                                    "about the cost of a small one; CPU runs keep the configuration's)")
    seed: int = _s(0, "1", "seed of calibration, training, batches and shifts")
    confidence: ConfidenceSettings = field(default_factory=ConfidenceSettings)

    def __post_init__(self):
        if self.round0_calibration is None:
            self.round0_calibration = {}
        if self.recalibration is None:
            self.recalibration = {"n_calls": 30, "screen": 32, "bootstrap": 20, "bootstrap_candidates": 10,
                                  "profile_points": 5, "timing_calls": 0}
        if self.rounds < 0 or self.holdout_every < 2 or self.block_hours <= 0 or not 0 <= self.real_fraction <= 1:
            raise InputError(f"self-training settings out of range: rounds {self.rounds} (>= 0), holdout_every "
                             f"{self.holdout_every} (>= 2), block_hours {self.block_hours} (> 0), real_fraction "
                             f"{self.real_fraction} (0-1)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, path: str | os.PathLike, **overrides) -> "SelfTrainSettings":
        """Settings from a JSON object (any field; ``confidence`` a nested object), then ``overrides``."""
        values = read_json_object(path, "JSON object of self-training settings")
        return dataclass_from(cls, {**values, **overrides}, str(path))


def _read_events(path: Path) -> pd.DataFrame:
    events = pd.read_csv(path, dtype={"event_id": str})
    events["time"] = pd.to_datetime(events["time"], utc=True, format="ISO8601")
    return events


def _copy_model(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)


def _maxc_summary(magnitudes: np.ndarray, dm: float = 0.1) -> dict:
    """Mc by maximum curvature and the b-value above it (the report's Fig. 4.3/4.4 comparison),
    in the keys of :func:`catalogs.compare.gutenberg_richter_summary`."""
    m = magnitudes[np.isfinite(magnitudes)]
    if len(m) == 0:
        return {"n": 0, "mc_maxc": None, "mc": None, "mc_method": "maxc", "b": None, "b_sigma": None, "a": None,
                "n_above_mc": 0}
    mc = mc_max_curvature(m, dm)
    fit = b_value(m, mc, dm)
    return {"n": int(len(m)), "mc_maxc": mc, "mc": mc, "mc_method": "maxc", "b": fit.b, "b_sigma": fit.sigma,
            "a": fit.a, "n_above_mc": fit.n}


class SelfTrainer:
    """The loop of the module doc on one network's picks."""

    def __init__(self, picks: pd.DataFrame, stations: pd.DataFrame, out: str | os.PathLike,
                 settings: SelfTrainSettings | None = None, reference: pd.DataFrame | None = None,
                 reference_label: str = "reference", model_dir: str | os.PathLike | None = None,
                 generator_params: GeneratorParams | None = None, velocity_model=None, device: str = "auto",
                 tt_spacing_km: float = 1.0, cache_dir=None, progress: bool = True):
        if reference is None and model_dir is None:
            raise InputError("self-training needs a reference catalog to calibrate round 0, or a trained --model")
        self.picks = picks.reset_index(drop=True)
        self.stations = stations
        self.out = Path(out)
        self.settings = settings or SelfTrainSettings()
        self.reference = reference
        self.reference_label = reference_label
        self.model_dir = Path(model_dir) if model_dir else None
        self.start_params = generator_params
        self.velocity_model = velocity_model
        self.device = resolve_device(device)
        self.tt_spacing_km = tt_spacing_km
        self.cache_dir = cache_dir
        self.progress = progress
        self.network = Network.from_stations(stations)
        self.rows: list[dict] = []

    # ------------------------------------------------------------------ helpers
    def round_dir(self, k: int) -> Path:
        return self.out / f"round_{k}"

    def _associator(self, model_dir: Path) -> Associator:
        overrides = {"progress": self.progress}
        scale = self.out / "magnitude_scale.json"
        if scale.is_file():
            overrides["magnitude_scale"] = str(scale)
        return Associator.from_pretrained(model_dir, device=str(self.device), **overrides)

    def _ensure_prepared(self, model_dir: Path) -> None:
        """Picks as the associator uses them, the model's network, the time split and the
        coherent picks (once, with round 0's model)."""
        if hasattr(self, "prep"):
            return
        associator = self._associator(model_dir)
        # The model's station order, positions and label width hold for every round (fine-tuning
        # keeps the configuration): the network every later step works on.
        self.network = associator.model.network
        self.label_sigma_km = associator.model.config.label_sigma_km
        prep = associator.prepare(self.picks, self.stations)
        self.prep = prep
        self.epoch = prep.epoch
        s = self.settings
        times = self.picks["time"].iloc[prep.rows]
        self.pick_heldout = holdout_mask(times, prep.epoch, s.block_hours, s.holdout_every)
        model = associator.model
        statics = model.statics.cpu().numpy()
        bounds = pair_moveout_bounds(self.network, model.travel_times, statics, padding_km=model.config.padding_km,
                                     depth_max_km=model.config.depth_max_km)
        self.bounds = bounds
        block = s.block_hours * 3600.0
        first = np.floor(prep.start_s / block) * block
        edges = np.arange(first, prep.end_s + block, block)
        spans = np.column_stack([np.maximum(edges[:-1], prep.start_s), np.minimum(edges[1:], prep.end_s)])
        number = np.round(edges[:-1] / block).astype(np.int64)
        self.harvest_spans = spans[(np.mod(number, s.holdout_every) != s.holdout_every - 1) & (spans[:, 1] > spans[:, 0])]
        logger.info("%d of %d picks in held-out blocks", int(self.pick_heldout.sum()), len(self.pick_heldout))
        if not self.pick_heldout.any():
            logger.warning("no picks fall in a held-out block (every %dth block of %g h): the held-out scores are "
                           "empty; shorten block_hours", s.holdout_every, s.block_hours)

    def unexplained(self, assignments: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(coherent, chance)``: bool ``[n]`` over the used picks: unassociated picks that line up
        with unassociated picks of the same label on at least 4 other stations (within the
        pair's moveout bound), and the same test with each station's unassociated picks shifted
        by its own 20-120 s (moveout destroyed: the count chance alone gives). Only the leftover
        picks can still form an event: a pick belongs to one event, and in a dense swarm most
        picks line up with some assigned pick by chance."""
        p = self.prep
        assigned = np.zeros(len(self.picks), bool)
        assigned[assignments["pick_index"].to_numpy(dtype=np.int64)] = True
        free = np.flatnonzero(~assigned[p.rows])
        coherent, chance = np.zeros(len(p.rows), bool), np.zeros(len(p.rows), bool)
        coherent[free] = coherent_picks(p.station[free], p.time_s[free], p.phase[free], self.bounds)
        rng = np.random.default_rng(self.settings.seed)
        offset = rng.uniform(20.0, 120.0, self.network.xyz.shape[0])
        span = max(float(p.end_s - p.start_s), 1.0)
        shifted = p.start_s + np.mod(p.time_s[free] - p.start_s + offset[p.station[free]], span)
        chance[free] = coherent_picks(p.station[free], shifted, p.phase[free], self.bounds)
        return coherent, chance

    def _statics_update(self, params: GeneratorParams, confident_assignments: pd.DataFrame) -> dict:
        """Station statics moved by the median residual (>= 5 picks) of the confident picks."""
        station_of_row = np.full(len(self.picks), -1, dtype=np.int64)
        station_of_row[self.prep.rows] = self.prep.station
        station = station_of_row[confident_assignments["pick_index"].to_numpy(dtype=np.int64)]
        phase = (confident_assignments["phase"].to_numpy() == "S").astype(np.int64)
        known = station >= 0
        statics = params.statics_for(self.network.ids) + median_residuals(
            station[known], phase[known], confident_assignments["residual_s"].to_numpy()[known], len(self.network.ids))
        return {sid: {"P": float(statics[i, 0]), "S": float(statics[i, 1])} for i, sid in enumerate(self.network.ids)}

    # ------------------------------------------------------------------ round 0
    def _round0_model(self, rdir: Path) -> tuple[Path, GeneratorParams, dict]:
        """The model of round 0 (given or trained) and its generator parameters."""
        model_out = rdir / "model"
        info: dict = {}
        if self.model_dir is not None:
            if not (model_out / "model.pt").is_file():
                _copy_model(self.model_dir, model_out)
            path = model_out / "generator_params.json"
            params = self.start_params or (GeneratorParams.from_json(path) if path.is_file() else GeneratorParams())
            history = model_out / "history.json"
            if history.is_file():
                last = json.loads(history.read_text())[-1]
                info["validation"] = last.get("validation")
            return model_out, params, info
        from generator.velocity import VelocityModel, load_velocity_model

        s = self.settings
        velocity = self.velocity_model if isinstance(self.velocity_model, VelocityModel) else \
            load_velocity_model(self.velocity_model or "hadley_kanamori")
        start = self.start_params or GeneratorParams()
        model_settings, config = load_config(s.config)
        config.seed = s.seed
        if self.device.type == "cuda":
            config.batch.windows = max(config.batch.windows, s.cuda_windows)
        travel_times = training_travel_times(self.network, start, model_settings, velocity, self.tt_spacing_km,
                                             self.cache_dir)
        t0 = time.perf_counter()
        labelled = label_picks(self.reference, self.picks, self.network, travel_times)
        params, report = calibrate(self.network, labelled, travel_times, picks=self.picks, start=start,
                                   settings=CalibrationSettings(**{"seed": s.seed, **s.round0_calibration}),
                                   checkpoint_path=rdir / "calibration_checkpoint.json", progress=self.progress)
        params.to_json(rdir / "generator_params.json")
        write_text_atomic(rdir / "calibration_report.json", json.dumps(report, indent=2, default=float) + "\n")
        info["calibration_objective"] = report["objective_calibrated"]
        info["calibrate_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, info["validation"] = train(self.network, travel_times, params, model_settings, config, model_out,
                                      device=self.device, progress=self.progress)
        info["train_s"] = time.perf_counter() - t0
        return model_out, params, info

    # ------------------------------------------------------------------ one round's association and scores
    def _associate(self, model_dir: Path, rdir: Path, first: bool) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        associator = self._associator(model_dir)
        self._ensure_prepared(model_dir)
        t0 = time.perf_counter()
        events, assignments = associator.associate(self.picks, self.stations, workdir=rdir)
        timing = {"associate_s": time.perf_counter() - t0}
        if first and self.reference is not None and len(events) and not (self.out / "magnitude_scale.json").is_file():
            scale, _ = associator.fit_magnitude_scale(events, assignments, self.picks, self._reference_span(),
                                                      self.reference_label, self.settings.max_dt_s,
                                                      self.settings.max_dist_km)
            if scale is not None:
                scale.to_json(self.out / "magnitude_scale.json")
                events = associator.add_magnitudes(events, assignments, self.picks, scale)
        write_outputs(rdir, events, assignments, self.picks)
        held = self.picks.iloc[self.prep.rows[self.pick_heldout]]
        if self.settings.chance_check and len(held):
            t0 = time.perf_counter()
            fake, _ = associator.associate(station_shifted(held, self.settings.seed), self.stations)
            timing["chance_check_s"] = time.perf_counter() - t0
            timing["shifted_events"] = len(fake)
        return events, assignments, timing

    def _reference_span(self) -> pd.DataFrame:
        ref = self.reference
        t = self.picks["time"]
        return ref[(ref["time"] >= t.min()) & (ref["time"] <= t.max())].reset_index(drop=True)

    def _heldout_events(self, events: pd.DataFrame) -> np.ndarray:
        s = self.settings
        return holdout_mask(events["time"], self.epoch, s.block_hours, s.holdout_every) if len(events) else \
            np.zeros(0, bool)

    def _metrics(self, k: int, events: pd.DataFrame, assignments: pd.DataFrame, rdir: Path) -> dict:
        s = self.settings
        held = self._heldout_events(events)
        confident = confident_events(events, s.confidence, self.label_sigma_km).to_numpy() if len(events) else held
        unexplained, chance = self.unexplained(assignments)
        row = {"round": k, "events": len(events), "associated_picks": len(assignments),
               "confident_events": int(confident.sum()), "harvest_confident_events": int((confident & ~held).sum()),
               "unexplained_coherent_picks": int(unexplained.sum()),
               "unexplained_coherent_chance": int(chance.sum()),
               "heldout_unexplained_coherent_picks": int((unexplained & self.pick_heldout).sum()),
               "heldout_unexplained_coherent_chance": int((chance & self.pick_heldout).sum()),
               "mean_abs_residual_s": float(np.abs(assignments["residual_s"]).mean()) if len(assignments) else np.nan,
               "heldout_events": int(held.sum())}
        n_held = max(int(held.sum()), 1)
        false_rate = np.nan
        if s.chance_check and "shifted_events" in self._timing:
            row["heldout_shifted_events"] = int(self._timing["shifted_events"])
            false_rate = row["heldout_shifted_events"] / n_held
        if self.reference is not None:
            ref = self._reference_span()
            ref_held = ref[holdout_mask(ref["time"], self.epoch, s.block_hours, s.holdout_every)].reset_index(drop=True)
            ev_held = events[held].reset_index(drop=True)
            labels = {"catalog": f"genie round {k}", "reference": self.reference_label}
            write_comparison(events, ref, rdir / "compare", labels, self.stations, s.max_dt_s, s.max_dist_km)
            write_comparison(ev_held, ref_held, rdir / "compare_heldout", labels, self.stations, s.max_dt_s,
                             s.max_dist_km)
            pairs = match_catalogs(ev_held, ref_held, max_dt_s=s.max_dt_s, max_dist_km=s.max_dist_km)
            found = np.zeros(len(ref_held), bool)
            found[pairs["reference_index"].to_numpy(dtype=int)] = True
            mags = ref_held["magnitude"].to_numpy(dtype="float64")
            row["heldout_reference_events"] = len(ref_held)
            row["heldout_recall"] = float(found.mean()) if len(found) else np.nan
            for m in s.magnitude_thresholds:
                sel = mags >= m
                row[f"heldout_recall_m{m:g}"] = float(found[sel].mean()) if sel.any() else np.nan
            row["heldout_count_ratio"] = len(ev_held) / max(len(ref_held), 1)
            row["heldout_mc"] = mc_max_curvature(ev_held["magnitude"].dropna()) if len(ev_held) else np.nan
            row["reference_heldout_mc"] = mc_max_curvature(mags[np.isfinite(mags)]) if len(mags) else np.nan
            recalls = [row["heldout_recall"]] + [row[f"heldout_recall_m{m:g}"] for m in s.magnitude_thresholds]
            quality = float(np.nanmean(recalls))
        else:
            quality = float(confident[held].mean()) if held.any() else 0.0
        row["heldout_score"] = quality - (0.0 if np.isnan(false_rate) else false_rate)
        return row

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict:
        """Run (or resume) the loop; returns the summary (also ``summary.json``)."""
        s = self.settings
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out / "settings.json", json.dumps(s.to_dict(), indent=2, default=list) + "\n")
        params0 = None
        best_k, prev_events = 0, None
        for k in range(s.rounds + 1):
            rdir = self.round_dir(k)
            rdir.mkdir(parents=True, exist_ok=True)
            metrics_path = rdir / "metrics.json"
            if metrics_path.is_file():
                logger.info("round %d finished earlier; resuming after it", k)
                row = json.loads(metrics_path.read_text())
                events = _read_events(rdir / "events.csv")
                if k == 0:
                    params0 = GeneratorParams.from_json(rdir / "model" / "generator_params.json")
                    self._ensure_prepared(rdir / "model")
            else:
                row, events, params = self._run_round(k, best_k, params0, prev_events)
                write_text_atomic(metrics_path, json.dumps(row, indent=2, default=float) + "\n")
                logger.info("round %d: %s", k, row)
                params0 = params if k == 0 else params0
            self.rows.append(row)
            if not s.keep_best or row["heldout_score"] > self.rows[best_k]["heldout_score"]:
                best_k = k
            prev_events = events
            if row.get("stopped"):
                logger.info("round %d changed %.1f %% of the events (< %.1f %%): stopping", k,
                            100 * row["changed_fraction"], 100 * s.stop_change)
                break
        return self._finish(best_k)

    def _run_round(self, k: int, best_k: int, params0: GeneratorParams | None,
                   prev_events: pd.DataFrame | None) -> tuple[dict, pd.DataFrame, GeneratorParams]:
        """Round ``k`` (module doc): its ``rounds.csv`` row, its events and generator parameters."""
        s = self.settings
        rdir = self.round_dir(k)
        started = time.perf_counter()
        if k == 0:
            model_dir, params, info = self._round0_model(rdir)
        else:
            base = self.round_dir(best_k if s.keep_best else k - 1)
            model_dir, params, info = self._improve(k, base, params0)
        events, assignments, self._timing = self._associate(model_dir, rdir, first=(k == 0))
        info.update({key: v for key, v in self._timing.items() if key.endswith("_s")})
        row = self._metrics(k, events, assignments, rdir)
        validation = info.pop("validation", None) or {}
        row["validation_f1"] = validation.get("f1", np.nan)
        row["calibration_objective"] = info.pop("calibration_objective", np.nan)
        if prev_events is not None:
            pairs = match_catalogs(events, prev_events, max_dt_s=s.max_dt_s, max_dist_km=s.max_dist_km)
            row["changed_fraction"] = 1.0 - 2 * len(pairs) / max(len(events) + len(prev_events), 1)
            row["stopped"] = bool(row["changed_fraction"] < s.stop_change)
        row.update({key: round(v, 1) for key, v in info.items()})
        row["round_s"] = round(time.perf_counter() - started, 1)
        return row, events, params

    def _improve(self, k: int, base: Path, params0: GeneratorParams) -> tuple[Path, GeneratorParams, dict]:
        """Steps 1-3 of the module doc: harvest from ``base``, recalibrate, fine-tune."""
        s = self.settings
        rdir = self.round_dir(k)
        base_model = base / "model"
        model = GenieModel.load(base_model)
        self._ensure_prepared(base_model)
        events = _read_events(base / "events.csv")
        path = base / "assignments.csv"
        # No events, no assignments file: the confident-event check below then refuses the round.
        assignments = pd.read_csv(path, dtype={"event_id": str}) if path.is_file() else pd.DataFrame(
            {"pick_index": [], "event_id": [], "phase": [], "residual_s": []})
        held = self._heldout_events(events)
        confident = confident_events(events, s.confidence, model.config.label_sigma_km).to_numpy() & ~held
        if confident.sum() < 20:
            raise InputError(f"round {k}: only {int(confident.sum())} confident events in the harvest blocks of "
                             f"round {k - 1}; self-training needs at least 20 (loosen the confidence settings)")
        info: dict = {"pseudo_labels": int(confident.sum())}
        conf_events = events[confident].reset_index(drop=True)
        conf_assign = assignments[assignments["event_id"].isin(conf_events["event_id"])].reset_index(drop=True)
        prev_params = GeneratorParams.from_json(base / "model" / "generator_params.json")
        travel_times = model.travel_times

        t0 = time.perf_counter()
        params_path = rdir / "generator_params.json"
        if params_path.is_file() and (rdir / "calibration_report.json").is_file():
            params = GeneratorParams.from_json(params_path)
            info["calibration_objective"] = json.loads((rdir / "calibration_report.json").read_text())[
                "objective_calibrated"]
        else:
            reference = from_associations(conf_events, conf_assign, self.picks, self.network, travel_times)
            reference.summary["station_corrections_s"] = self._statics_update(prev_params, conf_assign)
            fixed = {name: getattr(prev_params, name) for name in TIMING_BOUNDS}
            fixed["timing_distribution"] = prev_params.timing_distribution
            settings = CalibrationSettings(**{**s.recalibration, "seed": s.seed + k,
                                              "fixed": {**fixed, **s.recalibration.get("fixed", {})}})
            objective = Objective.from_reference(self.network, reference, seed=s.seed + k)
            params, report = calibrate(self.network, reference, travel_times, picks=self.picks, start=prev_params,
                                       settings=settings, objective=objective,
                                       checkpoint_path=rdir / "calibration_checkpoint.json", progress=self.progress)
            params.to_json(params_path)
            write_text_atomic(rdir / "calibration_report.json", json.dumps(report, indent=2, default=float) + "\n")
            info["calibration_objective"] = report["objective_calibrated"]
        info["calibrate_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        row_of = pd.Index(events["event_id"].astype(str))
        assigned_event = np.full(len(self.picks), -1, dtype=np.int64)
        assigned_phase = np.full(len(self.picks), -1, dtype=np.int64)
        rows = assignments["pick_index"].to_numpy(dtype=np.int64)
        assigned_event[rows] = row_of.get_indexer(assignments["event_id"].astype(str))
        assigned_phase[rows] = (assignments["phase"].to_numpy() == "S").astype(np.int64)
        p = self.prep
        xyz = events[["x_km", "y_km", "depth_km"]].to_numpy(dtype="float64")
        coherent, _ = self.unexplained(assignments)
        real = real_picks(model, p.station, p.time_s, p.phase, assigned_event[p.rows], assigned_phase[p.rows], xyz,
                          seconds_since(events["time"], p.epoch), confident, coherent, self.harvest_spans, p.epoch,
                          s.shifted_fraction)
        saved = json.loads((base_model / "train_config.json").read_text())
        config = dataclass_from(TrainConfig, saved["train"], str(base_model / "train_config.json"))
        config.steps = s.finetune_steps
        config.learning_rate = s.finetune_learning_rate
        config.final_learning_rate = s.finetune_final_learning_rate
        config.validate_every = 0
        config.seed = s.seed + k
        if self.device.type == "cuda":
            config.batch.windows = max(config.batch.windows, s.cuda_windows)
        _, info["validation"] = train(self.network, travel_times, params, model.config.to_dict(), config, rdir / "model",
                                      device=self.device, progress=self.progress, init_from=base_model, real=real,
                                      real_fraction=s.real_fraction, validation_params=params0)
        info["train_s"] = time.perf_counter() - t0
        return rdir / "model", params, info

    # ------------------------------------------------------------------ outputs
    def _finish(self, best_k: int) -> dict:
        from genie.plots import plot_rounds

        s = self.settings
        table = pd.DataFrame(self.rows)
        write_csv_atomic(table, self.out / "rounds.csv", float_format="%.6g")
        plot_rounds(table, self.out / "rounds.png", s.magnitude_thresholds)
        final = best_k if s.keep_best else int(table["round"].iloc[-1])
        _copy_model(self.round_dir(final) / "model", self.out / "model")
        summary = {"final_round": final, "rounds": self.rows, "settings": s.to_dict(),
                   "figures": {"rounds": str(self.out / "rounds.png")}}
        if self.reference is not None:
            summary.update(self._gutenberg_richter(final))
            summary["figures"]["gutenberg_richter"] = str(self.out / "gutenberg_richter_heldout.png")
        write_text_atomic(self.out / "summary.json", json.dumps(summary, indent=2, default=float) + "\n")
        return summary

    def _gutenberg_richter(self, final: int) -> dict:
        """G-R of round 0, the final round and the reference on the held-out blocks (figure + summary)."""
        from catalogs.plots import plot_gutenberg_richter

        s = self.settings
        ref = self._reference_span()
        ref = ref[holdout_mask(ref["time"], self.epoch, s.block_hours, s.holdout_every)]
        mags = {"reference": ref["magnitude"].to_numpy(dtype="float64")}
        labels = {"reference": self.reference_label}
        for k, name in ((0, "round 0"), (final, f"round {final}")):
            events = _read_events(self.round_dir(k) / "events.csv")
            mags[name] = events["magnitude"].to_numpy(dtype="float64")[self._heldout_events(events)]
            labels[name] = f"genie {name}"
        summaries = {name: _maxc_summary(m) for name, m in mags.items()}
        final_m, ref_m = mags[f"round {final}"], mags["reference"]
        above = {}
        for threshold in (2.0, 2.5, 3.0):
            a, b = int((final_m >= threshold).sum()), int((ref_m >= threshold).sum())
            above[f"m{threshold:g}"] = {"genie": a, "reference": b,
                                        "difference_sigma": (a - b) / np.sqrt(max(a + b, 1))}
        plot_gutenberg_richter(mags, summaries, self.out / "gutenberg_richter_heldout.png", labels=labels)
        return {"gutenberg_richter_heldout": summaries, "counts_above": above}
