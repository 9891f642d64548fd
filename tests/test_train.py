import json

import numpy as np
import pytest
import torch

from catalogs.schema import InputError
from generator.params import GeneratorParams
from genie.batches import BatchSettings, draw_batch
from genie.cli import main
from genie.model import GenieModel, ModelConfig
from genie.train import TrainConfig, batch_losses, learning_rate, load_config, train
from tests.test_generator import grid_network
from tests.conftest import TINY

PARAMS = GeneratorParams(event_rate_per_day=2000.0, depth_max_km=15.0, region_padding_km=20.0)
SETTINGS = BatchSettings(windows=4, chunk_s=300.0, queries=6)


def _config(steps: int) -> TrainConfig:
    # A constant rate, so that a 2-step run extended to 4 steps is the same run as 4 steps straight
    # (the exponential decay is laid out over `steps`).
    return TrainConfig(steps=steps, checkpoint_every=2, validation_hours=0.05, final_learning_rate=1e-3,
                       batch=SETTINGS)


def test_batch_labels_follow_the_truth(homogeneous_tt):
    torch.manual_seed(0)
    network = grid_network(4, 10.0)
    model = GenieModel.build(ModelConfig(**TINY), network, homogeneous_tt)
    batches = (draw_batch(model, network, homogeneous_tt, PARAMS, SETTINGS, np.random.default_rng(seed))
               for seed in range(20))
    batch = next(b for b in batches if (b.assoc_event >= 0).any())
    # Windows without an event source carry a decoy (all-null target) or are skipped.
    assert set(batch.assoc_event[batch.assoc_event < 0].tolist()) <= {-1, -2}
    assert batch.grid_labels.shape == (4, 30) and batch.query_labels.shape == (4, 6)
    assert 0 <= batch.grid_labels.min() and batch.grid_labels.max() <= 1
    assert batch.active.sum(1).min() >= 3
    event_windows = batch.assoc_event >= 0
    assert event_windows.any()
    # Query 0 of an event window sits within a few km and tenths of a second of its event.
    assert (batch.query_labels[event_windows, 0] > 0.5).all()
    losses = batch_losses(model, batch)
    assert set(losses) == {"grid", "query", "assoc_p", "assoc_s"}
    assert all(torch.isfinite(v) for v in losses.values())


def test_burst_batches_hold_clustered_sequences(homogeneous_tt, monkeypatch):
    import dataclasses

    from genie import batches

    network = grid_network(4, 10.0)
    model = GenieModel.build(ModelConfig(**TINY), network, homogeneous_tt)
    drawn, real = [], batches.synthetic_truth

    def spy(*args):
        drawn.append((args[2], real(*args)))  # (generator parameters, truth) of each stretch
        return drawn[-1][1]

    monkeypatch.setattr(batches, "synthetic_truth", spy)

    def crowding(truth):
        """Median number of other events within 3 km and 60 s of an event."""
        near = (np.linalg.norm(truth.events_xyz[:, None] - truth.events_xyz[None], axis=-1) < 3.0) \
            & (np.abs(truth.events_s[:, None] - truth.events_s[None]) < 60.0)
        return float(np.median(near.sum(1) - 1))

    plain = draw_batch(model, network, homogeneous_tt, PARAMS, SETTINGS, np.random.default_rng(3))
    # Burst sizes and radii without a burst fraction draw nothing: the batch is the plain one.
    unused = draw_batch(model, network, homogeneous_tt, PARAMS,
                        dataclasses.replace(SETTINGS, burst_size=(50.0, 50.0)), np.random.default_rng(3))
    assert torch.equal(plain.grid_labels, unused.grid_labels) and torch.equal(plain.centre_s, unused.centre_s)
    assert crowding(drawn[0][1]) == 0  # 2,000 a day over the box: events rarely share a few km and a minute
    bursty = dataclasses.replace(SETTINGS, burst_fraction=1.0, burst_size=(100.0, 100.0), burst_radius_km=(1.0, 1.0))
    for seed in range(10):
        draw_batch(model, network, homogeneous_tt, PARAMS, bursty, np.random.default_rng(seed))
        params, truth = drawn[-1]
        assert params.burst_rate_per_day == pytest.approx(86400.0 / SETTINGS.chunk_s)
        assert (params.burst_size, params.burst_radius_km) == (pytest.approx(100.0), 1.0)
        if len(truth.events_s) > 40:  # a stretch with a sequence (on average one per stretch)
            assert crowding(truth) >= 5
            break
    else:
        pytest.fail("no stretch held a sequence in 10 draws")


