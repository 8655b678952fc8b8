"""Candidate sources, fusion and serving speed of a built artifact, on its stored held-out split.

    python benchmarks/candidates.py --dataset movielens-100k --data-dir ../shared/data
    python benchmarks/candidates.py --dataset instacart --data-dir ../shared/data
    python benchmarks/candidates.py --artifacts artifacts/myshop       # an artifact built already

Builds the artifact with `build-index`'s defaults (or reuses ``--artifacts``), then, for every test
user, with the test-stage history (training + validation events):

- candidate Recall@100 of each source (two-tower, ALS, and the user's own repeat items where seen
  items are kept) and of the fused list, with paired bootstrap 95% intervals of merged - source;
- NDCG@10 / Recall@10 of the fused list (the final list until a reranker exists) against
  personal frequency and popularity scored by the same code;
- query latency p50/p99 (one user per call, retrieval only) over all test users, and batch
  throughput of ``Recommender.recommend``.

Writes ``results/candidates_<dataset>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from recsys.artifacts import Artifact, machine_info, package_versions
from recsys.datasets import dataset_spec, load_dataset
from recsys.errors import ArtifactError
from recsys.eval.funnel import funnel_table
from recsys.pipeline import BuildOptions, RerankOptions, build, evaluate_engine, evaluation_engine, retune
from recsys.retrieval.recommender import Recommender

RESULTS = Path(__file__).resolve().parent / "results"
KS = (10, 20, 100)


def artifact_for(args) -> Path:
    """``--artifacts`` as given, or ``artifacts/bench-<dataset>`` built (or reused when it reloads)."""
    if args.artifacts:
        return Path(args.artifacts)
    ds = load_dataset(args.dataset, args.data_dir)
    out = Path("artifacts") / f"bench-{ds.name}"
    try:
        if not args.rebuild:
            Artifact.open(out)
            return out
    except ArtifactError:
        pass
    spec = dataset_spec(ds.name)
    build(ds, out, spec.cleaning, BuildOptions(holdout=spec.holdout, seed=args.seed,
                                               reranker=RerankOptions() if args.reranker else None))
    return out


def latency(rec: Recommender, user_ids: list[str], include_seen: bool, rerank: bool = False) -> dict:
    """p50/p99 of one-user calls (retrieval + fusion, and reranking when asked) and batch throughput."""
    times = []
    for u in user_ids:
        t0 = time.perf_counter()
        rec.recommend([u], k=10, include_seen=include_seen, rerank=rerank)
        times.append(1000 * (time.perf_counter() - t0))
    t0 = time.perf_counter()
    rec.recommend(user_ids, k=20, include_seen=include_seen, rerank=rerank)
    batch = time.perf_counter() - t0
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p99_ms": round(float(np.percentile(times, 99)), 2),
            "users": len(user_ids), "batch_seconds": round(batch, 3), "batch_users_per_s": round(len(user_ids) / batch, 1)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--data-dir")
    p.add_argument("--artifacts", help="A built artifact to score instead of building one.")
    p.add_argument("--rebuild", action="store_true", help="Build again even if artifacts/bench-<dataset> reloads.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reranker", action="store_true", help="Build with the reranker (when building).")
    p.add_argument("--retune", action="store_true", help="Choose the fusion weights of the artifact again first.")
    p.add_argument("--rerank-latency-users", type=int, default=100, help="Users timed with reranking.")
    p.add_argument("--plot-only", action="store_true", help="Redraw results/candidates_<dataset>.png from its JSON.")
    args = p.parse_args(argv)
    if args.plot_only:
        result = json.loads((RESULTS / f"candidates_{args.dataset}.json").read_text())
        plot(result, RESULTS / f"candidates_{args.dataset}.png")
        return result
    t_build = time.perf_counter()
    path = artifact_for(args)
    if args.retune:
        print("fusion weights:", retune(path))
    t_build = time.perf_counter() - t_build
    art = Artifact.open(path)
    rec, task = evaluation_engine(art, max(KS))
    t0 = time.perf_counter()
    f = evaluate_engine(rec, task, KS)
    funnel_s = time.perf_counter() - t0
    ids = list(rec.users.to_external(task.users))
    speed = latency(rec, ids, f.include_seen)
    if rec.reranker is not None:
        speed["with_rerank"] = latency(rec, ids[:args.rerank_latency_users], f.include_seen, rerank=True)
    result = {
        "dataset": art.manifest["data"]["name"], "artifact": str(path), "build_seconds": round(t_build, 1),
        "funnel_seconds": round(funnel_s, 2), **f.to_dict(),
        "fusion": {"method": rec.fusion.method, "rrf_k": rec.fusion.rrf_k, "weights": rec.fusion_weights(f.include_seen),
                   "n_candidates": rec.fusion.n_candidates},
        "latency": speed,
        "machine": machine_info(),
        "packages": package_versions(), "date": time.strftime("%Y-%m-%d"),
    }
    name = result["dataset"]
    result["markdown"] = table(result, funnel_table(f))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"candidates_{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"candidates_{name}.md").write_text(result["markdown"])
    plot(result, RESULTS / f"candidates_{name}.png")
    print(result["markdown"])
    return result


def plot(r: dict, path: Path) -> None:
    """The funnel as two bar charts: candidate Recall@100 of each list, then NDCG@10 of the final
    lists next to the peers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = r["metrics"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    lists = [k for k in (*r["sources"], "merged") if k in m]
    a.bar(lists, [m[k]["recall@100"] for k in lists], color=["#8da0cb"] * len(r["sources"]) + ["#fc8d62"])
    a.set_title("candidates: Recall@100")
    finals = [k for k in ("merged", "reranked", "two_tower", "personal_frequency", "popularity") if k in m]
    b.bar(finals, [m[k]["ndcg@10"] for k in finals], color="#66c2a5")
    b.set_title("final lists and peers: NDCG@10")
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=30)
        for bar in ax.patches:
            ax.annotate(f"{bar.get_height():.3f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    fig.suptitle(f"{r['dataset']} ({r['protocol']}, {r['users']} users), {r['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(r: dict, funnel_md: str) -> str:
    s = r["latency"]
    return (f"### Candidates and fusion: {r['dataset']} ({r['protocol']}, seen items "
            f"{'kept' if r['include_seen'] else 'excluded'}), {r['users']} users, {r['date']}\n\n{funnel_md}\n"
            f"Query latency (one user per call, retrieval + fusion, no reranker): p50 {s['p50_ms']} ms, "
            f"p99 {s['p99_ms']} ms over {s['users']} users; batch `recommend`: {s['batch_users_per_s']:,} users/s. "
            + (f"With reranking of the top 100: p50 {s['with_rerank']['p50_ms']} ms, p99 {s['with_rerank']['p99_ms']} ms "
               f"over {s['with_rerank']['users']} users. " if "with_rerank" in s else "")
            + f"Fusion: {r['fusion']}.\n")


if __name__ == "__main__":
    main()
