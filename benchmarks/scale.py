"""How each stage grows with the data: synthetic events at 100k, 1M and 10M (items up to 1M).

    python benchmarks/scale.py                       # 100k and 1M (about 6 minutes on 2 cores)
    python benchmarks/scale.py --sizes 100000,1000000,10000000

Each stage runs in its own process (so that its peak memory is its own) on the same generated
data, written once as Parquet: ingest (load + checks), cleaning, ALS fit (15 iterations,
64 factors), one two-tower training epoch (sampled softmax: 2,048 random and up to 2,048 in-batch
negatives, 64-d, batches of 128 windows; beyond
20,000 windows timed on a random subset of users and scaled to all windows), text
encoding (all-MiniLM-L6-v2 on 2,000 item texts, then scaled to the catalogue: the rate is
per item and flat), index build (HNSW over the catalogue's vectors, random here) and batch
recommendation (two-tower user vectors + FAISS for 10,000 users), and the candidates of the sources
that read the user's own items and recent steps (``repeat``, ``reorder``, ``reengage``,
``transitions``) for one batch of 1,024 users, as fusion tuning and ``recsys evaluate`` ask them,
fitted and with their views of the history built beforehand (its memory: the peak allocated
during the calls, traced by tracemalloc in a second, untimed pass). Writes ``results/scale.json``,
``results/scale.md`` and a log-log plot ``results/scale.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recsys.artifacts import machine_info

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("ingest", "clean", "als", "two_tower_epoch", "text_encode", "index", "batch_recommend", "own_items")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def stage(name: str, folder: Path) -> dict:  # runs inside a child process
    import numpy as np
    import polars as pl

    from recsys.cleaning import clean_events
    from recsys.eval.protocols import with_indices
    from recsys.idmap import IDMap
    from recsys.io import load_events
    from recsys.schema import EventWeights

    t0 = time.perf_counter()
    extra = {}
    if name == "ingest":
        ev, _ = load_events(folder / "events.parquet")
        extra["events"] = ev.height
    else:
        ev = pl.read_parquet(folder / "events.parquet")
        users, items = IDMap.from_ids(ev["user_id"]), IDMap.from_ids(ev["item_id"])
        t0 = time.perf_counter()
        if name == "clean":
            clean_events(ev, value_kind="price")
        elif name == "als":
            from recsys.retrieval.als import ALSCandidates, ALSConfig, confidence_matrix

            ix = with_indices(ev, users, items)
            conf = confidence_matrix(ix, len(users), len(items), EventWeights())
            t0 = time.perf_counter()
            ALSCandidates(ALSConfig(), use_gpu=False).fit(conf)
        elif name == "two_tower_epoch":
            import torch

            from recsys.retrieval.model import TwoTower
            from recsys.retrieval.sequences import build_sequences, training_windows
            from recsys.retrieval.towers import TowerConfig
            from recsys.retrieval.train import TrainConfig, train

            ix = with_indices(ev, users, items)
            seq = build_sequences(ix, len(users), EventWeights())
            total = training_windows(seq, 50)[0].size
            model = TwoTower(TowerConfig(n_event_types=8), torch.randn(len(items), 32))
            # beyond 20,000 windows, time an epoch over a random subset of users and scale it up
            keep = np.random.default_rng(0).random(len(users)) < min(1.0, 20_000 / max(total, 1))
            sub = build_sequences(ix.filter(pl.Series(keep)[ix["user_idx"]]), len(users), EventWeights())
            part = training_windows(sub, 50)[0].size
            t0 = time.perf_counter()
            train(model, sub, TrainConfig(epochs=1, full_softmax_below=0, batch_size=128))
            secs = (time.perf_counter() - t0) * total / max(part, 1)
            return {"seconds": round(secs, 2), "peak_mb": round(_peak_mb()), "windows": int(total),
                    "extrapolated": part < total}
        elif name == "text_encode":
            from recsys.retrieval.text import TextEncoder

            enc = TextEncoder(None, device="cpu")
            texts = [f"item {i} brand {i % 97} category {i % 13} a short product description" for i in range(2000)]
            t0 = time.perf_counter()
            enc.encode(texts)
            per_item = (time.perf_counter() - t0) / len(texts)
            return {"seconds": round(per_item * len(items), 2), "peak_mb": round(_peak_mb()), "extrapolated": True}
        elif name == "index":
            from recsys.retrieval.index import VectorIndex

            vecs = np.random.default_rng(0).standard_normal((len(items), 64)).astype(np.float32)
            t0 = time.perf_counter()
            idx = VectorIndex(kind="auto").build(vecs)
            extra["kind"] = idx.kind_built
        elif name == "batch_recommend":
            import torch

            from recsys.retrieval.index import VectorIndex
            from recsys.retrieval.model import TwoTower
            from recsys.retrieval.sequences import build_sequences
            from recsys.retrieval.towers import TowerConfig

            ix = with_indices(ev, users, items)
            seq = build_sequences(ix, len(users), EventWeights())
            model = TwoTower(TowerConfig(n_event_types=8), torch.randn(len(items), 32))
            index = VectorIndex(kind="auto").build(model.item_vectors())
            who = np.arange(min(10_000, len(users)))
            t0 = time.perf_counter()
            index.search(model.user_vectors(seq, who), 20)
            extra["users"] = int(who.size)
        elif name == "own_items":
            return own_items(ev, users, items)
    return {"seconds": round(time.perf_counter() - t0, 2), "peak_mb": round(_peak_mb()), **extra}


def own_items(ev, users, items, batch: int = 1024, n: int = 100) -> dict:
    """The own-item sources' candidates for ``batch`` users (see the module doc)."""
    import tracemalloc

    import numpy as np

    from recsys.eval.protocols import with_indices
    from recsys.retrieval import sources as registry
    from recsys.schema import EventWeights
    from recsys.sources import Batch, History, Space

    ix = with_indices(ev, users, items).sort("user_idx", "timestamp", maintain_order=True)
    space = Space(len(users), len(items), EventWeights())
    history = History(ix, np.arange(len(users)), space)
    who = Batch(history, np.arange(min(batch, len(users))))
    sources = [registry.get(name)(space).fit(ix, ("train",)) for name in ("repeat", "reorder", "reengage", "transitions")]
    for src in sources:
        src.candidates(who, n, include_seen=True)  # builds the views: what a loaded engine keeps
    t0 = time.perf_counter()
    for src in sources:
        src.candidates(who, n, include_seen=True)
    seconds = time.perf_counter() - t0
    tracemalloc.start()  # a second pass for the memory: tracing slows every allocation
    for src in sources:
        src.candidates(who, n, include_seen=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"seconds": round(seconds, 2), "peak_mb": round(peak / 2**20), "users": int(who.rows.size)}


