"""Device helpers: pick CPU or CUDA once, seed everything, detect faiss's GPU build.

Nothing here imports torch or faiss at import time; each helper imports what it needs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import re

import numpy as np

from .errors import ConfigError

log = logging.getLogger(__name__)


@functools.cache
def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str | None = None) -> str:
    """``None`` (or ``"auto"``) picks ``"cuda"`` when a GPU is usable, else ``"cpu"``; asking for
    CUDA without one warns and falls back to the CPU rather than failing; any other name, or a GPU
    number this machine lacks, is a one-line error.

    >>> resolve_device("cpu")
    'cpu'
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: --device 'gpu': not a device; give cpu, cuda or cuda:N (N: the GPU's number, from 0)
    """
    if device is None or device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ConfigError(f"--device {device!r}: not a device; give cpu, cuda or cuda:N (N: the GPU's number, from 0)")
    if device.startswith("cuda") and not cuda_available():
        log.warning("device %r requested but CUDA is not available; using the CPU", device)
        return "cpu"
    if device.startswith("cuda:"):
        import torch

        count = torch.cuda.device_count()
        if int(device[5:]) >= count:
            raise ConfigError(f"--device {device}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}; "
                              "give one of them, or cuda for the first")
    return device


def autocast(device):
    """bf16 autocast on a CUDA device (a ``torch.device`` or a string), a no-op elsewhere."""
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=torch.device(device).type == "cuda")


@contextlib.contextmanager
def flush_denormals():
    """While inside, the CPU treats denormal floats as zero. A softmax over thousands of items makes
    many of them in its backward pass, and each one is many times slower than a normal float; the
    difference to a trained model is nil. The default (off) is restored on the way out."""
    import torch

    try:
        yield torch.set_flush_denormal(True)
    finally:
        torch.set_flush_denormal(False)


@functools.cache
def faiss_gpu_count() -> int:
    """Number of GPUs faiss can use (0 with faiss-cpu or without a GPU)."""
    try:
        import faiss
    except ImportError:
        return 0
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get else 0


def set_seed(seed: int) -> None:
    """Seed Python, numpy and (if installed) torch, CPU and CUDA; ``seed``: 0 to 2**32 - 1."""
    if not 0 <= seed < 2**32:
        raise ConfigError(f"seed {seed}: give a whole number from 0 to {2**32 - 1}")
    random.seed(seed)
    np.random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)
    if cuda_available():
        torch.cuda.manual_seed_all(seed)
