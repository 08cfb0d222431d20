"""Data-parallel training with torch.distributed, started by torchrun (one process per device).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; ``init_from_env`` reads
them. Every rank holds the whole model; after each backward the parameter gradients are averaged
over the ranks (an explicit all-reduce: the optimisers then take identical steps, so the weights
stay identical without a DDP wrapper). Each rank samples its own tasks with a generator derived
from (seed, rank), so a run is reproducible for a given world size. Only rank 0 writes files.

Without WORLD_SIZE (or with WORLD_SIZE=1) nothing here does anything: a single process computes
exactly what it computed before this module existed.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from fsbench.errors import FsbenchError
from fsbench.methods.base import Method

# rank r > 0 samples training tasks from seed + r * RANK_STREAM (apart from VAL/TEST streams)
RANK_STREAM = 7_000_003


def env_world_size() -> int:
    """WORLD_SIZE as torchrun set it (1 without torchrun)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise FsbenchError(
            f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}"
        ) from None
    if size < 1:
        raise FsbenchError(f"WORLD_SIZE must be >= 1, got {size}")
    return size


def active() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """The number of ranks (1 when not distributed)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes files and prints the result."""
    return rank() == 0


def init_from_env(device: torch.device) -> torch.device:
    """Join torchrun's process group (gloo on CPU, NCCL on CUDA); returns this rank's device.

    On CUDA each process takes the GPU of its LOCAL_RANK. Without WORLD_SIZE > 1: ``device``.
    """
    if env_world_size() == 1:
        return device
    if device.type == "cuda":
        device = local_device(device)
        torch.cuda.set_device(device)
    if active():  # joined already (a second run in the same process)
        return device
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend=backend)
    except (ValueError, RuntimeError) as exc:
        msg = " ".join(str(exc).split())
        raise FsbenchError(f"cannot join the torchrun process group ({backend}): {msg}") from None
    return device


def local_device(device: torch.device) -> torch.device:
    """cuda:LOCAL_RANK, with a one-line error when this node has fewer GPUs than processes."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise FsbenchError(
            f"LOCAL_RANK {local} needs GPU {local}, but this node has "
            f"{torch.cuda.device_count()}; start at most that many processes per node"
        )
    return torch.device("cuda", local)


def shutdown() -> None:
    """Leave the process group (a no-op when not distributed)."""
    if active():
        dist.destroy_process_group()


def rank_seed(seed: int) -> int:
    """The seed of this rank's training stream: ``seed`` on rank 0, so one process is unchanged."""
    return seed + rank() * RANK_STREAM


def all_reduce_mean_grads(model: nn.Module) -> None:
    """Average every parameter gradient over the ranks (each rank's loss is a mean over its share)."""
    if not active():
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # one collective instead of one per tensor
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The mean of each logged metric over the ranks (every rank logs the same keys)."""
    if not active():
        return metrics
    keys = list(metrics)
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    values /= world_size()
    return {k: float(v) for k, v in zip(keys, values.tolist(), strict=True)}


def broadcast_module(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers (batch-norm running statistics) to every rank."""
    if not active():
        return
    for tensor in [*model.parameters(), *model.buffers()]:
        dist.broadcast(tensor.data, src=0)


def gather_objects(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not active():
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def eval_share(method: Method) -> dict:
    """Keyword arguments that split ``method.evaluate``'s episodes over the ranks.

    Only the episodic evaluation of ``Method`` knows how; a method with its own ``evaluate`` (the
    classifiers) runs it whole on every rank, which gives the same numbers on each.
    """
    if not active() or type(method).evaluate is not Method.evaluate:
        return {}
    return {"share": (rank(), world_size()), "gather": gather_objects}
