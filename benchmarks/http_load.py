"""Helpers of the load benchmarks (``serve_load.py``, ``contention.py``): a free port, waiting for
``recsys serve`` to answer (and for its inspector's views), and keep-alive clients that time ``GET /recommend``."""

from __future__ import annotations

import http.client
import json
import random
import socket
import subprocess
import threading
import time

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(port: int, proc: subprocess.Popen) -> None:
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


def wait_until_ready(port: int, timeout: float = 300.0) -> None:
    """Until ``/health`` says the inspector's views are computed (a thread beside the service that
    would otherwise share the cores with the requests being timed)."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/health")
        ready = json.loads(c.getresponse().read()).get("inspector_ready", True)
        c.close()
        if ready:
            return
        time.sleep(0.2)
    raise SystemExit(f"the inspector's views were not ready after {timeout:.0f} s")


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


