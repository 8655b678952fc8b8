"""How well each reranker head tells what the user does next: ROC AUC on the test period.

    python benchmarks/rerank_heads.py --artifacts artifacts/bench-rees46-seen

For every test user, the candidates the served models propose from their training + validation
events (the user's own items included when the reranker was trained with them), scored by the
artifact's reranker as ``query`` loads it. Labels come from the whole test period: P(click)
against "touched it" (any event), P(purchase) against "bought it", and P(purchase) among the
touched candidates alone (does it tell a purchase from a view?). Each AUC has a 95% interval
from resampling users. Writes ``results/rerank_heads_<dataset>.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np

from recsys import layout

RESULTS = Path(__file__).resolve().parent / "results"


def auc_interval(scores: list[np.ndarray], labels: list[np.ndarray], n: int = 1000, seed: int = 0) -> dict:
    """AUC over every user's candidates, with a 95% interval from resampling users."""
    from recsys.eval.metrics import auc

    s, y = np.concatenate(scores), np.concatenate(labels)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n):
        pick = rng.integers(0, len(scores), len(scores))
        value = auc(np.concatenate([scores[i] for i in pick]), np.concatenate([labels[i] for i in pick]))
        if not np.isnan(value):
            draws.append(value)
    low, high = (np.quantile(draws, [0.025, 0.975]) if draws else (np.nan, np.nan))
    return {"auc": round(auc(s, y), 4), "low": round(float(low), 4), "high": round(float(high), 4),
            "positives": int(y.sum()), "candidates": int(y.size)}


def main(argv=None) -> dict:
    from recsys.artifacts import Artifact
    from recsys.pipeline import artifact_stage, load_reranker, stage_engine, stage_lists
    from recsys.schema import strong_events

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", required=True)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    art = Artifact.open(args.artifacts)
    fit = art.load_json(layout.SUMMARY).get("reranker") or {}
    include_seen = bool(fit.get("include_seen"))
    stage = artifact_stage(art, "test")
    rec = stage_engine(art, stage)
    span = stage.targets["timestamp"].max() - stage.targets["timestamp"].min()
    lists = stage_lists(rec, stage, include_seen, horizon=span + dt.timedelta(seconds=1))
    reranker = load_reranker(art, always=True)
    touched_s, touched_y, buy_s, buy_y, among_s, among_y = [], [], [], [], [], []
    for r in range(len(lists)):
        j = np.flatnonzero(lists.items[r] >= 0)
        if j.size == 0:
            continue
        pairs = [(lists.contexts[r], rec.titles[i]) for i in lists.items[r, j]]
        heads = reranker.predict(pairs, lists.features[r, j], heads=True, feature_names=rec.feature_names())
        click, bought = lists.click[r, j] > 0, lists.purchase[r, j] > 0
        touched_s.append(heads[:, 0]), touched_y.append(click)
        buy_s.append(heads[:, 1]), buy_y.append(bought)
        among_s.append(heads[click, 1]), among_y.append(bought[click])
    held = stage.targets.with_columns(strong_events(stage.targets, rec.weights, rec.value_kind).alias("_strong"))
    name = art.manifest.get("data", {}).get("name") or Path(args.artifacts).name
    result = {"artifact": args.artifacts, "dataset": name, "include_seen": include_seen, "test_users": len(lists),
              "test_events": held.height, "test_purchases": int(held["_strong"].sum()),
              "click": auc_interval(touched_s, touched_y), "purchase": auc_interval(buy_s, buy_y),
              "purchase_among_touched": auc_interval(among_s, among_y),
              "seconds": round(time.perf_counter() - t0, 1), "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"rerank_heads_{name}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"### Reranker heads on the test period, {name} ({len(lists)} users, {held.height} test events, "
             f"{result['test_purchases']} purchases; own items {'included' if include_seen else 'excluded'}), "
             f"{result['date']}", "", "| head | labels | AUC | 95% interval | positives / candidates |",
             "|---|---|---|---|---|"]
    for key, head, labels in (("click", "P(click)", "touched"), ("purchase", "P(purchase)", "bought"),
                              ("purchase_among_touched", "P(purchase)", "bought, among the touched")):
        v = result[key]
        lines.append(f"| {head} | {labels} | {v['auc']} | [{v['low']}, {v['high']}] | {v['positives']} / {v['candidates']} |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
