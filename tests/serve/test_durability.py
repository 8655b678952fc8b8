"""Kill the server hard while clients append events: every acknowledged event is in the store."""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from recsys.serve.store import EventStore

from .servers import free_port

REPO = Path(__file__).resolve().parents[2]


def _start(art: Path, store: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "recsys", "serve", "--artifacts", str(art), "--store", str(store),
                             "--port", str(port), "--no-rerank"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start: " + proc.stderr.read().decode()[-2000:])


def test_every_acknowledged_event_survives_a_hard_kill(shop, tmp_path):
    art, d = shop
    store, port = tmp_path / "events.sqlite", free_port()
    proc = _start(art, store, port)
    items = d.items["item_id"].to_list()
    acked, errors, stop = [], [], threading.Event()

    def client(n: int):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        i = 0
        while not stop.is_set():
            body = json.dumps({"events": [{"user_id": f"c{n}", "item_id": items[i % len(items)], "event": "view"}]})
            try:
                conn.request("POST", "/events", body, {"content-type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status == 200:
                    acked.extend(json.loads(data)["ids"])
            except (OSError, http.client.HTTPException) as e:  # the kill: connections drop
                errors.append(type(e).__name__)
                return
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    os.kill(proc.pid, signal.SIGKILL)  # no shutdown, no flush: as a power cut looks to the process
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 20, (len(acked), errors)
    stored = EventStore(store).ids()
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged events lost"
    # and the server starts again on the same store, and counts them
    proc = _start(art, store, port)
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/health")
        assert json.loads(c.getresponse().read())["events_in_store"] >= len(acked)
    finally:
        proc.kill()
        proc.wait()
