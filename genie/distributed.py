"""Training on several processes: ``torch.distributed`` with DistributedDataParallel.

A run has ``world`` ranks (processes). Each draws its own batches from a seed stream of its own
(:func:`batch_seed`), DistributedDataParallel averages the gradients, and every rank takes the
same Adam step, so the weights stay identical on all ranks. Rank 0 alone reads and writes files
(checkpoint, model, history) and validates; it hands the checkpoint it resumes from to the other
ranks (:func:`broadcast`), so the ranks need no shared file system and a checkpoint resumes with
any number of ranks (step, weights and optimiser state are the same on every rank).

Two ways to start a run:

* ``genie train --nproc N``: :func:`spawn` starts N local processes (``gloo`` on CPU, ``nccl``
  with one GPU per rank);
* under ``torchrun`` (one machine or several): :func:`init_from_environment` joins the process
  group that torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
  ``MASTER_PORT``) describes.

Without a process group everything here is a no-op for rank 0 of a world of 1, which is the
single-process run, unchanged.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket

import torch
import torch.distributed as dist

from catalogs.schema import InputError

logger = logging.getLogger(__name__)

# Rank 0 validates while the others wait in a collective; a long validation must not time out.
TIMEOUT = datetime.timedelta(hours=4)


def rank_and_world() -> tuple[int, int]:
    """(rank, number of ranks) of this process; (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def batch_seed(seed: int, step: int, rank: int) -> list[int]:
    """Seed of the batch rank ``rank`` draws at ``step``: rank 0 draws the single-process run's
    batches, so one rank is that run exactly and N ranks add N - 1 streams of their own."""
    return [seed, 0, step] if rank == 0 else [seed, 0, step, rank]


def broadcast(obj):
    """``obj`` as rank 0 has it, on every rank (unchanged without a process group)."""
    rank, world = rank_and_world()
    if world == 1:
        return obj
    box = [obj if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def rank_device(device: torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` for a CUDA run (one GPU per rank), else ``device``."""
    if device.type != "cuda" or rank_and_world()[1] == 1:
        return device
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def backend_for(device: torch.device) -> str:
    """``nccl`` for GPUs, ``gloo`` for CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_from_environment(device: torch.device) -> bool:
    """Join the process group described by torchrun's environment; False when there is none
    (``WORLD_SIZE`` unset or 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        return dist.is_initialized()
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend_for(device), timeout=TIMEOUT)
    logger.info("rank %d of %d (%s)", dist.get_rank(), world, backend_for(device))
    return True


def leave() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_nproc(nproc: int, device: torch.device) -> None:
    """A clear error for a rank count the machine cannot run."""
    if nproc < 1:
        raise InputError(f"--nproc must be at least 1 (got {nproc})")
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise InputError(f"--nproc {nproc} on cuda needs {nproc} GPUs; this machine has {torch.cuda.device_count()}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, device: str, threads: int, fn, args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(threads)
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend_for(dev), rank=rank, world_size=world, timeout=TIMEOUT)
    try:
        fn(*args)
    finally:
        leave()


def spawn(fn, nproc: int, device: torch.device, args: tuple = ()) -> None:
    """Run ``fn(*args)`` on ``nproc`` local ranks (spawned processes in one process group) and
    wait for them. On CPU the machine's threads are shared out among the ranks. ``fn`` and
    ``args`` must be picklable (a module-level function). A rank that fails raises here (an
    :class:`InputError` of a rank as an :class:`InputError`)."""
    check_nproc(nproc, device)
    threads = max(1, torch.get_num_threads() // nproc) if device.type == "cpu" else torch.get_num_threads()
    try:
        torch.multiprocessing.start_processes(_rank_main, args=(nproc, _free_port(), str(device), threads, fn, args),
                                              nprocs=nproc, join=True, start_method="spawn")
    except torch.multiprocessing.ProcessRaisedException as exc:
        # A rank's bad-input error (every rank raises the same one) is the user's error here too;
        # the rank's traceback ends with "catalogs.schema.InputError: <message>".
        last = str(exc).strip().splitlines()[-1]
        if last.startswith(f"{InputError.__module__}.InputError: "):
            raise InputError(last.split(": ", 1)[1]) from None
        raise
