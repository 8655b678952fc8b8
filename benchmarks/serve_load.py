"""Load test of `recsys serve` on loopback: concurrent clients, fixed request count, p50/p99, throughput.

    python benchmarks/serve_load.py --artifacts artifacts/bench-movielens-100k

Starts the server (a subprocess, as deployed) once without the reranker and once with it
(``--always-rerank``), sends ``GET /recommend?user=U&k=10`` for random known users from
``--clients`` threads with keep-alive connections, and records each request's latency as the
client sees it (the clients share the machine's cores with the server). Writes ``results/serve_load.json`` and ``results/serve_load.md``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from recsys import layout

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen) -> None:
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("server exited: " + proc.stderr.read().decode()[-2000:]) from None
            time.sleep(0.2)
    raise SystemExit("server did not start")


def load(port: int, users: list[str], requests: int, clients: int, seed: int) -> dict:
    lat, codes, lock = [], [], threading.Lock()
    per = [requests // clients + (i < requests % clients) for i in range(clients)]

    def run(n: int, count: int):
        rng = random.Random(seed + n)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(count):
            t = time.perf_counter()
            conn.request("GET", f"/recommend?user={rng.choice(users)}&k=10")
            r = conn.getresponse()
            r.read()
            with lock:
                lat.append((time.perf_counter() - t) * 1000)
                codes.append(r.status)

    threads = [threading.Thread(target=run, args=(n, c)) for n, c in enumerate(per)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    a = np.array(lat)
    return {"requests": len(a), "clients": clients, "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "requests_per_s": round(len(a) / wall, 1),
            "errors": int(sum(c != 200 for c in codes))}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", default="artifacts/bench-movielens-100k")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--rerank-requests", type=int, default=60)
    p.add_argument("--clients", default="2,4,8", help="Concurrent clients, one run each (comma-separated).")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from recsys.artifacts import Artifact

    art = Artifact.open(args.artifacts)
    users = art.load_table(layout.USERS)["id"].to_list()
    rows = []
    for mode, flag, count in (("retrieval + fusion", "--no-rerank", args.requests),
                              ("with the reranker", "--always-rerank", args.rerank_requests)):
        if count == 0:
            continue
        if flag == "--always-rerank" and not art.has(layout.RERANKER_CONFIG):
            print(f"{args.artifacts} has no reranker: skipping that run")
            continue
        port = _port()
        store = Path(os.environ.get("TMPDIR", "/tmp")) / f"serve-load-{port}.sqlite"
        proc = subprocess.Popen([sys.executable, "-m", "recsys", "serve", "--artifacts", args.artifacts, "--store",
                                 str(store), "--port", str(port), flag], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            _wait(port, proc)
            load(port, users, 50, 2, args.seed + 99)  # warm-up
            for clients in [int(c) for c in args.clients.split(",")]:
                if flag == "--always-rerank" and clients > 2:
                    continue  # seconds per request: more clients only queue
                row = {"mode": mode, **load(port, users, count, clients, args.seed)}
                rows.append(row)
                print(json.dumps(row))
        finally:
            proc.kill()
            proc.wait()
            for suffix in ("", "-wal", "-shm"):
                Path(str(store) + suffix).unlink(missing_ok=True)
    result = {"artifact": str(args.artifacts), "dataset": art.manifest["data"]["name"], "rows": rows,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve_load.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"### `recsys serve` load test, {result['dataset']}, loopback, {result['machine']}, {result['date']}",
             "", "| mode | requests | clients | p50 ms | p99 ms | requests/s | errors |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['requests']} | {r['clients']} | {r['p50_ms']} | {r['p99_ms']} | "
              f"{r['requests_per_s']} | {r['errors']} |" for r in rows]
    (RESULTS / "serve_load.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
