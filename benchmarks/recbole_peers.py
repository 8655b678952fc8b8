"""SASRec and BERT4Rec from RecBole 1.2.1, run from their own virtual environment, scored by recsys.eval.

    make recbole-venv                       # once: .venv-recbole with RecBole 1.2.1 and its pins
    python benchmarks/recbole_peers.py --dataset movielens-100k --data-dir ../shared/data --models SASRec,BERT4Rec

Three steps, so that RecBole's old pins never meet recsys's environment:

1. ``export`` (this environment): the dataset's cleaned events as a RecBole atomic ``.inter`` file
   whose per-user time order is the one recsys's leave-one-out split uses (ties broken the same way).
2. ``train`` (``.venv-recbole``, no recsys import): RecBole trains the model with its own
   leave-one-out split (``LS: valid_and_test``, time order: the same held-out events), then writes
   each test user's top 100 items (seen items excluded) to ``topk_<model>.json``.
3. ``score`` (this environment): those lists are scored by the same code as every other peer.

RecBole quirks met here: it needs numpy < 2 (``np.float_``/``np.bool8``), pandas < 2.2 and
scipy < 1.13; its ``full_sort_topk`` expects internal ids, so ids are mapped through
``dataset.field2id_token``, and for sequential models it does not mask the user's history (a
first run that cut its lists at 100 with seen items inside scored SASRec at NDCG@10 0.0585), so
long lists are exported and seen items dropped here, as for every other peer; ``torch.load`` of its own checkpoints needs ``weights_only=False``
(patched in its environment only, by loading the model in memory instead of from the file).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

KS = (1, 2, 5, 10, 20, 50, 100)  # benchmarks/run.py's cut-offs
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
VENV_PY = HERE.parent / ".venv-recbole" / "bin" / "python"

CONFIG = {  # the reference settings: CE loss, max length 20 (SASRec), lr 0.002
    "SASRec": {"loss_type": "CE", "MAX_ITEM_LIST_LENGTH": 20, "learning_rate": 0.002, "epochs": 13,
               "train_neg_sample_args": None},
    "BERT4Rec": {"loss_type": "CE", "MAX_ITEM_LIST_LENGTH": 20, "learning_rate": 0.002, "epochs": 13,
                 "train_neg_sample_args": None},
}


def export(args, work: Path) -> None:
    import polars as pl

    from recsys.datasets import default_cleaning, load_dataset
    from recsys.prepare import prepare
    from recsys.splits import held_out_order

    ds = load_dataset(args.dataset, args.data_dir)
    prep = prepare(ds, default_cleaning(ds.name), holdout="loo")
    ev = pl.concat([prep.split.train, prep.split.valid, prep.split.test])
    # recsys's leave-one-out order (recsys.splits.held_out_order); RecBole sorts by time, so the row rank is the time
    ev = held_out_order(ev).with_row_index("_ord")
    inter = ev.select(pl.col("user_id").alias("user_id:token"), pl.col("item_id").alias("item_id:token"),
                      (pl.col("_ord").cast(pl.Float64)).alias("timestamp:float"))
    folder = work / "data" / ds.name
    folder.mkdir(parents=True, exist_ok=True)
    inter.write_csv(folder / f"{ds.name}.inter", separator="\t")
    (work / "dataset.json").write_text(json.dumps({"name": ds.name}))


TRAIN_SCRIPT = r'''
import json, sys, time
import numpy as np, torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed, get_model, get_trainer
from recbole.utils.case_study import full_sort_topk
work, model_name, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
name = json.load(open(f"{work}/dataset.json"))["name"]
cfg = {"data_path": f"{work}/data", "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
       "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "eval_args": {"split": {"LS": "valid_and_test"},
       "order": "TO", "mode": "full", "group_by": "user"}, "metrics": ["Recall", "NDCG"], "topk": [10],
       "valid_metric": "NDCG@10", "seed": 0, "reproducibility": True, "device": "cpu", "show_progress": False,
       "checkpoint_dir": f"{work}/saved", "stopping_step": 100, "eval_step": overrides.get("epochs", 1), **overrides}
config = Config(model=model_name, dataset=name, config_dict=cfg)
init_seed(config["seed"], config["reproducibility"])
dataset = create_dataset(config)
train, valid, test = data_preparation(config, dataset)
model = get_model(config["model"])(config, train.dataset).to(config["device"])
trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
t0 = time.time()
trainer.fit(train, valid, saved=False, show_progress=False)
fit_s = time.time() - t0
users = list(test.dataset.field2id_token["user_id"][1:])
uid = dataset.token2id("user_id", users)
top = []
# for sequential models RecBole's full_sort_topk does not mask the user's history: keep a long list,
# the scorer drops seen items (as recsys does for its own lists) before cutting at 100
k = min(dataset.item_num - 1, 2000)
for s in range(0, len(uid), 256):
    _, idx = full_sort_topk(np.asarray(uid[s:s + 256]), model, test, k=k, device=config["device"])
    top += [list(dataset.id2token("item_id", row.cpu().numpy())) for row in idx]
json.dump({"users": users, "topk": top, "fit_seconds": fit_s, "config": {k: str(v) for k, v in overrides.items()}},
          open(f"{work}/topk_{model_name}.json", "w"))
'''


def train(work: Path, model: str, epochs: int | None = None) -> None:
    if not VENV_PY.exists():
        sys.exit(f"{VENV_PY}: no RecBole environment; run `make recbole-venv` first")
    script = work / "train_recbole.py"
    script.write_text(TRAIN_SCRIPT)
    cfg = {**CONFIG[model], **({"epochs": epochs} if epochs else {})}
    subprocess.run([str(VENV_PY), str(script), str(work), model, json.dumps(cfg)], check=True, cwd=work)  # its logs go there


def score(args, work: Path, models: list[str]) -> dict:
    import numpy as np

    from recsys.datasets import default_cleaning, load_dataset
    from recsys.eval.protocols import make_task, score_rankings
    from recsys.prepare import prepare

    ds = load_dataset(args.dataset, args.data_dir)
    prep = prepare(ds, default_cleaning(ds.name), holdout="loo")
    task = make_task("loo", prep.split, prep.users, prep.items, "test")
    out = {}
    for model in models:
        got = json.loads((work / f"topk_{model}.json").read_text())
        lists = dict(zip(got["users"], got["topk"]))
        ranked = np.full((task.users.size, 100), -1, dtype=np.int64)
        seen = task.history.group_by("user_idx").agg("item_idx")
        seen = dict(zip(seen["user_idx"].to_list(), seen["item_idx"].to_list()))
        for r, (u, ext) in enumerate(zip(task.users, prep.users.to_external(task.users))):
            idx = prep.items.to_internal(lists.get(str(ext), []), missing="ignore")
            idx = idx[(idx >= 0) & ~np.isin(idx, seen.get(int(u), []))][:100]  # seen items excluded, as for every peer
            ranked[r, :idx.size] = idx
        m, per = score_rankings(task, ranked, ks=KS)
        out[model] = {"ndcg@10": round(m["ndcg@10"], 4), "recall@10": round(m["recall@10"], 4),
                      "recall@100": round(m["recall@100"], 4), "fit_seconds": round(got["fit_seconds"], 1),
                      "config": got["config"]}
        print(model, out[model], flush=True)
        # what benchmarks/run.py --peer-lists reads: every metric, and the per-user figures in the test users' order
        out[model].update(test=m, per_user={k: per[k].round(6).tolist() for k in ("ndcg@10", "recall@10", "recall@100")},
                          fingerprint=prep.fingerprint())
    return out


def markdown(result: dict) -> str:
    """The result as a Markdown table, one row per model."""
    lines = [f"### RecBole {result['recbole']} peers — {result['dataset']}, {result['protocol']} "
             f"(seen items masked), {result['date']}", "",
             "| model | NDCG@10 | Recall@10 | Recall@100 | fit s |", "|---|---|---|---|---|"]
    for name, m in sorted(result["models"].items(), key=lambda kv: -kv[1]["ndcg@10"]):
        lines.append(f"| {name} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['recall@100']:.4f} | "
                     f"{m['fit_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--data-dir")
    p.add_argument("--models", default="SASRec,BERT4Rec")
    p.add_argument("--work", default="artifacts/recbole")
    p.add_argument("--epochs", type=int, default=None, help="Override the reference epochs (13), e.g. 1 for a smoke test.")
    p.add_argument("--score-only", action="store_true",
                   help="Score the lists an earlier run left in --work again, without exporting or training.")
    args = p.parse_args(argv)
    work = Path(args.work).absolute()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.score_only:
        export(args, work)
        for m in models:
            train(work, m, args.epochs)
    missing = [m for m in models if not (work / f"topk_{m}.json").is_file()]
    if missing:
        sys.exit(f"--work {work}: no lists of {', '.join(missing)}; run without --score-only to train them")
    name = json.loads((work / "dataset.json").read_text())["name"]
    path = RESULTS / f"recbole_{name}.json"
    earlier = json.loads(path.read_text())["models"] if path.exists() else {}  # models not rerun keep their rows
    result = {"dataset": args.dataset, "protocol": "loo", "models": {**earlier, **score(args, work, models)},
              "recbole": "1.2.1", "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    path.with_suffix(".md").write_text(markdown(result))


if __name__ == "__main__":
    main()
