"""Threads that behave on a shared CPU.

OpenMP's worker threads spin while they wait for work; on a CPU shared with another busy process
(a second build, the service beside a rebuild, a container whose quota is smaller than the cores
torch sees) they spin against each other and a training step can run ten times slower. So:

- :func:`prepare_process` sets ``OMP_WAIT_POLICY=PASSIVE`` (unless the user set one) before torch or
  any BLAS library is loaded — the ``recsys`` command, ``python -m recsys`` and torchrun's ranks
  call it first thing — and ``POLARS_MAX_THREADS`` from ``RECSYS_THREADS``. A waiting thread
  still spins ``GOMP_SPINCOUNT=1000`` times (about 10 µs; unless the user set a count) before it
  sleeps: a training step is hundreds of small operations microseconds apart, and waking a
  sleeping thread for each made a MovieLens step 1.6× slower on an idle machine, while 10 µs of
  spinning costs next to nothing beside another busy process;
- :func:`available_cpus` counts the CPUs this process may use: its affinity mask and a container's
  cgroup CPU quota, not the host's core count;
- :func:`configure` sets torch's, the BLAS pools' (threadpoolctl), faiss's and implicit's thread
  counts to one number: ``--threads N``, else ``$RECSYS_THREADS``, else :func:`available_cpus`.

Nothing here imports torch at import time.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)
ENV = "RECSYS_THREADS"
SPINCOUNT = 1000  # GNU OpenMP's spins before a waiting thread sleeps (torch's CPU builds use libgomp)
_state: dict = {"threads": None, "policy_before_torch": None, "blas_limit": None}


def cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (cgroup v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us``
    over ``cpu.cfs_period_us``), or None when there is none."""
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpus(root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may use: the smallest of its affinity mask, its cgroup quota (rounded
    up) and the machine's count; at least 1."""
    counts = [os.cpu_count() or 1]
    if hasattr(os, "sched_getaffinity"):
        counts.append(len(os.sched_getaffinity(0)))
    quota = cgroup_cpus(root)
    if quota:
        counts.append(math.ceil(quota))
    return max(1, min(counts))


def requested(threads: int | None = None) -> int:
    """``threads`` if given, else ``$RECSYS_THREADS``, else :func:`available_cpus`."""
    if threads:
        return int(threads)
    env = os.environ.get(ENV, "").strip()
    if env:
        try:
            if int(env) >= 1:
                return int(env)
        except ValueError:
            pass
        log.warning("$%s=%r is not a positive whole number; using %d threads", ENV, env, available_cpus())
    return available_cpus()


def prepare_process() -> None:
    """Before torch, the BLAS libraries or polars are imported: passive OpenMP waiting (unless
    ``OMP_WAIT_POLICY`` is set) and polars' pool from ``$RECSYS_THREADS``."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("GOMP_SPINCOUNT", str(SPINCOUNT))
    if os.environ.get(ENV, "").strip().isdigit():
        os.environ.setdefault("POLARS_MAX_THREADS", os.environ[ENV].strip())
    _state["policy_before_torch"] = "torch" not in sys.modules


def configure(threads: int | None = None) -> int:
    """Use ``threads`` threads (see :func:`requested`) in torch, the BLAS pools, faiss and ALS; returns it."""
    import scipy.linalg  # noqa: F401 - each of these loads a BLAS of its own: load them before the limit
    import torch
    from threadpoolctl import threadpool_limits

    n = requested(threads)
    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except (ImportError, AttributeError):
        pass
    _state["blas_limit"] = threadpool_limits(limits=n, user_api="blas")  # kept: the limit lasts while it lives
    _state["threads"] = n
    return n


def current() -> int:
    """The thread count set by :func:`configure` (else what it would set)."""
    return _state["threads"] or requested()


def report() -> dict:
    """What the process runs with: the policy, and each pool's threads (for ``recsys info``)."""
    import torch
    from threadpoolctl import threadpool_info

    blas = sorted({(p["internal_api"], p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"})
    out = {"available_cpus": available_cpus(), "cgroup_cpus": cgroup_cpus(), "configured": _state["threads"],
           "torch": torch.get_num_threads(), "blas": [{"library": lib, "threads": n} for lib, n in blas],
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
           "wait_policy_set_before_torch": _state["policy_before_torch"],
           "polars": os.environ.get("POLARS_MAX_THREADS")}
    try:
        import faiss

        out["faiss"] = faiss.omp_get_max_threads()
    except (ImportError, AttributeError):
        pass
    return out
