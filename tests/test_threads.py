"""Threads on a shared CPU: the wait policy is set before torch loads, --threads reaches every pool,
and the default count follows the affinity mask and a container's CPU quota."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsys import threads


def info(*args, **env) -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "RECSYS_THREADS",
                                                                 "POLARS_MAX_THREADS")}
    out = subprocess.run([sys.executable, "-m", "recsys", "info", "--json", *args], env={**environ, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["threads"]


def test_the_entry_point_sets_a_passive_wait_policy_before_torch_loads():
    t = info()
    assert t["omp_wait_policy"] == "PASSIVE" and t["wait_policy_set_before_torch"] is True
    assert t["gomp_spincount"] == "1000"  # a short spin before sleeping
    assert info(OMP_WAIT_POLICY="ACTIVE")["omp_wait_policy"] == "ACTIVE"  # the user's own setting stands
    assert info(GOMP_SPINCOUNT="0")["gomp_spincount"] == "0"


def test_the_console_script_goes_through_the_same_entry():
    script = Path(sys.executable).parent / "recsys"
    if not script.is_file():
        pytest.skip(f"no console script beside {sys.executable} (the package is not installed there)")
    assert "from recsys.cli.launch import main" in script.read_text()


def test_threads_reach_torch_blas_and_faiss():
    t = info("--threads", "1")
    assert t["configured"] == t["torch"] == t["faiss"] == 1 and {b["threads"] for b in t["blas"]} == {1}
    env = info(RECSYS_THREADS="1")  # the environment variable, with polars' pool set before polars loads
    assert env["torch"] == 1 and {b["threads"] for b in env["blas"]} == {1} and env["polars"] == "1"


def test_als_uses_the_configured_threads():
    from recsys.retrieval.als import ALSCandidates

    threads.configure(1)
    try:
        assert ALSCandidates()._new_model(False).num_threads == 1
    finally:
        threads.configure(None)


def test_a_container_quota_lowers_the_default(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpus(tmp_path) == 1.5
    assert threads.available_cpus(tmp_path) == min(2, len(os.sched_getaffinity(0)), os.cpu_count())
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert threads.available_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpus(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_cpus(v1) == 1.0 and threads.available_cpus(v1) == 1


def test_the_environment_variable_and_a_bad_value(monkeypatch, caplog):
    monkeypatch.setenv("RECSYS_THREADS", "3")
    assert threads.requested() == 3 and threads.requested(5) == 5
    monkeypatch.setenv("RECSYS_THREADS", "many")
    assert threads.requested() == threads.available_cpus()
    assert "$RECSYS_THREADS='many' is not a positive whole number" in caplog.text
