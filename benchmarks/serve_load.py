"""Load test of `recsys serve` on loopback: concurrent clients, fixed request count, p50/p99, throughput.

    python benchmarks/serve_load.py --artifacts artifacts/bench-movielens-100k

Starts the server (a subprocess, as deployed) once without the reranker and once with it
(``--always-rerank``), sends ``GET /recommend?user=U&k=10`` for random known users from
``--clients`` threads with keep-alive connections, and records each request's latency as the
client sees it (the clients share the machine's cores with the server). Writes ``results/serve_load.json`` and ``results/serve_load.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from http_load import free_port, load, wait_until_up

from recsys import layout

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


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
        port = free_port()
        store = Path(os.environ.get("TMPDIR", "/tmp")) / f"serve-load-{port}.sqlite"
        proc = subprocess.Popen([sys.executable, "-m", "recsys", "serve", "--artifacts", args.artifacts, "--store",
                                 str(store), "--port", str(port), flag], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            wait_until_up(port, proc)
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
