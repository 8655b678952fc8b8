"""The same build on each device and process count: CPU, CPU under torchrun, and a GPU when there is one.

    python benchmarks/devices.py --dataset movielens-100k --data-dir ../shared/data
    python benchmarks/devices.py --dataset movielens-100k --data-dir ../shared/data --processes 2
    python benchmarks/devices.py --dataset instacart --data-dir ../shared/data --device cuda   # on a GPU machine

Runs `build-index`'s code (two-tower training for a fixed number of epochs so that rows compare,
ALS, encode, index; no reranker) and scores the held-out test split with `recsys.eval`. With
``--processes N`` it relaunches itself under ``torch.distributed.run`` (DDP, gloo on CPU / NCCL on
GPU). Each run replaces its row in ``results/devices.json``; ``results/devices.md`` lists every
row, with a "not yet measured" row for each dataset that has no GPU row. What each device
actually used is recorded (bf16 autocast, faiss GPU index, implicit GPU ALS).
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

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


def run(args) -> dict | None:
    import torch

    from recsys.artifacts import Artifact, machine_info
    from recsys.datasets import dataset_spec, load_dataset
    from recsys.device import faiss_gpu_count
    from recsys.eval.protocols import rank, score_rankings
    from recsys.pipeline import BuildOptions, artifact_stage, build
    from recsys.retrieval.recommender import load_two_tower
    from recsys.retrieval.train import TrainConfig

    ds = load_dataset(args.dataset, args.data_dir)
    spec = dataset_spec(ds.name)
    out = REPO / "artifacts" / f"devices-{ds.name}"  # a fixed folder: later runs reuse its text vectors
    t0 = time.perf_counter()
    s = build(ds, out, spec.cleaning, BuildOptions(
        holdout=spec.holdout, train=TrainConfig(epochs=args.epochs, patience=args.epochs, seed=0), reranker=None,
        device=args.device, show_progress=not args.quiet))
    wall = time.perf_counter() - t0
    if s.get("rank"):
        return None
    art = Artifact.open(out)
    model = load_two_tower(art)
    stage = artifact_stage(art, "test")
    task = stage.task(*_maps(art))
    metrics = score_rankings(task, rank(task, model.scorer(task.history, task.n_users, _weights(art)), 10),
                             ks=(10,))[0]
    device = s["device"]
    train_s = s["stage_seconds"]["two_tower"]
    try:
        from implicit.gpu import HAS_CUDA as implicit_gpu
    except ImportError:
        implicit_gpu = False
    return {
        "dataset": ds.name, "holdout": spec.holdout, "device": device.split(":")[0], "processes": s["processes"],
        "hardware": torch.cuda.get_device_name(0) if device.startswith("cuda") else f"{os.cpu_count()} CPU cores",
        "epochs": s["epochs"], "train_s": train_s, "s_per_epoch": round(train_s / max(1, s["epochs"]), 2),
        "text_s": s["stage_seconds"]["text"], "als_s": s["stage_seconds"].get("sources"),
        "index_s": s["stage_seconds"]["index"], "build_s": round(wall, 1), "index": s["index"],
        "bf16_autocast": device.startswith("cuda"), "faiss_gpu": faiss_gpu_count() > 0,
        "implicit_gpu": bool(implicit_gpu and device.startswith("cuda")),
        "ndcg@10": round(metrics["ndcg@10"], 4), "recall@10": round(metrics["recall@10"], 4),
        "torch": torch.__version__, "python": platform.python_version(), "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d"),
    }


def _maps(art):
    from recsys.prepare import load_prepared_tables

    t = load_prepared_tables(art)
    return t["users"], t["items"]


def _weights(art):
    from recsys.prepare import load_prepared_tables

    return load_prepared_tables(art)["weights"]


def table(rows: list[dict]) -> str:
    lines = ["| dataset | device | processes | hardware | s/epoch | train s | ALS s | index s | NDCG@10 | Recall@10 | "
             "GPU pieces | date |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["dataset"], r["device"], r["processes"])):
        pieces = ", ".join(k for k in ("bf16_autocast", "faiss_gpu", "implicit_gpu") if r.get(k)) or "-"
        lines.append(f"| {r['dataset']} | {r['device']} | {r['processes']} | {r['hardware']} | {r['s_per_epoch']} | "
                     f"{r['train_s']} | {r['als_s']} | {r['index_s']} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | "
                     f"{pieces} | {r['date']} |")
    for name in sorted({r["dataset"] for r in rows} - {r["dataset"] for r in rows if r["device"] == "cuda"}):
        lines.append(f"| {name} | cuda | 1 | not yet measured on a GPU | | | | | | | | |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--data-dir")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--processes", type=int, default=1, help="Processes under torch.distributed.run (1: plain).")
    p.add_argument("--epochs", type=int, default=5, help="Fixed epochs (no early stop), so that rows compare.")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.processes > 1 and not args.worker:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.processes}",
               __file__, "--worker", *(argv if argv is not None else sys.argv[1:])]
        sys.exit(subprocess.call(cmd, env={**os.environ, "OMP_NUM_THREADS": os.environ.get(
            "OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.processes)))}))
    row = run(args)
    if row is None:  # a worker other than rank 0
        return
    path = RESULTS / "devices.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    rows = [r for r in rows if (r["dataset"], r["device"], r["processes"]) != (row["dataset"], row["device"],
                                                                              row["processes"])] + [row]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1) + "\n")
    md = table(rows)
    (RESULTS / "devices.md").write_text(f"### Devices and processes (benchmarks/devices.py, {row['epochs']} fixed "
                                        "epochs, no reranker)\n\n" + md + "\n")
    print(md)


if __name__ == "__main__":
    main()
