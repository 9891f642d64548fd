"""Training the GENIE model on batches from the calibrated generator.

Loss (weights ``loss_weights``, GENIE's 0.1 / 0.4 / 0.25 / 0.25): binary cross-entropy of the
source likelihood on the grid and at the continuous queries against the Gaussian space-time
labels, plus the cross-entropy of the P and S association (candidate picks and null) at every
active station for the event-centred windows. Adam, with the rate decaying exponentially from ``learning_rate`` to ``final_learning_rate``.

Every batch is drawn from ``numpy.random.default_rng([seed, 0, step])``, so a run resumed from a
checkpoint continues exactly as if it had not stopped. Several ranks (``genie train --nproc N``
or ``torchrun``, :mod:`genie.distributed`) each draw a batch per step from a stream of their own
(rank 0 the single-process stream) and average their gradients: N times the batch per step. Validation detects sources on
``validation_hours`` of held-out synthetic picks (a seed no training batch uses) at
``validation_rate_per_day`` and matches them one-to-one to the true events (origin time within
``match_s``, epicentre within ``match_km``): event precision (over every detection), recall of the
events that are labelled (the batches' ``min_picks`` on ``min_stations``) and whose true picks meet
the detection's acceptance rules (recall of every labelled event beside it), F1, and pick
association accuracy (correct event and phase over the union of true and assigned picks of
matched events).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from catalogs.fileio import atomic_path, read_json_object, write_text_atomic
from catalogs.matching import match_catalogs
from catalogs.schema import InputError
from generator.network import Network
from generator.params import GeneratorParams
from generator.synthesize import travel_time_extent
from generator.traveltimes import TravelTimes
from genie import distributed
from genie.allocator import retain_freed_memory
from genie.batches import NO_EVENT, START, UNKNOWN, Batch, BatchSettings, draw_batch, labelled_events, synthetic_truth
from genie.assign import counts, meets
from genie.detect import DetectSettings, detect
from genie.features import PickTable
from genie.labels import candidate_targets
from genie.model import GenieModel, ModelConfig
from genie.pseudolabels import draw_real_batch
from genie.sizing import size_model

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Optimisation, validation and checkpointing (units in each field's metadata)."""

    steps: int = field(default=20000, metadata={"unit": "1", "doc": "optimiser steps"})
    learning_rate: float = field(default=1e-3, metadata={"unit": "1", "doc": "Adam learning rate"})
    final_learning_rate: float = field(default=1e-4, metadata={
        "unit": "1", "doc": "the rate decays exponentially to this at the last step"})
    loss_weights: tuple = field(default=(0.1, 0.4, 0.25, 0.25), metadata={
        "unit": "1", "doc": "weights of the grid, query, P and S association losses"})
    checkpoint_every: int = field(default=100, metadata={"unit": "steps", "doc": "write checkpoint.pt this often"})
    validate_every: int = field(default=0, metadata={"unit": "steps", "doc": "validate this often (0: at the end only)"})
    validation_hours: float = field(default=2.0, metadata={"unit": "h", "doc": "held-out synthetic picks"})
    validation_rate_per_day: float | None = field(default=1000.0, metadata={
        "unit": "1/day", "doc": "event rate of the validation picks (None: the generator's)"})
    match_s: float = field(default=3.0, metadata={"unit": "s", "doc": "origin-time tolerance of a match"})
    match_km: float = field(default=15.0, metadata={"unit": "km", "doc": "epicentre tolerance of a match"})
    seed: int = field(default=0, metadata={"unit": "1", "doc": "seed of weights and batches"})
    batch: BatchSettings = field(default_factory=BatchSettings)
    detect: DetectSettings = field(default_factory=DetectSettings)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


