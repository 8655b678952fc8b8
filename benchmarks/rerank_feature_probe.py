"""Does the sequential co-occurrence feature help? The reranker's feature phase, with and without it.

    python benchmarks/rerank_feature_probe.py --artifacts artifacts/bench-movielens-100k

On the artifact's lists (:func:`recsys.pipeline.artifact_lists`: validation lists to learn from,
test lists to score), a features-only list ranker (a small MLP, listwise loss, full batch)
is trained on the reranker's features without the two co-occurrence ones (``cooc_score``,
``cooc_inv_rank``: how often the candidate followed the user's recent items in everyone's
histories, counted on events before the lists), and again with them. Reranking the fused list by
the co-occurrence score alone is reported too. Each difference from the fused order has a paired
bootstrap 95% interval. Writes ``results/rerank_feature_probe_<dataset>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def fit_rank(x: np.ndarray, lists, steps: int, seed: int = 0, hidden: int = 16):
    """A listwise MLP ranker over per-candidate features; returns its scoring function."""
    import torch

    torch.manual_seed(seed)
    xt, y, m = torch.as_tensor(x), torch.as_tensor(lists.click), torch.as_tensor(lists.items >= 0)
    mu, sd = xt[m].mean(0), xt[m].std(0) + 1e-6
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[2], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-2, weight_decay=1e-4)
    keep = y.sum(1) > 0
    xk, yk, mk = xt[keep], y[keep], m[keep]
    for _ in range(steps):
        z = net((xk - mu) / sd).squeeze(-1).masked_fill(~mk, -1e9)
        loss = -(torch.log_softmax(z, 1) * yk).sum(1).div(yk.sum(1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return lambda x2: net((torch.as_tensor(x2) - mu) / sd).squeeze(-1).detach().numpy()


def main(argv=None) -> dict:
    from recsys.artifacts import Artifact, package_versions
    from recsys.eval.metrics import paired_bootstrap
    from recsys.pipeline import artifact_lists
    from recsys.rerank.lists import per_list_ndcg
    from recsys.retrieval.recommender import Recommender

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", required=True)
    p.add_argument("--steps", default="100,300", help="Training steps of the list ranker, one row each.")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    art = Artifact.open(args.artifacts)
    valid, test, _, _ = artifact_lists(art)
    features = Recommender.feature_names()
    cooc = [features.index("cooc_score"), features.index("cooc_inv_rank")]
    rest = [i for i in range(len(features)) if i not in cooc]

    def ranked(s: np.ndarray) -> np.ndarray:
        s = np.where(test.items >= 0, s, -np.inf)
        return np.take_along_axis(test.items, np.argsort(-s, axis=1, kind="stable"), axis=1)

    def row(got: np.ndarray) -> dict:
        d = paired_bootstrap(fused, got)
        return {"test_ndcg@10": round(float(got.mean()), 4), **{k: round(v, 4) if isinstance(v, float) else v
                                                                 for k, v in d.items()}}

    fused = per_list_ndcg(test.items, test)
    rows = {"fused order": {"test_ndcg@10": round(float(fused.mean()), 4)},
            "co-occurrence score alone": row(per_list_ndcg(ranked(test.features[..., cooc[0]]), test))}
    for steps in (int(s) for s in args.steps.split(",")):
        for name, xv, xt in (("retrieval features", valid.features[..., rest], test.features[..., rest]),
                             ("retrieval features + co-occurrence", valid.features, test.features)):
            rows[f"{name}, {steps} steps"] = row(per_list_ndcg(ranked(fit_rank(xv, valid, steps)(xt)), test))
            print(name, steps, rows[f"{name}, {steps} steps"], flush=True)
    name = art.manifest.get("data", {}).get("name") or Path(args.artifacts).name
    result = {"artifact": args.artifacts, "dataset": name,
              "train_lists": len(valid), "test_lists": len(test), "rows": rows, "packages": package_versions(),
              "seconds": round(time.perf_counter() - t0, 1), "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"rerank_feature_probe_{name}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"### Reranker feature probe, {name} ({len(valid)} validation lists to learn from, {len(test)} test "
             f"lists), {result['date']}", "", "| ranking of the fused top 100 | test NDCG@10 | minus fused (95% interval) |",
             "|---|---|---|", f"| fused order | {rows['fused order']['test_ndcg@10']} | |"]
    for k, v in list(rows.items())[1:]:
        lines.append(f"| {k} | {v['test_ndcg@10']} | {v['diff']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}] |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
