"""Latent needs, measured: does a user's top-3 latent needs hold the need their next purchases serve?

    python benchmarks/needs.py --synthetic
    python benchmarks/needs.py --artifacts artifacts/bench-movielens-100k artifacts/bench-instacart

- **synthetic** (hidden needs known): builds on generated data whose users' final sessions buy from
  a latent need (seen only in a few views before). Reports how often the top-3 latent needs
  contain the need of the held-out purchases, next to a popularity-of-needs baseline (the most
  frequent needs, under the same "barely present in the history" rule), and how well the learned
  needs match the hidden ones (purity).
- **built artifacts** (MovieLens-100k, Instacart): the same rate for the stored test split, the
  needs read from the history before it.

Writes ``results/needs.json`` and ``results/needs.md``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from recsys.artifacts import Artifact
from recsys.eval.metrics import paired_bootstrap
from recsys.pipeline import BuildOptions, build, evaluation_engine, load
from recsys.retrieval.needs import latent_need_hits
from recsys.synthetic import generate_synthetic

RESULTS = Path(__file__).resolve().parent / "results"


def score_artifact(art: Artifact, name: str) -> dict:
    rec, task = evaluation_engine(art, 100, rerank=False)
    out = latent_need_hits(rec, task.users, task.targets)
    per_user = out.pop("per_user")
    diff = {k: round(v, 4) if isinstance(v, float) else v
            for k, v in paired_bootstrap(per_user["popular_needs"], per_user["model"]).items()} if out["users"] else None
    return {"dataset": name, "holdout": art.manifest["config"].get("holdout"), **out, "model_minus_popular": diff}


def synthetic(seed: int = 0) -> dict:
    d = generate_synthetic(n_users=2000, n_items=400, n_needs=8, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        build(d.dataset, Path(tmp) / "syn", opts=BuildOptions(holdout="temporal", n_needs=8, seed=seed, show_progress=False))
        art = Artifact.open(Path(tmp) / "syn")
        row = score_artifact(art, "synthetic")
        rec = load(art, rerank=False)
        hidden = dict(zip(d.items["item_id"], d.items["need"]))
        truth = np.unique([str(hidden[i]) for i in rec.items.ids], return_inverse=True)[1]
        purity = sum(np.bincount(truth[rec.needs.assign == c]).max() for c in range(rec.needs.k)
                     if (rec.needs.assign == c).any()) / len(truth)
        names = [n["name"] for n in rec.needs.names]
    return {**row, "purity": round(float(purity), 4), "names": names}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--artifacts", nargs="*", default=[])
    args = p.parse_args(argv)
    path = RESULTS / "needs.json"
    rows = {r["dataset"]: r for r in (json.loads(path.read_text()) if path.exists() else [])}
    todo = ([("synthetic", None)] if args.synthetic else []) + [(None, a) for a in args.artifacts]
    for kind, folder in todo:
        t0 = time.perf_counter()
        if kind:
            row = synthetic()
        else:
            art = Artifact.open(folder)
            row = score_artifact(art, art.manifest["data"]["name"])
        row.update(seconds=round(time.perf_counter() - t0, 1), date=time.strftime("%Y-%m-%d"))
        rows[row["dataset"]] = row
        print(json.dumps(row, ensure_ascii=False))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(rows.values()), indent=1, ensure_ascii=False) + "\n")
    lines = ["| dataset | split | users | needs | top-3 latent needs hold the next need: model | popularity of needs | "
             "model - popularity (paired bootstrap, 95%) | purity vs hidden needs | date |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows.values():
        d = r.get("model_minus_popular")
        diff = f"{d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]" if d else "-"
        lines.append(f"| {r['dataset']} | {r['holdout']} | {r['users']} | {r['needs']} | {r['model']:.4f} | "
                     f"{r['popular_needs']:.4f} | {diff} | {r.get('purity', '-')} | {r['date']} |")
    (RESULTS / "needs.md").write_text("### Latent needs (benchmarks/needs.py; latent = at most 5% of the user's "
                                      "recent events)\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
