"""The two-tower model alone, built by `build-index`'s code and scored by `recsys.eval`.

    python benchmarks/two_tower.py --dataset movielens-100k --data-dir ../shared/data
    python benchmarks/two_tower.py --dataset movielens-100k --data-dir ../shared/data --pretrain-epochs 0 --name no-pretrain

Writes ``results/two_tower_<name>.json`` with the build summary (stage times, epochs) and the
test metrics of the held-out split (full-catalogue ranking, seen items excluded except for
last-basket).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from recsys.artifacts import Artifact, machine_info, package_versions
from recsys.datasets import default_cleaning, load_dataset
from recsys.eval.protocols import make_task, rank, score_rankings
from recsys.pipeline.options import build_options
from recsys.pipeline.stages import build
from recsys.prepare import load_prepared_tables
from recsys.retrieval.recommender import load_two_tower
from recsys.splits import Split

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--data-dir")
    p.add_argument("--holdout", default=None)
    p.add_argument("--text-model", default=None)
    p.add_argument("--pretrain-epochs", type=int, default=None)
    p.add_argument("--max-len", type=int, default=None)
    p.add_argument("--dim", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--stride", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--patience", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--id-dropout", type=float, default=None)
    p.add_argument("--eval-k", type=int, default=None, help="Early stopping on validation Recall@k (default 10).")
    p.add_argument("--name", default="default")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    ds = load_dataset(args.dataset, args.data_dir)
    holdout = args.holdout or {"instacart": "last_basket", "rees46": "temporal"}.get(ds.name, "loo")
    # build-index's own assembly of the options: the flags given are kept, the rest chosen from the data
    opts = build_options({}, None, tower={"max_len": args.max_len, "dim": args.dim, "n_layers": args.layers,
                                          "dropout": args.dropout, "id_dropout": args.id_dropout},
                         train={"pretrain_epochs": args.pretrain_epochs, "epochs": args.epochs, "seed": args.seed,
                                "window_stride": args.stride, "lr": args.lr, "patience": args.patience,
                                "eval_k": args.eval_k, "batch_size": args.batch_size, "temperature": args.temperature},
                         holdout=holdout, text_model=args.text_model, seed=args.seed, show_progress=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = build(ds, Path(tmp) / "art", default_cleaning(ds.name), opts)
        wall = time.perf_counter() - t0
        art = Artifact.open(Path(tmp) / "art")
        t = load_prepared_tables(art)
        model = load_two_tower(art)
        task = make_task(holdout, Split(t["train"], t["valid"], t["test"], {}), t["users"], t["items"], "test")
        ranked = rank(task, model.scorer(task.history, len(t["users"]), t["weights"]), 100)
        metrics, _ = score_rankings(task, ranked, ks=(10, 20, 100))
    result = {"dataset": ds.name, "holdout": holdout, "name": args.name, "build_seconds": round(wall, 1),
              "test": metrics, "summary": summary, "packages": package_versions(), "machine": machine_info(),
              "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"two_tower_{ds.name}_{args.name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    table()
    print(f"{ds.name} {args.name}: NDCG@10 {metrics['ndcg@10']:.4f} Recall@10 {metrics['recall@10']:.4f} "
          f"Recall@100 {metrics['recall@100']:.4f}; build {wall:.0f} s, {summary['epochs']} epochs "
          f"(best {summary['best_epoch']})")


def table() -> None:
    """Rewrite ``results/two_tower.md`` from every ``two_tower_*.json``."""
    rows = ["| dataset | run | NDCG@10 | Recall@10 | Recall@100 | epochs (best) | pre-training | build s | date |",
            "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("two_tower_*.json")):
        r = json.loads(path.read_text())
        if not isinstance(r, dict):  # two_tower_sweep.json: a list, tabled by two_tower_sweep.py
            continue
        t, s = r["test"], r["summary"]
        rows.append(f"| {r['dataset']} ({r['holdout']}) | {r['name']} | {t['ndcg@10']:.4f} | {t['recall@10']:.4f} | "
                    f"{t['recall@100']:.4f} | {s['epochs']} ({s['best_epoch']}) | {len(s['pretrain_loss'])} epochs | "
                    f"{r['build_seconds']:.0f} | {r['date']} |")
    old = (RESULTS / "two_tower.md").read_text() if (RESULTS / "two_tower.md").exists() else ""
    gpu = old[old.index("GPU check"):] if "GPU check" in old else ""
    (RESULTS / "two_tower.md").write_text("### Two-tower model alone (benchmarks/two_tower.py), 2-core CPU\n\n"
                                          + "\n".join(rows) + "\n" + ("\n" + gpu if gpu else ""))


if __name__ == "__main__":
    main()