def measure(n_events: int, tmp: Path, stages: tuple[str, ...]) -> dict:
    from recsys.synthetic import generate_synthetic

    n_users = max(10, n_events // 58)
    n_items = min(1_000_000, max(64, n_users // 2))
    data = generate_synthetic(n_users=n_users, n_items=n_items, n_needs=16, seed=1)
    folder = tmp / str(n_events)
    folder.mkdir(parents=True, exist_ok=True)
    data.dataset.events.write_parquet(folder / "events.parquet")
    row = {"events": data.dataset.events.height, "users": n_users, "items": n_items}
    for name in stages:
        out = subprocess.run([sys.executable, __file__, "--child", name, str(folder)], capture_output=True, text=True)
        if out.returncode != 0:
            row[name] = {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
        else:
            row[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(n_events, name, row[name], flush=True)
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in STAGES:
        pts = [(r["events"], r[name]["seconds"]) for r in rows if name in r and "seconds" in r[name]]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events")
    ax.set_ylabel("seconds (2-core CPU)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(stage(args.child[0], Path(args.child[1]))))
        return
    from recsys.artifacts import package_versions

    stages = tuple(s for s in args.stages.split(",") if s)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(int(n), Path(tmp), stages) for n in args.sizes.split(",")]
    result = {"rows": rows, "machine": machine_info(), "python": platform.python_version(),
              "packages": package_versions(), "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    old = json.loads((RESULTS / "scale.json").read_text())["rows"] if (RESULTS / "scale.json").exists() else []
    merged = {r["events"]: r for r in old}
    for r in rows:  # a re-measured stage replaces its old figure; the row's other stages stay
        merged[r["events"]] = {**merged.get(r["events"], {}), **r}
    result["rows"] = [merged[k] for k in sorted(merged)]
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["| events | users | items | " + " | ".join(STAGES) + " |", "|---|---|---|" + "---|" * len(STAGES)]
    for r in result["rows"]:
        cells = []
        for s in STAGES:
            v = r.get(s, {})
            cells.append(f"{v['seconds']} s / {v['peak_mb']:,} MB" + ("*" if v.get("extrapolated") else "")
                         if "seconds" in v else v.get("error", "–")[:40])
        lines.append(f"| {r['events']:,} | {r['users']:,} | {r['items']:,} | " + " | ".join(cells) + " |")
    lines.append("\nSeconds / peak resident memory of the stage's own process (own_items: the peak allocated during its"
                 " calls). * extrapolated (text: from 2,000 items; two-tower epoch: from a subset of users).")
    (RESULTS / "scale.md").write_text("\n".join(lines) + "\n")
    plot(result["rows"], RESULTS / "scale.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
