"""Pointwise or listwise: which loss ranks better? Measured on a built artifact's own lists.

    python benchmarks/rerank_loss.py --artifacts artifacts/bench-instacart
    python benchmarks/rerank_loss.py --artifacts artifacts/bench-movielens-100k

The reranker's first phase (:func:`recsys.rerank.feature_phase.fit_features`: the heads on the
retrieval features, starting from the fused order, its steps chosen as the build chooses them) is
trained with each
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


def main(argv=None) -> dict:
    import torch
    from transformers import BertConfig, BertModel

    from recsys.artifacts import Artifact, package_versions
    from recsys.eval.metrics import paired_bootstrap
    from recsys.pipeline import artifact_lists
    from recsys.rerank.config import RerankTrainConfig
    from recsys.rerank.feature_phase import fit_features, rank_by_features
    from recsys.rerank.lists import per_list_ndcg
    from recsys.rerank.model import CrossEncoder, RerankerConfig
    from recsys.retrieval.recommender import Recommender

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", required=True)
    p.add_argument("--held-out", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    art = Artifact.open(args.artifacts)
    t0 = time.perf_counter()
    valid, test, include_seen, _ = artifact_lists(art)
    features = Recommender.feature_names()
    held = np.random.default_rng(args.seed).random(len(valid)) < args.held_out  # as RerankOptions splits them
    train_l, held_l = valid.subset(np.flatnonzero(~held)), valid.subset(np.flatnonzero(held))
    fused = per_list_ndcg(test.items, test)
    rows = {"fused order": {"test_ndcg@10": round(float(fused.mean()), 4)}}
    per_loss = {}
    for loss in ("pointwise", "listwise"):
        torch.manual_seed(args.seed)
        # the text part is not used here (phase one reads the features alone): a stand-in encoder
        model = CrossEncoder(BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                                                  intermediate_size=8, vocab_size=10)), RerankerConfig(features=features))
        x = train_l.features[train_l.items >= 0]
        model.feat_mean.copy_(torch.as_tensor(x.mean(0)))
        model.feat_std.copy_(torch.as_tensor(x.std(0) + 1e-6))
        usable = np.flatnonzero(train_l.click.sum(1) > 0)
        step = fit_features(model, train_l, usable, RerankTrainConfig(loss=loss, seed=args.seed), held=held_l).step
        got = per_loss[loss] = per_list_ndcg(rank_by_features(model, test), test)
        rows[loss] = {"test_ndcg@10": round(float(got.mean()), 4), "steps_kept": step,
                      "held_out_ndcg@10": round(float(per_list_ndcg(rank_by_features(model, held_l), held_l).mean()), 4),
                      "vs_fused": {k: round(v, 4) if isinstance(v, float) else v
                                   for k, v in paired_bootstrap(fused, got).items()}}
        print(loss, rows[loss], flush=True)
    diff = paired_bootstrap(per_loss["pointwise"], per_loss["listwise"])
    rows["listwise - pointwise"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in diff.items()}
    name = art.manifest.get("data", {}).get("name") or Path(args.artifacts).name
    result = {"artifact": args.artifacts, "dataset": name, "include_seen": include_seen, "features": list(features),
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
