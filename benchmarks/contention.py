"""A build on a busy machine: alone, beside a second identical build, and beside `recsys serve` under load.

    python benchmarks/contention.py                       # as the recsys command runs (passive OpenMP waiting)
    python benchmarks/contention.py --wait-policy ACTIVE  # as it ran before (OpenMP's spinning wait)
    python benchmarks/contention.py --spincount 0         # passive waiting without the short spin

Each build is `recsys build-index` on the embedded MovieLens-100k with a fixed number of epochs
(`--epochs`, one pre-training epoch, no reranker), a subprocess as a user runs it. The runs:

1. one build alone: its wall time is the reference;
2. two identical builds at once: each one's wall time over the reference (two builds share the
   cores: 2x is the floor);
3. `recsys serve` (on the artifact of run 1) answering `GET /recommend` from two clients, first
   idle (its p50 is the reference), then while a build runs: the build's time over the
   reference, and the service's p50 over its idle p50.

Writes ``results/contention.json`` (rows keyed by the wait policy) and ``results/contention.md``.
Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from http_load import free_port, load, wait_until_up

from recsys.artifacts import machine_info

RESULTS = Path(__file__).resolve().parent / "results"


def build_cmd(out: Path, epochs: int) -> list[str]:
    return [sys.executable, "-m", "recsys", "build-index", "--out", str(out), "--no-reranker", "--epochs", str(epochs),
            "--pretrain-epochs", "1", "--quiet"]


def timed(cmds: list[list[str]], env: dict) -> list[float]:
    """Run the commands at once; each one's wall seconds."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in cmds]
    walls = [0.0] * len(procs)
    for i, p in enumerate(procs):
        _, err = p.communicate()
        walls[i] = time.perf_counter() - t0
        if p.returncode:
            raise SystemExit(f"build failed: {err.decode()[-2000:]}")
    return walls


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--wait-policy", default=None, help="OMP_WAIT_POLICY for every process (default: the entry's).")
    p.add_argument("--spincount", default=None, help="GOMP_SPINCOUNT for every process (default: the entry's, 1000).")
    p.add_argument("--requests", type=int, default=600, help="Requests of the idle service measurement.")
    args = p.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    if args.wait_policy:
        env["OMP_WAIT_POLICY"] = args.wait_policy
    if args.spincount is not None:
        env["GOMP_SPINCOUNT"] = args.spincount
    policy = (f"{args.wait_policy or 'PASSIVE'}, GOMP_SPINCOUNT={args.spincount or 'default'}"
              if args.wait_policy or args.spincount is not None else
              "PASSIVE, GOMP_SPINCOUNT=1000 (the recsys entry point's default)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        alone = timed([build_cmd(tmp / "a", args.epochs)], env)[0]
        print(f"alone: {alone:.1f} s", flush=True)
        pair = timed([build_cmd(tmp / "b", args.epochs), build_cmd(tmp / "c", args.epochs)], env)
        print(f"two at once: {pair[0]:.1f} s, {pair[1]:.1f} s", flush=True)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "recsys", "serve", "--artifacts", str(tmp / "a"), "--port",
                                   str(port), "--no-rerank", "--store", str(tmp / "ev.sqlite")], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_until_up(port, server)
            users = [str(u) for u in range(1, 944)]
            load(port, users, 100, 2, seed=1)  # warm-up
            idle = load(port, users, args.requests, 2, seed=2)
            print(f"serve idle: p50 {idle['p50_ms']} ms", flush=True)
            during: dict = {}
            stop = threading.Event()
            samples: list[dict] = []

            def clients():
                seed = 3
                while not stop.is_set():
                    samples.append(load(port, users, 100, 2, seed=seed))
                    seed += 1

            worker = threading.Thread(target=clients)
            worker.start()
            beside = timed([build_cmd(tmp / "d", args.epochs)], env)[0]
            stop.set()
            worker.join()
            p50s = sorted(s["p50_ms"] for s in samples)
            during = {"p50_ms": p50s[len(p50s) // 2] if p50s else None, "windows": len(samples),
                      "errors": sum(s["errors"] for s in samples)}
            print(f"build beside serve: {beside:.1f} s; serve p50 {during['p50_ms']} ms", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    row = {"wait_policy": policy, "epochs": args.epochs, "alone_s": round(alone, 1),
           "two_builds_s": [round(x, 1) for x in pair], "two_builds_ratio": round(max(pair) / alone, 2),
           "beside_serve_s": round(beside, 1), "beside_serve_ratio": round(beside / alone, 2),
           "serve_idle_p50_ms": idle["p50_ms"], "serve_during_build_p50_ms": during["p50_ms"],
           "serve_p50_ratio": round(during["p50_ms"] / idle["p50_ms"], 2) if during["p50_ms"] else None,
           "serve_errors": during["errors"] + idle["errors"], "cpus": os.cpu_count(),
           "machine": machine_info(), "date": time.strftime("%Y-%m-%d")}
    path = RESULTS / "contention.json"
    rows = [r for r in (json.loads(path.read_text()) if path.exists() else []) if r["wait_policy"] != policy]
    rows.append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| OpenMP wait policy | build alone s | two builds at once s (ratio) | build beside serve s (ratio) | "
             "serve p50 idle ms | serve p50 during a build ms (ratio) | date |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['wait_policy']} | {r['alone_s']} | {max(r['two_builds_s'])} ({r['two_builds_ratio']}x) | "
                     f"{r['beside_serve_s']} ({r['beside_serve_ratio']}x) | {r['serve_idle_p50_ms']} | "
                     f"{r['serve_during_build_p50_ms']} ({r['serve_p50_ratio']}x) | {r['date']} |")
    (RESULTS / "contention.md").write_text(
        f"### A build on a busy machine (benchmarks/contention.py, ML-100k, {args.epochs} epochs, no reranker, "
        f"{os.cpu_count()} CPUs)\n\n" + "\n".join(lines) + "\n\nTargets: two builds at most 2.3x one alone; the "
        "service's p50 during a build at most 3x its idle p50.\n")
    print("\n".join(lines))
    return row


if __name__ == "__main__":
    main()