CONFIGS = {
    # Written for a local network of ~10-30 stations and ~100 km aperture (15 minutes on 2 CPU
    # cores); genie.sizing scales the graph to larger networks within product_budget (24 minutes
    # for 100 stations over 300 km).
    "small": {
        "model": {"n_sources": 300, "k_sources": 10, "k_stations": 6, "hidden": 24, "latent": 12,
                  "n_product_layers": 2, "n_source_layers": 2, "kernel_s": 1.5, "wide_kernel_s": 4.5,
                  "label_sigma_km": 8.0, "product_budget": 7000,
                  "label_sigma_s": 2.0, "n_offsets": 3, "offset_step_s": 1.5, "k_query": 8,
                  "assoc_window_s": 3.0, "assoc_candidates": 8},
        "train": {"steps": 4000, "checkpoint_every": 100, "validate_every": 0, "validation_hours": 12.0,
                  "batch": {"windows": 16, "queries": 16, "min_picks": 6, "min_stations": 4},
                  "detect": {"min_picks": 6, "min_stations": 4, "min_p_picks": 3, "min_p_and_s_stations": 1,
                             "threshold": 0.05, "max_residual_s": 0.5, "residual_fraction": None,
                             "s_residual_factor": None}},
    },
    # GENIE's reference sizes (McBrearty & Beroza 2023), for a GPU.
    "full": {
        "model": {"n_sources": 500, "k_sources": 15, "k_stations": 8, "hidden": 30, "latent": 15,
                  "n_product_layers": 4, "n_source_layers": 3, "kernel_s": 5.0, "label_sigma_km": 15.0,
                  "label_sigma_s": 6.5, "n_offsets": 5, "offset_step_s": 2.0, "k_query": 15,
                  "assoc_window_s": 10.0, "assoc_candidates": 12, "product_budget": 100000},
        "train": {"steps": 20000, "checkpoint_every": 250, "validate_every": 2000, "validation_hours": 6.0,
                  "batch": {"windows": 75, "queries": 30}},
    },
}


def dataclass_from(cls, values: dict, source: str):
    """``cls`` from a dict of settings (nested dataclasses from nested dicts, tuples from lists);
    an unknown name is an :class:`InputError` naming ``source`` and the known names."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise InputError(f"{source}: unknown setting(s) {unknown}; known: {sorted(names)}")
    out = {}
    for key, value in values.items():
        default = names[key].default_factory() if names[key].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            out[key] = dataclass_from(type(default), value, f"{source}: {key}")
        else:
            out[key] = tuple(value) if isinstance(names[key].default, tuple) else value
    return cls(**out)


def load_config(spec: str, source: str | None = None) -> tuple[dict, TrainConfig]:
    """``(model settings, TrainConfig)`` for a named configuration (``small``, ``full``) or a JSON
    file ``{"base": "small", "model": {...}, "train": {...}}`` overriding a named one."""
    if spec in CONFIGS:
        base, overrides, source = spec, {}, spec
    else:
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"--config {spec}: neither a named configuration {sorted(CONFIGS)} nor a file")
        overrides = read_json_object(path, "JSON object {\"base\", \"model\", \"train\"}")
        base, source = overrides.pop("base", "small"), str(path)
        unknown = sorted(set(overrides) - {"model", "train"})
        if base not in CONFIGS or unknown:
            raise InputError(f"{path}: expected keys base ({sorted(CONFIGS)}), model, train; got {base!r}, {unknown}")
    model = {**CONFIGS[base]["model"], **overrides.get("model", {})}
    train = dict(CONFIGS[base]["train"])
    for key, value in overrides.get("train", {}).items():
        train[key] = {**train.get(key, {}), **value} if isinstance(value, dict) else value
    ModelConfig.from_dict(model, source)
    return model, dataclass_from(TrainConfig, train, source)


def training_travel_times(network: Network, params: GeneratorParams, model_settings: dict, velocity,
                          spacing_km: float = 1.0, cache_dir=None) -> TravelTimes:
    """The travel-time table a model of ``model_settings`` is trained with on ``network``: the
    generator's extent, deep enough for the source graph (its depth plus 5 km)."""
    max_dist, max_depth = travel_time_extent(network, params)
    values = {"depth_max_km": params.depth_max_km, **model_settings}
    depth = max(max_depth, float(values["depth_max_km"]) + 5.0)
    return TravelTimes.build(velocity, max_dist, depth, spacing_km=spacing_km, cache_dir=cache_dir)


def model_config_for(settings: dict, params: GeneratorParams, network: Network) -> ModelConfig:
    """The model configuration for a new model on ``network``: the source graph's depth range and
    padding taken from the generator where the settings leave them out, then sized to the
    network (:func:`genie.sizing.size_model`: pair range, node count, label widths)."""
    values = {**ModelConfig().to_dict(), "depth_min_km": params.depth_min_km, "depth_max_km": params.depth_max_km,
              "padding_km": params.region_padding_km, **settings}
    return ModelConfig.from_dict(size_model(values, network, params))