def test_training_resumes_exactly(homogeneous_tt, tmp_path):
    network = grid_network(4, 10.0)
    straight, _ = train(network, homogeneous_tt, PARAMS, TINY, _config(4), tmp_path / "a", progress=False)
    train(network, homogeneous_tt, PARAMS, TINY, _config(2), tmp_path / "b", progress=False)
    resumed, report = train(network, homogeneous_tt, PARAMS, TINY, _config(4), tmp_path / "b", progress=False)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert {"precision", "recall", "f1", "pick_accuracy"} <= set(report)
    history = json.loads((tmp_path / "b" / "history.json").read_text())
    assert [h["step"] for h in history if "grid" in h] == [2, 4]
    loaded = GenieModel.load(tmp_path / "b")
    assert torch.equal(loaded.source_xyz, resumed.source_xyz)
    # A checkpoint from another model is refused rather than silently mixed.
    with pytest.raises(InputError, match="another model"):
        train(network, homogeneous_tt, PARAMS, {**TINY, "hidden": 9}, _config(4), tmp_path / "b", progress=False)
    # So is one trained on another generator.
    with pytest.raises(InputError, match="other generator parameters"):
        train(network, homogeneous_tt, PARAMS.replace(ps_selection_correlation=0.5), TINY, _config(4), tmp_path / "b",
              progress=False)


def test_learning_rate_decays_to_the_final_rate():
    config = TrainConfig(steps=11, learning_rate=1e-3, final_learning_rate=1e-4)
    assert learning_rate(config, 0) == pytest.approx(1e-3)
    assert learning_rate(config, 5) == pytest.approx(10 ** -3.5)
    assert learning_rate(config, 10) == pytest.approx(1e-4)


def test_load_config_named_and_file(tmp_path):
    model, config = load_config("small")
    assert model["n_sources"] == 300 and config.batch.windows == 16
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"base": "small", "model": {"hidden": 10}, "train": {"steps": 7, "batch": {"windows": 3}}}))
    model, config = load_config(str(path))
    assert model["hidden"] == 10 and config.steps == 7 and config.batch.windows == 3 and config.batch.queries == 16
    path.write_text(json.dumps({"model": {"hiden": 10}}))
    with pytest.raises(InputError, match="hiden"):
        load_config(str(path))
    with pytest.raises(InputError, match="neither a named"):
        load_config("medium")


def cli_train_args(tmp_path, tt_cache) -> list[str]:
    """``genie train`` arguments for a 2-step TINY run on the 4 x 4 grid (stations, PARAMS in
    ``tmp_path/params.json`` and the configuration written to ``tmp_path``), ending in
    ``--device cpu --quiet``."""
    network = grid_network(4, 10.0)
    stations = tmp_path / "stations.csv"
    network.stations.to_csv(stations, index=False)
    params = tmp_path / "params.json"
    PARAMS.to_json(params)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"base": "small", "model": TINY,
                                  "train": {"steps": 2, "checkpoint_every": 1, "validation_hours": 0.05,
                                            "batch": {"windows": 2, "chunk_s": 200.0, "queries": 4}}}))
    return ["train", "--stations", str(stations), "--velocity-model", "homogeneous:6.0", "--generator-params",
            str(params), "--config", str(config), "--out", str(tmp_path / "out"), "--tt-spacing", "2",
            "--cache", str(tt_cache), "--device", "cpu", "--quiet"]


def test_cli_train(homogeneous_tt, tmp_path, capsys, monkeypatch, tt_cache):
    args = cli_train_args(tmp_path, tt_cache)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "F1" in out and (tmp_path / "out" / "model.pt").is_file()
    assert main(args[:-3] + ["--device", "cuda"]) == (0 if torch.cuda.is_available() else 2)
    assert main(args[:-1] + ["--steps", "0"]) == 2


def test_a_batch_without_event_windows_still_reaches_every_weight(homogeneous_tt):
    # DistributedDataParallel needs a gradient for every weight at every step.
    import dataclasses

    from genie.batches import NO_EVENT

    torch.manual_seed(0)
    network = grid_network(4, 10.0)
    model = GenieModel.build(ModelConfig(**TINY), network, homogeneous_tt)
    batch = draw_batch(model, network, homogeneous_tt, PARAMS, SETTINGS, np.random.default_rng(0))
    batch = dataclasses.replace(batch, assoc_event=torch.full_like(batch.assoc_event, NO_EVENT - 1))
    losses = batch_losses(model, batch)
    assert losses["assoc_p"].item() == 0.0 and losses["assoc_s"].item() == 0.0
    sum(losses.values()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []
    assert all(torch.all(p.grad == 0) for name, p in model.named_parameters() if name.startswith("association."))
