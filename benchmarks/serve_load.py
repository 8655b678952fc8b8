"""Load test of `recsys serve` on loopback: concurrent clients, fixed request count, p50/p99, throughput.

    python benchmarks/serve_load.py --artifacts artifacts/bench-movielens-100k
    python benchmarks/serve_load.py --synthetic-users 10000 --requests 200 --clients 2 --out serve_first_big

Starts the server (a subprocess, as deployed) once without the reranker and once with it
(``--always-rerank``), sends ``GET /recommend?user=U&k=10`` for random known users from
``--clients`` threads with keep-alive connections, and records each request's latency as the
client sees it (the clients share the machine's cores with the server). Each run also records how
long the server took to answer ``/health`` after its start (it loads the artifact and builds the
stored history's views first), the latency of the very first request, and when ``/health`` said
the inspector's views were ready; the timed requests start after that. Writes
``results/serve_load.json`` and ``results/serve_load.md`` (``--out``: another name).

``--synthetic-users N`` serves a synthetic shop instead (``recsys.synthetic``: N users, 5,000
items, about 100 events a user, so 10,000 users make about 1M events), built once into
``artifacts/serve-synthetic-N`` with the char-ngram text encoder, one training epoch and no
reranker: a large stored history, cheap to build, to time what a start costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from http_load import free_port, load, wait_until_ready, wait_until_up

from recsys import layout
from recsys.artifacts import machine_info, machine_line

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


def synthetic_artifact(users: int) -> Path:
    """A synthetic shop's artifact with ``users`` users (built once; see the module doc)."""
    from recsys.pipeline import BuildOptions, build
    from recsys.retrieval.charngram import CharNgramEncoder
    from recsys.retrieval.train import TrainConfig
    from recsys.synthetic import generate_synthetic

    out = REPO / "artifacts" / f"serve-synthetic-{users}"
    if not out.exists():
        d = generate_synthetic(n_users=users, n_items=5000, sessions_per_user=12, views_per_session=4, seed=0)
        build(d.dataset, out, opts=BuildOptions(holdout="temporal", text_encoder=CharNgramEncoder(dim=64),
                                                train=TrainConfig(epochs=1, pretrain_epochs=0), show_progress=False))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", default="artifacts/bench-movielens-100k")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--rerank-requests", type=int, default=60)
    p.add_argument("--clients", default="2,4,8", help="Concurrent clients, one run each (comma-separated).")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic-users", type=int, default=0, metavar="N",
                   help="Serve a synthetic shop of N users instead of --artifacts (built once).")
    p.add_argument("--out", default="serve_load", help="Result file stem in results/ (default: serve_load).")
    args = p.parse_args(argv)
    from recsys.artifacts import Artifact

    if args.synthetic_users:
        args.artifacts = str(synthetic_artifact(args.synthetic_users))

    art = Artifact.open(args.artifacts)
    users = art.load_table(layout.USERS)["id"].to_list()
    rows, starts = [], []
    for mode, flag, count in (("retrieval + fusion", "--no-rerank", args.requests),
                              ("with the reranker", "--always-rerank", args.rerank_requests)):
        if count == 0:
            continue
        if flag == "--always-rerank" and not art.has(layout.RERANKER_CONFIG):
            print(f"{args.artifacts} has no reranker: skipping that run")
            continue
        port = free_port()
        store = Path(os.environ.get("TMPDIR", "/tmp")) / f"serve-load-{port}.sqlite"
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "recsys", "serve", "--artifacts", args.artifacts, "--store",
                                 str(store), "--port", str(port), flag], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            wait_until_up(port, proc)
            up = time.perf_counter()
            first = load(port, users, 1, 1, args.seed + 98)
            starts.append({"mode": mode, "start_s": round(up - started, 2), "first_request_ms": first["p50_ms"]})
            wait_until_ready(port)  # the inspector's views: not beside the timed requests
            starts[-1]["inspector_ready_s"] = round(time.perf_counter() - started, 2)
            print(json.dumps(starts[-1]))
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
    result = {"artifact": str(args.artifacts), "dataset": art.manifest["data"]["name"], "rows": rows, "starts": starts,
              "machine": machine_info(), "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"### `recsys serve` load test, {result['dataset']}, loopback, {machine_line(result['machine'])}, {result['date']}",
             "", "| mode | requests | clients | p50 ms | p99 ms | requests/s | errors |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['requests']} | {r['clients']} | {r['p50_ms']} | {r['p99_ms']} | "
              f"{r['requests_per_s']} | {r['errors']} |" for r in rows]
    lines += ["", "| mode | up after s | first request ms | inspector ready after s |", "|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['start_s']} | {r['first_request_ms']} | {r['inspector_ready_s']} |" for r in starts]
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
