"""Run the peers side by side on one dataset, on the same split, scored by the same code.

    python benchmarks/run.py --dataset movielens-100k --data-dir ../shared/data
    python benchmarks/run.py --dataset instacart --data-dir ../shared/data
    python benchmarks/run.py --dataset rees46 --data-dir ../shared/data
    python benchmarks/run.py --events ev.csv --items items.csv --protocol temporal --name myshop
    python benchmarks/run.py --dataset movielens-100k --data-dir ../shared/data --artifacts artifacts/bench-movielens-100k

With ``--artifacts DIR`` (an artifact built by ``recsys build-index`` on the same data and split,
which is checked) the engine's lists join the table as ``engine/<list>`` rows: each candidate
source, the fused list, and the reranked list when the artifact has a reranker (``--no-rerank``
to skip it: ~0.4 s per user on this CPU). With ``--peer-lists results/recbole_NAME.json`` the peers
that ``benchmarks/recbole_peers.py`` scored on the same split (checked) join the table and the
best-peer comparison as ``recbole/<model>`` rows. Each peer is lightly tuned on the validation stage (best NDCG@10 over a small grid), refitted on
the test-stage history, and scored on the test targets. Writes ``results/<name>.json``, a
Markdown table ``results/<name>.md`` and a recall@k plot ``results/<name>_recall.png``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from recsys import layout
from recsys.artifacts import machine_info, machine_line, package_versions
from recsys.datasets import dataset_from_files, dataset_spec, default_cleaning, load_dataset
from recsys.device import set_seed
from recsys.eval.baselines import (
    TIFUKNN,
    ImplicitPeer,
    ItemCooccurrence,
    PersonalFrequency,
    Popularity,
    Recency,
)
from recsys.eval.protocols import PROTOCOLS, keeps_seen, make_task, rank, score_rankings
from recsys.prepare import prepare

RESULTS = Path(__file__).resolve().parent / "results"
CURVE_KS = (1, 2, 5, 10, 20, 50, 100)
REPORT_KS = (10, 20, 100)


def grids(protocol: str) -> dict[str, tuple[type, dict]]:
    """Peer name -> (class, grid of keyword arguments)."""
    g = {
        "popularity": (Popularity, {}),
        "cooccurrence": (ItemCooccurrence, {"window": [1, 3], "last_n": [1, 5]}),
        "als": (ImplicitPeer, {"kind": ["als"], "factors": [32, 64, 128], "alpha": [1.0, 5.0], "regularization": [0.05]}),
        "bpr": (ImplicitPeer, {"kind": ["bpr"], "factors": [64], "iterations": [100], "learning_rate": [0.01, 0.05]}),
        "itemknn_cosine": (ImplicitPeer, {"kind": ["itemknn_cosine"], "K": [50, 200]}),
        "itemknn_bm25": (ImplicitPeer, {"kind": ["itemknn_bm25"], "K": [50, 200]}),
    }
    if keeps_seen(protocol):  # repeats count: the user's own items are peers of their own
        g["personal_frequency"] = (PersonalFrequency, {})
        g["recency"] = (Recency, {})
        g["tifu_knn"] = (TIFUKNN, {"group_size": [3, 7], "alpha": [0.7, 0.9], "n_neighbors": [100, 300]})
    return g


def expand(grid: dict) -> list[dict]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))] or [{}]


def evaluate_peer(cls, params: dict, task, k: int = 100):
    peer = cls(**params)
    t0 = time.perf_counter()
    peer.fit(task)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ranked = rank(task, peer.scores, k)
    rank_s = time.perf_counter() - t0
    means, per = score_rankings(task, ranked, ks=sorted(set(REPORT_KS) | set(CURVE_KS)))
    return means, per, fit_s, rank_s


def run(args) -> dict:
    set_seed(args.seed)
    if args.events:
        ds = dataset_from_files(args.events, args.items, name=args.name)
        cleaning = None
    else:
        ds = load_dataset(args.dataset, args.data_dir)
        cleaning = default_cleaning(ds.name)
    protocol = args.protocol or (dataset_spec(ds.name).holdout if not args.events else "temporal")
    t0 = time.perf_counter()
    prepared = prepare(ds, cleaning, holdout=protocol)
    prep_s = time.perf_counter() - t0
    valid = make_task(protocol, prepared.split, prepared.users, prepared.items, "valid")
    test = make_task(protocol, prepared.split, prepared.users, prepared.items, "test")
    rows = {}
    for name, (cls, grid) in grids(protocol).items():
        if args.only and name not in args.only:
            continue
        best, best_params, tried = -1.0, {}, []
        for params in expand(grid):
            m, _, _, _ = evaluate_peer(cls, params, valid)
            tried.append({"params": params, "valid_ndcg@10": round(m["ndcg@10"], 4)})
            if m["ndcg@10"] > best:
                best, best_params = m["ndcg@10"], params
        means, per, fit_s, rank_s = evaluate_peer(cls, best_params, test)
        rows[name] = {"params": best_params, "valid_ndcg@10": best, "tuning": tried, "fit_s": round(fit_s, 3),
                      "rank_s": round(rank_s, 3), "test": means,
                      "per_user": {m: per[m].round(6).tolist() for m in ("ndcg@10", "recall@10", "recall@100")}}
        print(f"{name:20s} ndcg@10 {means['ndcg@10']:.4f} recall@10 {means['recall@10']:.4f} "
              f"recall@100 {means['recall@100']:.4f}  ({best_params})", file=sys.stderr)
    for path in args.peer_lists or ():
        rows.update(peer_list_rows(path, ds.name, protocol, prepared.fingerprint(), int(test.users.size)))
    engine = engine_rows(args, prepared, protocol, rows) if args.artifacts else None
    return {
        "dataset": ds.name, "protocol": protocol, "citation": ds.citation,
        "data": {k: v for k, v in prepared.data_manifest().items() if k not in ("sources",)},
        "test_users": int(test.users.size), "valid_users": int(valid.users.size),
        "mean_targets": float(np.mean([len(t) for t in test.targets])) if test.targets else 0.0,
        "prepare_s": round(prep_s, 3), "peers": rows, "engine": engine, "slices": {"cold": cold_slice(test, rows),
                                                                                 "new": cold_slice(test, rows, 0)},
        "machine": {**machine_info(), "cpus": _cpus()},
        "packages": package_versions(), "seed": args.seed, "date": time.strftime("%Y-%m-%d"),
    }


def peer_list_rows(path: Path, dataset: str, protocol: str, fingerprint: str, users: int) -> dict:
    """Rows of peers scored elsewhere on the same split (``benchmarks/recbole_peers.py``'s result),
    named ``recbole/MODEL``: each must carry the same data fingerprint and test users."""
    got = json.loads(Path(path).read_text())
    if (got.get("dataset"), got.get("protocol")) != (dataset, protocol):
        sys.exit(f"--peer-lists {path}: lists of {got.get('dataset')} ({got.get('protocol')}), not {dataset} "
                 f"({protocol}); score them on this dataset with benchmarks/recbole_peers.py")
    out = {}
    for model, m in got.get("models", {}).items():
        if m.get("fingerprint") != fingerprint or len(m.get("per_user", {}).get("ndcg@10", ())) != users:
            sys.exit(f"--peer-lists {path}: {model}'s lists were scored on other data or another split than this "
                     f"run; score them again with `python benchmarks/recbole_peers.py --score-only`")
        out[f"recbole/{model}"] = {"params": m.get("config", {}), "fit_s": m["fit_seconds"], "test": m["test"],
                                   "per_user": m["per_user"]}
    return out


def engine_rows(args, prepared, protocol: str, rows: dict) -> dict:
    """Add the engine's lists (scored by the same code, on the same split) to ``rows``."""
    from recsys.artifacts import Artifact
    from recsys.pipeline import evaluate_artifact
    from recsys.pipeline.reranking import reranker_helps
    from recsys.prepare import load_prepared_tables

    art = Artifact.open(args.artifacts)
    t = load_prepared_tables(art)
    same = (art.manifest["data"]["fingerprint"] == prepared.fingerprint() and art.manifest["config"]["holdout"] == protocol
            and t["items"].ids.tolist() == prepared.items.ids.tolist() and t["users"].ids.tolist() == prepared.users.ids.tolist())
    if not same:
        sys.exit(f"--artifacts {args.artifacts}: built on other data or another split than this run "
                 f"({protocol}); build it with `recsys build-index --dataset {prepared.dataset.name} --holdout {protocol}`")
    t0 = time.perf_counter()
    f = evaluate_artifact(art, ks=tuple(sorted(set(REPORT_KS) | set(CURVE_KS))), rerank=not args.no_rerank, claim_k=10)
    summary = art.load_json(layout.SUMMARY) if art.has(layout.SUMMARY) else {}
    seconds = dict(summary.get("stage_seconds", {}))
    if summary.get("reranker", {}).get("history"):  # the reranker in the artifact now (train-reranker may have replaced it)
        fit = summary["reranker"]
        seconds["reranker"] = fit["history"][-1]["seconds"] + fit.get("lists_seconds", 0.0)
    for name in (*f.sources, "merged", "reranked"):
        if name in f.metrics:
            fit = seconds.get("two_tower", 0) + (seconds.get("sources", 0) if name != "two_tower" else 0) + (
                seconds.get("reranker", 0) if name == "reranked" else 0)
            rows[f"engine/{name}"] = {"params": {}, "fit_s": round(fit, 1), "test": f.metrics[name],
                                      "per_user": {m: f.per_user[name][m].round(6).tolist()
                                                   for m in ("ndcg@10", "recall@10", "recall@100")}}
    return {"artifact": str(args.artifacts), "created_at": art.manifest.get("created_at"),
            "config": art.manifest.get("config"), "funnel_s": round(time.perf_counter() - t0, 1),
            "intervals": f.intervals, "heads": f.heads, "reranker_served": reranker_helps(summary)}


def slice_users(task, max_interactions: int = 5) -> np.ndarray:
    """Which of ``task``'s users have every target with at most ``max_interactions`` events in the
    history (a bool per user, in ``task.users``' order; a user without targets is in no slice)."""
    counts = np.bincount(task.history["item_idx"].to_numpy(), minlength=task.n_items)
    return np.array([t.size > 0 and bool((counts[t] <= max_interactions).all()) for t in task.targets], dtype=bool)


def cold_slice(task, rows: dict, max_interactions: int = 5) -> dict:
    """NDCG@10 of every row over the users whose every target had at most ``max_interactions``
    events in the history (items the collaborative models barely know: where text has to carry it).
    With ``max_interactions=0`` the new-item slice: targets nobody had touched before, the items
    `recsys add-items` puts into an artifact (their vectors come from the text alone either way)."""
    cold = slice_users(task, max_interactions)
    out = {"rule": f"every target with <= {max_interactions} events in the history", "users": int(cold.sum())}
    if cold.any():
        out["ndcg@10"] = {name: round(float(np.asarray(row["per_user"]["ndcg@10"])[cold].mean()), 4)
                          for name, row in rows.items()}
    return out


def versus_best_peer(rows: dict, metric: str = "ndcg@10", n_resamples: int = 2000, seed: int = 0,
                     reranker_served: bool = True) -> dict | None:
    """The served list (``engine/reranked`` when there is one and the artifact serves it, else
    ``engine/merged``) against the peer with the best test ``metric``: both means, their ratio and
    difference, each with a paired bootstrap 95% interval (users resampled)."""
    names = ("engine/reranked", "engine/merged") if reranker_served else ("engine/merged",)
    engine = next((n for n in names if n in rows), None)
    peers = [n for n in rows if not n.startswith("engine/")]
    if engine is None or not peers:
        return None
    peer = max(peers, key=lambda n: rows[n]["test"][metric])
    a, b = (np.asarray(rows[n]["per_user"][metric], dtype=np.float64) for n in (peer, engine))
    idx = np.random.default_rng(seed).integers(0, a.size, (n_resamples, a.size))
    ma, mb = a[idx].mean(axis=1), b[idx].mean(axis=1)
    ratio = mb / np.maximum(ma, 1e-12)
    return {"metric": metric, "engine": engine, "peer": peer, "engine_mean": round(float(b.mean()), 4),
            "peer_mean": round(float(a.mean()), 4), "ratio": round(float(b.mean() / max(a.mean(), 1e-12)), 3),
            "ratio_interval": [round(float(np.quantile(ratio, q)), 3) for q in (0.025, 0.975)],
            "diff": round(float(b.mean() - a.mean()), 4),
            "diff_interval": [round(float(np.quantile(mb - ma, q)), 4) for q in (0.025, 0.975)], "users": int(a.size)}


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def markdown(result: dict) -> str:
    lines = [
        f"### {result['dataset']} — {result['protocol']} ({result['test_users']} test users, "
        f"mean {result['mean_targets']:.1f} targets), {result['date']}, {machine_line(result['machine'])}",
        "",
        "| model | NDCG@10 | Recall@10 | Recall@20 | Recall@100 | MRR@10 | coverage@10 | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(result["peers"].items(), key=lambda kv: -kv[1]["test"]["ndcg@10"])
    for name, row in order:
        t = row["test"]
        lines.append(f"| {name} | {t['ndcg@10']:.4f} | {t['recall@10']:.4f} | {t['recall@20']:.4f} | "
                     f"{t['recall@100']:.4f} | {t['mrr@10']:.4f} | {t['coverage@10']:.3f} | {row['fit_s']:.1f} |")
    lines += ["", f"Full-catalogue ranking; {'seen items included (repeats count)' if keeps_seen(result['protocol']) else 'items already seen excluded'}. "
              "Each peer tuned on the validation stage (grid in benchmarks/run.py); `engine/` rows: the built "
              "artifact's lists (fit s: its training stages).", ""]
    engine = result.get("engine") or {}
    v = result.get("versus_best_peer")
    if v:
        lines += [f"**Engine vs best peer:** {v['engine']} {v['engine_mean']:.4f} vs {v['peer']} {v['peer_mean']:.4f} "
                  f"NDCG@10: ×{v['ratio']:.3f} [{v['ratio_interval'][0]:.3f}, {v['ratio_interval'][1]:.3f}], "
                  f"{v['diff']:+.4f} [{v['diff_interval'][0]:+.4f}, {v['diff_interval'][1]:+.4f}] "
                  f"(paired bootstrap, 95%, {v['users']} users).", ""]
    for name, title in (("cold", "Cold slice"), ("new", "New-item slice")):
        part = (result.get("slices") or {}).get(name) or {}
        if part.get("ndcg@10"):
            best = sorted(part["ndcg@10"].items(), key=lambda kv: -kv[1])
            lines += [f"{title} ({part['users']} users, {part['rule']}), NDCG@10: "
                      + ", ".join(f"{k} {v:.4f}" for k, v in best) + ".", ""]
    if engine.get("intervals"):
        lines += ["| engine difference (paired bootstrap, 95%) | mean | interval |", "|---|---|---|"]
        lines += [f"| {k} | {v['diff']:+.4f} | [{v['low']:+.4f}, {v['high']:+.4f}] |" for k, v in engine["intervals"].items()]
        lines.append("")
    if engine.get("heads"):
        h = engine["heads"]
        lines += [f"Reranker heads over the {h['candidates']} reranked candidates ({h['touched']} touched, {h['bought']} "
                  f"bought in the test period): AUC P(click) {h['auc_click']}, AUC P(purchase) {h['auc_purchase']}, "
                  f"AUC P(purchase) among the touched {h['auc_purchase_among_touched'] or 'n/a'}.", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in result["peers"].items():
        ax.plot(CURVE_KS, [row["test"][f"recall@{k}"] for k in CURVE_KS], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("Recall@k")
    ax.set_title(f"{result['dataset']} ({result['protocol']})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--events")
    p.add_argument("--items")
    p.add_argument("--name", default=None, help="Result name for --events (default: the file's stem).")
    p.add_argument("--protocol", choices=list(PROTOCOLS))
    p.add_argument("--only", nargs="*", help="Run only these peers.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--artifacts", help="A built artifact on the same data and split: adds the engine's rows.")
    p.add_argument("--no-rerank", action="store_true", help="With --artifacts: leave the reranked list out.")
    p.add_argument("--peer-lists", nargs="*", type=Path,
                   help="Peers scored elsewhere on the same split (results/recbole_NAME.json from "
                        "benchmarks/recbole_peers.py): their rows join the table and the best-peer comparison.")
    args = p.parse_args(argv)
    result = run(args)
    result["versus_best_peer"] = versus_best_peer(result["peers"],
                                                  reranker_served=(result["engine"] or {}).get("reranker_served", True))
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.name or result["dataset"]
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (args.out / f"{name}.md").write_text(markdown(result))
    plot(result, args.out / f"{name}_recall.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
