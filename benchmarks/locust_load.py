"""Mixed load on `recsys serve` with locust (headless): recommendations, posted events and reloads.

    python benchmarks/locust_load.py --artifacts artifacts/bench-movielens-100k

Starts ``recsys serve`` (a subprocess, as deployed, without the reranker, with an admin token),
runs the users of ``benchmarks/locustfile.py`` against it for ``--duration`` seconds (``GET
/recommend`` and ``POST /events`` back to back from ``--users`` simulated users, and one admin
reloading the artifact every ``--reload-every`` seconds), samples the server's resident memory
every second, and writes ``results/locust.json`` and ``results/locust.md``: requests, failures,
p50/p99 per route, and RSS over time. Locust and the server share the machine's cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from http_load import free_port, wait_until_up

from recsys import layout
from recsys.artifacts import machine_info, machine_line

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def sample(pid: int, every: float, out: list, stop: threading.Event) -> None:
    start = time.monotonic()
    while not stop.is_set():
        mb = rss_mb(pid)
        if mb is not None:
            out.append((round(time.monotonic() - start, 1), round(mb, 1)))
        stop.wait(every)


def read_stats(path: Path) -> list[dict]:
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            rows.append({"route": r["Name"] if r["Name"] != "Aggregated" else "all", "requests": int(r["Request Count"]),
                         "failures": int(r["Failure Count"]), "p50_ms": float(r["50%"]), "p99_ms": float(r["99%"]),
                         "max_ms": float(r["Max Response Time"]), "requests_per_s": round(float(r["Requests/s"]), 1)})
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", default="artifacts/bench-movielens-100k")
    p.add_argument("--users", type=int, default=8, help="Simulated shoppers (each sends back to back).")
    p.add_argument("--spawn-rate", type=float, default=4.0)
    p.add_argument("--duration", type=int, default=60, help="Seconds of load.")
    p.add_argument("--reload-every", type=float, default=10.0, help="Seconds between two admin reloads.")
    p.add_argument("--out", default="locust", help="Result file stem under benchmarks/results/.")
    args = p.parse_args(argv)
    from recsys.artifacts import Artifact

    art = Artifact.open(args.artifacts)
    ids = {"users": art.load_table(layout.USERS)["id"].to_list(), "items": art.load_table(layout.ITEMS)["id"].to_list()}
    work = Path(tempfile.mkdtemp(prefix="locust-"))
    (work / "ids.json").write_text(json.dumps(ids))
    token = secrets.token_hex(16)
    env = {**os.environ, "RECSYS_ADMIN_TOKEN": token, "RECSYS_LOAD_IDS": str(work / "ids.json"),
           "RECSYS_LOAD_RELOAD_S": str(args.reload_every)}
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "recsys", "serve", "--artifacts", args.artifacts, "--store",
                               str(work / "events.sqlite"), "--port", str(port), "--no-rerank"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rss: list[tuple[float, float]] = []
    stop = threading.Event()
    try:
        wait_until_up(port, server)
        sampler = threading.Thread(target=sample, args=(server.pid, 1.0, rss, stop), daemon=True)
        sampler.start()
        cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(args.users + 1),
               "-r", str(args.spawn_rate), "-t", f"{args.duration}s", "--host", f"http://127.0.0.1:{port}",
               "--csv", str(work / "run"), "--only-summary", "--loglevel", "WARNING"]
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        stop.set()
        sampler.join()
        if not (work / "run_stats.csv").exists():
            raise SystemExit("locust wrote no statistics: " + done.stderr[-2000:])
    finally:
        stop.set()
        server.terminate()
        server.wait(30)
    stats = read_stats(work / "run_stats.csv")
    mbs = [mb for _, mb in rss]
    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine_info(),
        "artifacts": args.artifacts, "users": args.users, "duration_s": args.duration,
        "reload_every_s": args.reload_every,
        "command": f"python benchmarks/locust_load.py --artifacts {args.artifacts} --users {args.users} "
                   f"--duration {args.duration} --reload-every {args.reload_every:g}",
        "routes": stats,
        "rss_mb": {"start": mbs[0] if mbs else None, "max": max(mbs) if mbs else None,
                   "end": mbs[-1] if mbs else None, "every_second": rss},
        "server_stderr_tail": server.stderr.read().decode()[-500:] if server.stderr else "",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"### `recsys serve` under locust, {Path(args.artifacts).name}, loopback, {machine_line(result['machine'])}, "
             f"{result['date']}", "",
             f"{args.users} shoppers back to back (8 GET /recommend : 2 POST /events) + 1 admin reloading every "
             f"{args.reload_every:g} s, {args.duration} s; `{result['command']}`", "",
             "| route | requests | failures | p50 ms | p99 ms | max ms | requests/s |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['route']} | {r['requests']} | {r['failures']} | {r['p50_ms']:g} | {r['p99_ms']:g} | "
              f"{r['max_ms']:g} | {r['requests_per_s']:g} |" for r in stats]
    if mbs:
        lines += ["", f"Server RSS: {mbs[0]:.0f} MB at the start, {max(mbs):.0f} MB at most, {mbs[-1]:.0f} MB at the "
                      f"end ({len(mbs)} samples, one a second; all in the JSON)."]
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