def batch_losses(model: GenieModel, batch: Batch) -> dict[str, torch.Tensor]:
    """The four loss terms of one batch (see module doc)."""
    k = model.config.n_offsets
    n_windows = len(batch.centre_s)
    origins = model.window_times(batch.centre_s).reshape(-1)
    features = model.features(batch.picks, origins, batch.active.repeat_interleave(k, dim=0))
    grid, z = model(features, n_windows)
    emb = model.query_embedding(z, batch.query_xyz, batch.query_dt)
    query = model.query_head(emb).squeeze(-1)
    out = {"grid": _weighted_bce(grid, batch.grid_labels, batch.grid_weight),
           "query": _weighted_bce(query, batch.query_labels, batch.query_weight)}
    # Event sources and decoys. A batch without any still runs the head on no windows (a zero
    # loss): every weight then has a gradient at every step, as DistributedDataParallel expects.
    has = batch.assoc_event >= NO_EVENT
    origin = batch.centre_s[has] + batch.query_dt[has, 0].to(torch.float64)
    index, valid, station_attr, pick_attr, _ = model.candidates(batch.picks, batch.query_xyz[has, 0], origin,
                                                                batch.active[has])
    logits = model.association_logits(emb[has, 0], station_attr, pick_attr, valid)  # [A, S, M+1, 2]
    target_event = batch.assoc_event[has][:, None].expand(-1, model.n_stations)
    targets = candidate_targets(index, valid, batch.pick_event, batch.pick_phase, target_event)  # [A, S, 2]
    # "No pick of this event here" is not taught where a candidate is a real pick that no
    # confident event explains: it may be this event's arrival, missed by the first pass.
    unknown = ((batch.pick_event[index] == UNKNOWN) & valid).any(-1)  # [A, S]
    n_slots = index.shape[-1]
    for phase, name in ((0, "assoc_p"), (1, "assoc_s")):
        weight = (batch.active[has] & ~(unknown & (targets[..., phase] == n_slots))).to(logits.dtype)
        ce = F.cross_entropy(logits[..., phase].reshape(-1, logits.shape[-2]), targets[..., phase].reshape(-1),
                             reduction="none")
        out[name] = (ce * weight.reshape(-1)).sum() / weight.sum().clamp(min=1.0)
    return out


