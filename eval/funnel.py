"""The stage-wise report ("funnel") of a built artifact on its stored held-out split.

For every test user, with the test-stage history (training + validation events): each candidate
source's list and the fused list are scored by the same code (:func:`score_rankings`), and every
difference a claim rests on gets a paired bootstrap 95% interval:

- candidate Recall@N of each source, and of the merged list (merged - source);
- NDCG@k / Recall@k of the final list (reranked when the artifact has a reranker, else the fused
  list) against the fused list, the two-tower list alone, and, where seen items are kept, the
  user's own most-bought items (personal frequency);
- with a reranker, the ROC AUC of each head over the reranked candidates: P(click) against "the
  user touched it in the held-out period", P(purchase) against "the user bought it then".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from recsys.artifacts import Artifact
from recsys.prepare import load_prepared_tables
from recsys.splits import Split

from .baselines import PersonalFrequency, Popularity
from .metrics import paired_bootstrap
from .protocols import EvalTask, make_task, rank, score_rankings


@dataclass
class Funnel:
    task: EvalTask
    include_seen: bool
    ks: tuple[int, ...]
    metrics: dict[str, dict] = field(default_factory=dict)  # list name -> mean metrics
    per_user: dict[str, dict] = field(default_factory=dict)  # list name -> metric -> per-user array
    sources: tuple[str, ...] = ()
    intervals: dict[str, dict] = field(default_factory=dict)
    heads: dict[str, float] = field(default_factory=dict)  # reranker head AUCs (see the module doc)

    def to_dict(self) -> dict:
        keep = [m for k in self.ks for m in (f"recall@{k}", f"ndcg@{k}")]
        return {"protocol": self.task.protocol, "users": int(self.task.users.size), "include_seen": self.include_seen,
                "sources": list(self.sources),
                "metrics": {name: {m: round(v[m], 4) for m in keep if m in v} for name, v in self.metrics.items()},
                "intervals": {k: {kk: round(vv, 4) if isinstance(vv, float) else vv for kk, vv in v.items()}
                              for k, v in self.intervals.items()},
                **({"heads": self.heads} if self.heads else {})}


def stored_task(art: Artifact) -> EvalTask:
    """The test task of the split stored in ``art`` (protocol from its holdout)."""
    t = load_prepared_tables(art)
    holdout = art.manifest["config"]["holdout"]
    if holdout == "none":
        from recsys.errors import ArtifactError

        raise ArtifactError(f"{art.path}: built with --holdout none, so it holds no test split to score; "
                            "build with --holdout loo|temporal|last_basket to evaluate")
    return make_task(holdout, Split(t["train"], t["valid"], t["test"], {}), t["users"], t["items"], "test")


def run_funnel(rec, task: EvalTask, ks: tuple[int, ...] = (10, 20, 100), batch_size: int = 1024,
               n_resamples: int = 2000, claim_k: int | None = None) -> Funnel:
    """Score each source and the fused list of ``rec`` (a :class:`Recommender` whose history is the
    task's history) on ``task``; the final list's intervals are at ``claim_k`` (default: the
    smallest of ``ks``)."""
    include_seen = not task.exclude_seen
    kmax = max(ks)
    lists: dict[str, list] = {}
    probs: list[dict] = []
    for s in range(0, task.users.size, batch_size):
        profiles = rec.stored_profiles(task.users[s:s + batch_size])
        part = rec.source_lists(profiles, include_seen)
        for name, (ids, _) in part.items():
            lists.setdefault(name, []).append(ids)
        merged = rec.fuse(part)
        lists.setdefault("merged", []).append(merged.items)
        if rec.reranker is not None:
            out = rec._rerank(profiles, merged)
            lists.setdefault("reranked", []).append(out["items"])
            probs.append(out)
    f = Funnel(task, include_seen, tuple(ks), sources=tuple(k for k in lists if k not in ("merged", "reranked")))
    rankings = {name: _width(np.concatenate(v), kmax) for name, v in lists.items()}
    rankings["popularity"] = rank(task, Popularity().fit(task).scores, kmax)
    if include_seen:
        rankings["personal_frequency"] = rank(task, PersonalFrequency().fit(task).scores, kmax)
    for name, ranked in rankings.items():
        f.metrics[name], f.per_user[name] = score_rankings(task, ranked, ks=ks)
    n = max(k for k in ks)
    for src in f.sources:
        f.intervals[f"recall@{n} merged - {src}"] = paired_bootstrap(
            f.per_user[src][f"recall@{n}"], f.per_user["merged"][f"recall@{n}"], n_resamples)
    k = claim_k or min(ks)
    final = "reranked" if "reranked" in f.per_user else "merged"
    refs = ["two_tower", "personal_frequency"] + (["merged"] if final == "reranked" else [])
    for ref in refs:
        if ref in f.per_user:
            for m in (f"ndcg@{k}", f"recall@{k}"):
                f.intervals[f"{m} {final} - {ref}"] = paired_bootstrap(f.per_user[ref][m], f.per_user[final][m],
                                                                       n_resamples)
    if probs and task.held is not None:
        f.heads = head_auc(rec, task, probs)
    return f


def head_auc(rec, task: EvalTask, reranked: list[dict]) -> dict:
    """The heads' AUCs over every reranked candidate of every task user (see the module doc)."""
    from recsys.rerank.data import strong_events

    from .metrics import auc

    items = np.concatenate([r["items"] for r in reranked])
    click = np.concatenate([r["click"] for r in reranked])
    buy = np.concatenate([r["purchase"] for r in reranked])
    held = task.held.with_columns(strong_events(task.held, rec.weights, rec.value_kind).alias("_strong"))
    bought = held.filter(pl.col("_strong")).group_by("user_idx").agg("item_idx")
    bought = dict(zip(bought["user_idx"].to_list(), bought["item_idx"].to_list()))
    touched_y, bought_y, keep = np.zeros(items.shape, bool), np.zeros(items.shape, bool), items >= 0
    for r, u in enumerate(task.users):
        touched_y[r] = np.isin(items[r], task.targets[r])
        bought_y[r] = np.isin(items[r], bought.get(int(u), []))
    out = {"candidates": int(keep.sum()), "touched": int(touched_y[keep].sum()), "bought": int(bought_y[keep].sum()),
           "auc_click": auc(click[keep], touched_y[keep]), "auc_purchase": auc(buy[keep], bought_y[keep])}
    # the purchase head among the touched candidates only: does it tell a purchase from a view?
    both = keep & touched_y
    out["auc_purchase_among_touched"] = auc(buy[both], bought_y[both])
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def _width(ranked: np.ndarray, k: int) -> np.ndarray:
    if ranked.shape[1] >= k:
        return ranked[:, :k]
    return np.concatenate([ranked, np.full((ranked.shape[0], k - ranked.shape[1]), -1, dtype=ranked.dtype)], axis=1)


def evaluate_artifact(art: Artifact, ks: tuple[int, ...] = (10, 20, 100), device: str | None = None,
                      rerank: bool = True, rerank_depth: int = 100) -> Funnel:
    """Load ``art`` with its test-stage history and run the funnel on its stored split."""
    from recsys.retrieval.recommender import FusionOptions, Recommender

    task = stored_task(art)
    t = load_prepared_tables(art)
    n = max(ks)
    fusion = FusionOptions(n_two_tower=n, n_als=n, n_repeat=n, n_candidates=n)
    rec = Recommender(art, device, history=pl.concat([t["train"], t["valid"]]), fusion=fusion, use_reranker="always" if rerank else False,
                      rerank_depth=rerank_depth)
    return run_funnel(rec, task, ks)


def funnel_table(f: Funnel) -> str:
    """A Markdown table of the funnel."""
    lines = ["| list | " + " | ".join(f"Recall@{k} | NDCG@{k}" for k in f.ks) + " |",
             "|---|" + "---|---|" * len(f.ks)]
    for name, m in f.metrics.items():
        cells = " | ".join(f"{m[f'recall@{k}']:.4f} | {m[f'ndcg@{k}']:.4f}" for k in f.ks)
        lines.append(f"| {name} | {cells} |")
    lines += ["", "| difference (paired bootstrap, 95%) | mean | interval |", "|---|---|---|"]
    for k, v in f.intervals.items():
        lines.append(f"| {k} | {v['diff']:+.4f} | [{v['low']:+.4f}, {v['high']:+.4f}] |")
    if f.heads:
        h = f.heads
        lines += ["", f"Reranker heads over {h['candidates']} candidates ({h['touched']} touched, {h['bought']} bought "
                      f"in the held-out period): AUC P(click) {h['auc_click']}, AUC P(purchase) {h['auc_purchase']}, "
                      f"AUC P(purchase) among the touched {h['auc_purchase_among_touched']}."]
    return "\n".join(lines) + "\n"
