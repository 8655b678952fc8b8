"""Pointwise or listwise: which loss ranks better? Measured on a built artifact's own lists.

    python benchmarks/rerank_loss.py --artifacts artifacts/bench-instacart
    python benchmarks/rerank_loss.py --artifacts artifacts/bench-movielens-100k

The reranker's first phase (:func:`recsys.rerank.train.fit_features`: the heads on the retrieval
features, starting from the fused order, step kept on the held-out fifth) is trained with each
loss on the artifact's validation lists, exactly as ``recsys train-reranker`` builds them, and
both are scored on the test lists (history: training + validation events; candidates from the
served models, which never saw the test events; labels: the test events). The text phase is left
out: it has not beaten phase one on these sets (see the README), so phase one is what is served.
NDCG@10 is per list over the labels in the list; each difference has a paired bootstrap 95%
interval. Writes ``results/rerank_loss_<dataset>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _lists(art):
    """(validation lists, test lists) of ``art`` and whether seen items are kept."""
    import polars as pl

    from recsys.eval.protocols import with_indices
    from recsys.prepare import load_prepared_tables
    from recsys.rerank.data import build_lists, test_lists, validation_cuts
    from recsys.retrieval.als import ALSCandidates, confidence_matrix
    from recsys.retrieval.recommender import Recommender

    t = load_prepared_tables(art)
    include_seen = art.manifest["config"].get("holdout") == "last_basket"
    rec = Recommender(art, history=pl.concat([t["train"], t["valid"]]), use_reranker=False)
    served_als, served_counts = rec.als, rec.als_counts
    if served_als is not None:  # the validation stage's ALS: fitted on training events only, as at build time
        ev = with_indices(t["train"], t["users"], t["items"])
        rec.als = ALSCandidates(served_als.cfg, use_gpu=False).fit(
            confidence_matrix(ev, len(t["users"]), len(t["items"]), t["weights"], t["value_kind"]))
        rec.als_counts = np.bincount(ev["user_idx"].to_numpy(), minlength=len(t["users"])).astype(np.int64)
    rec.cooccurrence_from(t["train"])  # as at build time: the validation labels are not counted
    valid = build_lists(rec, validation_cuts(rec, t["valid"]), include_seen)
    rec.als, rec.als_counts = served_als, served_counts
    test = test_lists(rec, t, include_seen)
    return valid, test, include_seen


def per_list_ndcg(ranked: np.ndarray, lists, k: int = 10) -> np.ndarray:
    from recsys.eval.metrics import ndcg_at_k

    return np.array([ndcg_at_k(ranked[r], lists.items[r][lists.click[r] > 0], k) if (lists.click[r] > 0).any() else 0.0
                     for r in range(len(lists))])


def feature_order(model, lists) -> np.ndarray:
    import torch

    from recsys.rerank.train import _feature_logits

    with torch.no_grad():
        logit = _feature_logits(model, torch.as_tensor(lists.features))
        w = torch.tensor([model.cfg.click_weight, model.cfg.purchase_weight])
        score = (torch.stack([torch.sigmoid(z) for z in logit], -1) @ w).numpy()
    score = np.where(lists.items >= 0, score, -np.inf)
    return np.take_along_axis(lists.items, np.argsort(-score, axis=1, kind="stable"), axis=1)


def main(argv=None) -> dict:
    import torch
    from transformers import BertConfig, BertModel

    from recsys.artifacts import Artifact, package_versions
    from recsys.eval.metrics import paired_bootstrap
    from recsys.rerank.features import FEATURES
    from recsys.rerank.model import CrossEncoder, RerankerConfig
    from recsys.rerank.train import RerankTrainConfig, fit_features

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", required=True)
    p.add_argument("--held-out", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    art = Artifact.open(args.artifacts)
    t0 = time.perf_counter()
    valid, test, include_seen = _lists(art)
    held = np.random.default_rng(args.seed).random(len(valid)) < args.held_out  # as RerankOptions splits them
    train_l, held_l = valid.subset(np.flatnonzero(~held)), valid.subset(np.flatnonzero(held))
    fused = per_list_ndcg(test.items, test)
    rows = {"fused order": {"test_ndcg@10": round(float(fused.mean()), 4)}}
    per_loss = {}
    for loss in ("pointwise", "listwise"):
        torch.manual_seed(args.seed)
        # the text part is not used here (phase one reads the features alone): a stand-in encoder
        model = CrossEncoder(BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                                                  intermediate_size=8, vocab_size=10)), RerankerConfig())
        x = train_l.features[train_l.items >= 0]
        model.feat_mean.copy_(torch.as_tensor(x.mean(0)))
        model.feat_std.copy_(torch.as_tensor(x.std(0) + 1e-6))
        usable = np.flatnonzero(train_l.click.sum(1) > 0)
        _, step = fit_features(model, train_l, usable, RerankTrainConfig(loss=loss, seed=args.seed), held=held_l)
        got = per_loss[loss] = per_list_ndcg(feature_order(model, test), test)
        rows[loss] = {"test_ndcg@10": round(float(got.mean()), 4), "steps_kept": step,
                      "held_out_ndcg@10": round(float(per_list_ndcg(feature_order(model, held_l), held_l).mean()), 4),
                      "vs_fused": {k: round(v, 4) if isinstance(v, float) else v
                                   for k, v in paired_bootstrap(fused, got).items()}}
        print(loss, rows[loss], flush=True)
    diff = paired_bootstrap(per_loss["pointwise"], per_loss["listwise"])
    rows["listwise - pointwise"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in diff.items()}
    name = art.manifest.get("data", {}).get("name") or Path(args.artifacts).name
    result = {"artifact": args.artifacts, "dataset": name, "include_seen": include_seen, "features": list(FEATURES),
              "train_lists": len(train_l), "held_out_lists": len(held_l), "test_lists": len(test), "rows": rows,
              "seconds": round(time.perf_counter() - t0, 1), "packages": package_versions(),
              "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"rerank_loss_{name}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"### Reranker loss, {name} ({len(train_l)} training lists, {len(held_l)} held out, {len(test)} test "
             f"lists), {result['date']}", "",
             "| ranking | test NDCG@10 | minus fused (95% interval) | held-out NDCG@10 | steps kept |", "|---|---|---|---|---|",
             f"| fused order | {rows['fused order']['test_ndcg@10']} | | | |"]
    for loss in ("pointwise", "listwise"):
        r, v = rows[loss], rows[loss]["vs_fused"]
        lines.append(f"| {loss} | {r['test_ndcg@10']} | {v['diff']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}] | "
                     f"{r['held_out_ndcg@10']} | {r['steps_kept']} |")
    d = rows["listwise - pointwise"]
    lines += ["", f"listwise - pointwise on the test lists: {d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]."]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