def _weighted_bce(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Binary cross-entropy, the mean over the entries of positive ``weight`` (all when None)."""
    if weight is None:
        return F.binary_cross_entropy_with_logits(logits, labels)
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (loss * weight).sum() / weight.sum().clamp(min=1.0)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Adam's rate at ``step``: exponential from ``learning_rate`` to ``final_learning_rate``."""
    fraction = step / max(config.steps - 1, 1)
    return config.learning_rate * (config.final_learning_rate / config.learning_rate) ** fraction


def total_loss(losses: dict[str, torch.Tensor], weights) -> torch.Tensor:
    return sum(w * losses[name] for w, name in zip(weights, ("grid", "query", "assoc_p", "assoc_s")))


def validate(model: GenieModel, network: Network, travel_times: TravelTimes, params: GeneratorParams,
             config: TrainConfig, progress: bool = False) -> dict:
    """Event precision / recall / F1 and pick association accuracy on held-out synthetic picks."""
    rate = config.validation_rate_per_day or params.event_rate_per_day
    duration = config.validation_hours * 3600.0
    rng = np.random.default_rng([config.seed, 1])
    truth = synthetic_truth(network, travel_times, params.replace(event_rate_per_day=rate), duration, rng)
    picks = PickTable(truth.station, truth.time_s, truth.phase, model.n_stations, device=model.device)
    tail = 60.0  # events this close to the end lack picks; neither side is scored there
    model.eval()
    events, assignments = detect(model, picks, 0.0, duration - tail, config.detect, progress=progress)
    model.train()
    b = config.batch
    labelled = labelled_events(model, truth, np.ones((1, model.n_stations), bool), b.min_picks, b.min_stations)[0]
    labelled &= truth.events_s < duration - tail
    # Recall counts the labelled events whose true picks meet the acceptance rules: an event
    # with no station holding both a P and an S pick cannot pass min_p_and_s_stations = 1
    # whatever the model does. Recall against every labelled event is reported beside it.
    true_pick = truth.event >= 0
    tally = counts(truth.event[true_pick], truth.station[true_pick], truth.true_phase[true_pick], len(truth.events_s))
    admitted = labelled & meets(tally, np.full(len(truth.events_s), np.inf), config.detect.rules())
    true_events = np.flatnonzero(truth.events_s < duration - tail)

    def frame(origin_s, xyz):
        lat, lon = network.projection.to_latlon(xyz[:, 0], xyz[:, 1])
        return pd.DataFrame({"event_id": np.arange(len(origin_s)).astype(str),
                             "time": START + pd.to_timedelta(np.round(np.asarray(origin_s) * 1e9), unit="ns"),
                             "latitude": lat, "longitude": lon, "depth_km": xyz[:, 2], "magnitude": np.nan})

    pred = frame(events["origin_s"].to_numpy(), events[["x_km", "y_km", "depth_km"]].to_numpy())
    ref = frame(truth.events_s[true_events], truth.events_xyz[true_events])
    pairs = match_catalogs(pred, ref, max_dt_s=config.match_s, max_dist_km=config.match_km)
    det = pairs["catalog_index"].to_numpy(dtype=int)
    ev = true_events[pairs["reference_index"].to_numpy(dtype=int)]
    n_pred, n_true, n_labelled = len(pred), int(admitted.sum()), int(labelled.sum())
    precision = len(det) / n_pred if n_pred else 1.0
    recall = float(admitted[ev].sum()) / n_true if n_true else 1.0
    recall_labelled = float(labelled[ev].sum()) / n_labelled if n_labelled else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    # Pick association over matched pairs: correct / (true picks + assigned picks - correct).
    partner = np.full(len(events), -1)
    partner[det] = ev
    a_event = partner[assignments["event_index"].to_numpy(dtype=int)]
    a_pick = assignments["pick_index"].to_numpy(dtype=int)
    a_phase = (assignments["phase"] == "S").to_numpy(dtype=int)
    matched_rows = a_event >= 0
    correct = int(((truth.event[a_pick] == a_event) & (truth.true_phase[a_pick] == a_phase) & matched_rows).sum())
    n_true_picks = int(np.isin(truth.event, ev).sum())
    union = n_true_picks + int(matched_rows.sum()) - correct
    return {"precision": precision, "recall": recall, "f1": f1,
            "pick_accuracy": correct / union if union else 1.0, "recall_labelled": recall_labelled,
            "n_admitted": n_true, "n_labelled": n_labelled, "n_detected": n_pred, "n_matched": len(det), "hours": config.validation_hours,
            "rate_per_day": rate}


class TrainingLoss(torch.nn.Module):
    """The loss terms of a batch (:func:`batch_losses`) as a module's ``forward``, so that
    DistributedDataParallel, which averages gradients over what ``forward`` computes, can wrap
    the whole loss (the association head runs outside the model's own ``forward``)."""

    def __init__(self, model: GenieModel):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return batch_losses(self.model, batch)


def _wrap(loss: TrainingLoss, device: torch.device) -> torch.nn.Module:
    """``loss`` for this process: DistributedDataParallel when there are several ranks. The
    buffers (travel times, statics) are the same on every rank: no sync at each forward."""
    if distributed.rank_and_world()[1] == 1:
        return loss
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(loss, device_ids=[device.index] if device.type == "cuda" else None,
                                   forward_sync_buffers=False)


def _resume_state(checkpoint_path: Path, model: GenieModel, params: GeneratorParams) -> dict | None:
    """The checkpoint to resume from (None: start afresh); an :class:`InputError` when it was
    written for another model, network or generator."""
    if not checkpoint_path.is_file():
        return None
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    if state["meta"] != model.metadata():
        raise InputError(f"{checkpoint_path}: written for another model or network; "
                         "use a new --out or delete the checkpoint")
    saved = checkpoint_path.parent / "generator_params.json"
    # Resuming on another generator would train one model on two distributions unnoticed.
    if saved.is_file() and GeneratorParams.from_json(saved).to_json() != params.to_json():
        raise InputError(f"{checkpoint_path}: trained on other generator parameters ({saved}); "
                         "use a new --out or delete the checkpoint")
    return state


def _save_checkpoint(path: Path, model: GenieModel, optimiser, step: int, history: list) -> None:
    with atomic_path(path) as tmp:
        torch.save({"step": step, "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "optimiser": optimiser.state_dict(), "history": history, "meta": model.metadata()}, tmp)


def train(network: Network, travel_times: TravelTimes, params: GeneratorParams, model_settings: dict,
          config: TrainConfig, out: str | os.PathLike, device="cpu", progress: bool = True,
          init_from: str | os.PathLike | None = None, real=None, real_fraction: float = 0.0,
          validation_params: GeneratorParams | None = None) -> tuple[GenieModel, dict]:
    """Train (or resume from ``out/checkpoint.pt``) and write the model to ``out``.

    Writes ``model.json`` + ``model.pt`` (the trained model, :meth:`GenieModel.load`),
    ``checkpoint.pt`` (weights, optimiser state, step, history), ``generator_params.json``,
    ``train_config.json`` and ``history.json``. Returns the model and the final validation.

    Under a process group (:mod:`genie.distributed`) every rank calls this: rank 0 reads the
    checkpoint and hands it to the others, writes every file and validates; all return the same
    weights and report. On ``cuda`` each rank takes its own GPU (``cuda:LOCAL_RANK``).

    Fine-tuning (the self-training loop): ``init_from`` is a model directory whose weights start
    the run (same configuration and network); ``real`` (:class:`genie.pseudolabels.RealPicks`)
    supplies windows of real picks labelled by confident events, drawn at a fraction
    ``real_fraction`` of the steps (the others synthetic); ``validation_params`` fixes the
    generator of the synthetic validation set (default ``params``), so rounds are scored alike."""
    retain_freed_memory()  # genie.allocator: no fresh pages for each batch
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Gates left to the generator are fixed here, so validation and every later association of
    # the model (train_config.json) use the same numbers.
    config = dataclasses.replace(config, detect=config.detect.for_generator(params))
    rank, world = distributed.rank_and_world()
    lead = rank == 0
    device = distributed.rank_device(torch.device(device))
    checkpoint_path = out / "checkpoint.pt"
    torch.manual_seed(config.seed)
    model = GenieModel.build(model_config_for(model_settings, params, network), network, travel_times,
                             params.statics_for(network.ids))
    step, history = 0, []
    state = None
    if lead:
        try:
            state = _resume_state(checkpoint_path, model, params)
        except InputError as error:
            state = error  # raised on every rank, not only on the one that read the file
    state = distributed.broadcast(state)
    if isinstance(state, InputError):
        raise state
    if state is not None:
        model.load_state_dict(state["model"])
        step, history = state["step"], state["history"]
        if lead:
            logger.info("resuming from %s at step %d", checkpoint_path, step)
    elif init_from is not None:
        start = GenieModel.load(init_from)
        if start.metadata() != model.metadata():
            raise InputError(f"{init_from}: a model of another configuration or network cannot start this run")
        # Weights only: the buffers (station statics, travel times) are this run's generator's.
        model.load_state_dict(dict(start.named_parameters()), strict=False)
        logger.info("starting from the weights in %s", init_from)
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    if step:
        optimiser.load_state_dict(state["optimiser"])
    if lead:
        params.to_json(out / "generator_params.json")
        write_text_atomic(out / "train_config.json", json.dumps(
            {"model": model.config.to_dict(), "train": config.to_dict()}, indent=2, default=list) + "\n")

    model.train()
    loss_module = _wrap(TrainingLoss(model), device)
    bar = tqdm(range(step, config.steps), initial=step, total=config.steps, desc="training", unit="step",
               disable=not (progress and lead))
    started, running = time.perf_counter(), {}
    for step in bar:
        rng = np.random.default_rng(distributed.batch_seed(config.seed, step, rank))
        if real is not None and rng.random() < real_fraction:
            batch = draw_real_batch(model, real, config.batch, rng)
        else:
            batch = draw_batch(model, network, travel_times, params, config.batch, rng)
        losses = loss_module(batch)
        loss = total_loss(losses, config.loss_weights)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(config, step)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        for name, value in losses.items():
            running[name] = 0.9 * running.get(name, value.item()) + 0.1 * value.item()
        bar.set_postfix({k: f"{v:.3f}" for k, v in running.items()})
        done = step + 1
        # The history's losses are rank 0's running means (its own batches).
        if lead and (done % config.checkpoint_every == 0 or done == config.steps):
            history.append({"step": done, **{k: round(v, 5) for k, v in running.items()},
                            "seconds": round(time.perf_counter() - started, 1)})
            if config.validate_every and done % config.validate_every == 0 and done != config.steps:
                history[-1]["validation"] = validate(model, network, travel_times, validation_params or params, config)
                logger.info("step %d: validation %s", done, history[-1]["validation"])
            _save_checkpoint(checkpoint_path, model, optimiser, done, history)
    bar.close()
    report = None
    if lead:
        report = validate(model, network, travel_times, validation_params or params, config, progress=progress)
        history.append({"step": max(config.steps, step), "validation": report})
        _save_checkpoint(checkpoint_path, model, optimiser, max(config.steps, step), history)
        model.save(out)
        write_text_atomic(out / "history.json", json.dumps(history, indent=2) + "\n")
    return model, distributed.broadcast(report)
