"""GPU check of the two-tower training path (CUDA, bf16 autocast) on MovieLens-100k.

    python benchmarks/gpu_check.py --text-vectors ml_text.npy --out gpu.json

Trains with the same code and defaults as `build-index` (device picked by `resolve_device`),
scores the leave-one-out test split with `recsys.eval`, and reports the device, epoch times
and metrics. Text vectors are passed in (computed by all-MiniLM-L6-v2 on the CPU) so that the
GPU machine needs neither the model package nor faiss.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from recsys.datasets import CLEANING, load_dataset
from recsys.device import resolve_device, set_seed
from recsys.eval.protocols import make_task, rank, score_rankings
from recsys.prepare import prepare
from recsys.retrieval.build import model_scorer
from recsys.retrieval.model import TwoTower
from recsys.retrieval.sequences import build_sequences
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig, pretrain, train


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--text-vectors", required=True)
    p.add_argument("--out", default="gpu.json")
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    set_seed(0)
    device = resolve_device(args.device)
    ds = load_dataset("default")
    prep = prepare(ds, CLEANING["default"], holdout="loo")
    valid = make_task("loo", prep.split, prep.users, prep.items, "valid")
    test = make_task("loo", prep.split, prep.users, prep.items, "test")
    n_users = len(prep.users)
    cfg, tc = TowerConfig(n_event_types=6), TrainConfig()
    torch.manual_seed(0)
    model = TwoTower(cfg, torch.as_tensor(np.load(args.text_vectors))).to(device)
    seq = build_sequences(valid.history, n_users, ds.weights)

    def validate(m):
        r = rank(valid, model_scorer(m, valid.history, n_users, ds.weights), 10)
        return score_rankings(valid, r, ks=(10,))[0]["recall@10"]

    t0 = time.perf_counter()
    pre = pretrain(model, seq, tc, print)
    t1 = time.perf_counter()
    fit = train(model, seq, tc, validate, print)
    t2 = time.perf_counter()
    ranked = rank(test, model_scorer(model, test.history, n_users, ds.weights), 100)
    metrics = score_rankings(test, ranked, ks=(10, 100))[0]
    result = {
        "device": device, "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "torch": torch.__version__, "bf16_autocast": device.startswith("cuda"),
        "pretrain_s": round(t1 - t0, 1), "train_s": round(t2 - t1, 1), "epochs": len(fit["history"]),
        "best_epoch": fit["best_epoch"], "seconds_per_epoch": round((t2 - t1) / max(1, len(fit["history"])), 2),
        "pretrain_loss": pre, "test": {k: metrics[k] for k in ("ndcg@10", "recall@10", "recall@100")},
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
