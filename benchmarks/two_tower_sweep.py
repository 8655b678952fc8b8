"""Training variants of the two-tower model on MovieLens-100k (leave-one-out), scored by recsys.eval.

    python benchmarks/two_tower_sweep.py '[{"name": "lr1e-2", "lr": 0.01, "patience": 8}]'
    python benchmarks/two_tower_sweep.py '[{"name": "drop0.2", "dropout": 0.2, "patience": 8}]'

Each variant is a JSON object: ``name`` plus any :class:`TowerConfig` / :class:`TrainConfig` field.
The text vectors are all-MiniLM-L6-v2's (computed once and cached in ``artifacts/ml_text.npy``).
Results are appended to ``results/two_tower_sweep.json`` (test NDCG@10 / Recall@10 / Recall@100, the
validation curve, seconds).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

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

RESULTS = Path(__file__).resolve().parent / "results"


def text_vectors(prep, path: Path) -> torch.Tensor:
    if not path.exists():
        from recsys.retrieval.text import TextEncoder

        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, TextEncoder(None).encode(prep.catalog["text"].fill_null("").to_list()), allow_pickle=False)
    return torch.as_tensor(np.load(path, allow_pickle=False))


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    configs = json.loads(argv[0])
    device = resolve_device(None)
    ds = load_dataset("default")
    prep = prepare(ds, CLEANING["default"], holdout="loo")
    valid = make_task("loo", prep.split, prep.users, prep.items, "valid")
    test = make_task("loo", prep.split, prep.users, prep.items, "test")
    n_users = len(prep.users)
    text = text_vectors(prep, Path("artifacts") / "ml_text.npy")
    seq = build_sequences(valid.history, n_users, ds.weights)
    out_path = RESULTS / "two_tower_sweep.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else []
    for c in configs:
        c = dict(c)
        name = c.pop("name")
        tower = {k: c.pop(k) for k in list(c) if k in TowerConfig.__dataclass_fields__}
        set_seed(c.get("seed", 0))
        torch.manual_seed(c.get("seed", 0))
        model = TwoTower(TowerConfig(n_event_types=len(ds.weights.names()) + 1, **tower), text).to(device)
        cfg = TrainConfig(**c)

        def validate(m):
            r = rank(valid, model_scorer(m, valid.history, n_users, ds.weights), 10)
            return score_rankings(valid, r, ks=(10,))[0]["recall@10"]

        t0 = time.perf_counter()
        if cfg.pretrain_epochs:
            pretrain(model, seq, cfg)
        fit = train(model, seq, cfg, validate)
        m = score_rankings(test, rank(test, model_scorer(model, test.history, n_users, ds.weights), 100), ks=(10, 100))[0]
        r = {"name": name, "config": {**tower, **c}, "seconds": round(time.perf_counter() - t0, 1),
             "epochs": len(fit["history"]), "best_epoch": fit["best_epoch"],
             "valid": [round(h["valid"], 4) for h in fit["history"]],
             **{k: round(m[k], 4) for k in ("ndcg@10", "recall@10", "recall@100")}, "date": time.strftime("%Y-%m-%d")}
        print(json.dumps(r), flush=True)
        results.append(r)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
