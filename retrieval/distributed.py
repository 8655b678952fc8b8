"""Multi-process training under ``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL on GPU).

``torchrun --nproc_per_node=N [--nnodes M --node_rank R --rdzv_endpoint HOST:PORT] -m recsys build-index ...``
starts N processes per machine, each with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in its
environment. :func:`init` joins them into one process group; every rank prepares the data (it
is deterministic, so all agree on the id maps), trains on its own shard of the users'
sequences with gradients averaged by DDP, and only rank 0 writes the artifact.

Outside ``torchrun`` (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) everything here is a no-op.
"""

from __future__ import annotations

import logging
import os

import numpy as np

log = logging.getLogger(__name__)


def launched() -> bool:
    """True when started by ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str) -> str:
    """Join the process group once (NCCL for CUDA, else gloo); returns this rank's device."""
    import torch
    import torch.distributed as dist

    if not launched():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        log.info("rank %d of %d on %s", dist.get_rank(), dist.get_world_size(), device)
    return device


def rank_and_size() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(users: np.ndarray, ends: np.ndarray, rank: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """This rank's training windows: those of the users with ``user % size == rank``.

    >>> shard(np.array([0, 1, 2, 3, 3]), np.array([5, 6, 7, 8, 9]), 1, 2)
    (array([1, 3, 3]), array([6, 8, 9]))
    """
    keep = users % size == rank
    return users[keep], ends[keep]


def common_steps(local_steps: int, device) -> int:
    """The fewest batches any rank has: every rank runs that many steps per epoch, so that no
    rank waits for a gradient all-reduce the others never start."""
    import torch
    import torch.distributed as dist

    _, size = rank_and_size()
    if size == 1:
        return local_steps
    t = torch.tensor([local_steps], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def broadcast_float(value: float, device) -> float:
    """Rank 0's ``value`` on every rank (e.g. the validation score early stopping acts on)."""
    import torch
    import torch.distributed as dist

    _, size = rank_and_size()
    if size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def wrap(module, device: str):
    """``module`` inside DistributedDataParallel when several ranks train, else unchanged."""
    _, size = rank_and_size()
    if size == 1:
        return module
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    ids = [int(device.split(":")[1])] if device.startswith("cuda:") else None
    # the cached text vectors are a buffer every rank computed identically: no need to sync them per step
    params = inspect.signature(DistributedDataParallel).parameters
    sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=ids, **sync)


def state_checksum(state: dict) -> str:
    """SHA-256 over a state dict's tensors in name order: equal on every rank that trained together."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def finish() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
