"""Training with two gloo ranks (DistributedDataParallel on CPU) against a one-process replica
that averages the two ranks' gradients by hand."""

import json
import shutil

import numpy as np
import pytest
import torch

from genie import distributed
from genie.batches import draw_batch
from genie.cli import main
from genie.model import GenieModel
from genie.train import batch_losses, learning_rate, total_loss, train
from tests.conftest import TINY
from tests.test_generator import grid_network
from tests.test_train import PARAMS, SETTINGS, _config, cli_train_args


def _train_rank(network, travel_times, out, steps):
    train(network, travel_times, PARAMS, TINY, _config(steps), out, progress=False)


def _replica_steps(model, optimiser, network, travel_times, steps, ranks, config):
    """Steps ``steps`` as ``len(ranks)`` ranks take them: every rank's batch from its own seed
    stream, gradients averaged, one Adam step. Returns the batches' first window centres per
    step and rank."""
    params = list(model.parameters())
    centres = {}
    for step in steps:
        grads = []
        for rank in ranks:
            batch = draw_batch(model, network, travel_times, PARAMS, SETTINGS,
                               np.random.default_rng(distributed.batch_seed(config.seed, step, rank)))
            centres[step, rank] = batch.centre_s.clone()
            loss = total_loss(batch_losses(model, batch), config.loss_weights)
            g = torch.autograd.grad(loss, params, allow_unused=True)
            grads.append([torch.zeros_like(p) if x is None else x for p, x in zip(params, g)])
        for p, *gs in zip(params, *grads):
            p.grad = torch.stack(gs).mean(0)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(config, step)
        optimiser.step()
    return centres


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5, msg=name)


def test_two_gloo_ranks_average_gradients_and_resume_with_one(homogeneous_tt, tmp_path):
    network = grid_network(4, 10.0)
    train(network, homogeneous_tt, PARAMS, TINY, _config(1), tmp_path / "one", progress=False)
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    # Steps 1 and 2 on two ranks, resumed from the one-process checkpoint at step 1.
    distributed.spawn(_train_rank, 2, torch.device("cpu"), (network, homogeneous_tt, tmp_path / "two", 3))

    state = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=False)
    replica = GenieModel.load(tmp_path / "one")
    replica.load_state_dict(state["model"])
    replica.train()
    optimiser = torch.optim.Adam(replica.parameters())
    optimiser.load_state_dict(state["optimiser"])
    centres = _replica_steps(replica, optimiser, network, homogeneous_tt, [1, 2], [0, 1], _config(3))
    # Distinct seed streams: the two ranks train on different windows.
    assert not torch.equal(centres[1, 0], centres[1, 1])
    two = GenieModel.load(tmp_path / "two")
    _assert_same_weights(two, replica)
    history = json.loads((tmp_path / "two" / "history.json").read_text())
    assert [h["step"] for h in history if "grid" in h] == [1, 2, 3]

    # The two-rank checkpoint resumes in one process: step 3 is rank 0's batch alone.
    resumed, report = train(network, homogeneous_tt, PARAMS, TINY, _config(4), tmp_path / "two", progress=False)
    _replica_steps(replica, optimiser, network, homogeneous_tt, [3], [0], _config(4))
    _assert_same_weights(resumed, replica)
    assert {"precision", "recall", "f1"} <= set(report)


def test_cli_train_nproc(tmp_path, capsys, tt_cache):
    args = cli_train_args(tmp_path, tt_cache)
    assert main(args + ["--nproc", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 ranks" in out and "F1" in out and (tmp_path / "out" / "model.pt").is_file()
    assert main(args + ["--nproc", "0"]) == 2
    assert "--nproc must be at least 1" in capsys.readouterr().err
    # A checkpoint of another generator, found by rank 0, is the same bad-input error on 2 ranks.
    PARAMS.replace(ps_selection_correlation=0.5).to_json(tmp_path / "params.json")
    assert main(args + ["--nproc", "2"]) == 2
    assert "other generator parameters" in capsys.readouterr().err
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        assert main(args[:-3] + ["--device", "cuda", "--nproc", "2"]) == 2


@pytest.mark.parametrize("rank, expected", [(0, [7, 0, 5]), (1, [7, 0, 5, 1]), (3, [7, 0, 5, 3])])
def test_batch_seed_streams(rank, expected):
    assert distributed.batch_seed(7, 5, rank) == expected
