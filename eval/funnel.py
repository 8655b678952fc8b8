"""The stage-wise report ("funnel"): every list of an engine scored by the same code on one task.

Given each candidate source's list, the fused (``merged``) list and, with a reranker, the
``reranked`` list for every task user (produced by ``recsys.pipeline.evaluate``), plus the
popularity and (where seen items are kept) personal-frequency peers computed here, every list is
scored by :func:`score_rankings`, and every difference a claim rests on gets a paired bootstrap
95% interval:

- candidate Recall@N of each source, and of the merged list (merged - source);
- NDCG@k / Recall@k of the final list (reranked when there is one, else merged) against the
  merged list, the two-tower list alone, and personal frequency where seen items are kept;
- with a reranker, the ROC AUC of each head over the reranked candidates: P(click) against "the
  user touched it in the held-out period", P(purchase) against "the user bought it then".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from recsys.schema import EventWeights, strong_events

from .baselines import PersonalFrequency, Popularity
from .metrics import auc, paired_bootstrap
from .protocols import EvalTask, rank, score_rankings

FINAL_LISTS = ("merged", "reranked")


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


def score_funnel(task: EvalTask, lists: dict[str, np.ndarray], ks: tuple[int, ...] = (10, 20, 100),
                 n_resamples: int = 2000, claim_k: int | None = None, heads: dict | None = None) -> Funnel:
    """Score ``lists`` (name -> (task users, ≥ max(ks)) item indices, -1 padded; the sources' lists
    first, then "merged" and, optionally, "reranked") on ``task``; the final list's intervals are at
    ``claim_k`` (default: the smallest of ``ks``). ``heads``: the reranked lists' head
    probabilities (``items``, ``click``, ``purchase`` arrays) and the event semantics (``weights``,
    ``value_kind``) for :func:`head_auc`."""
    include_seen = not task.exclude_seen
    kmax = max(ks)
    f = Funnel(task, include_seen, tuple(ks), sources=tuple(k for k in lists if k not in FINAL_LISTS))
    rankings = {name: _width(ranked, kmax) for name, ranked in lists.items()}
    rankings["popularity"] = rank(task, Popularity().fit(task).scores, kmax)
    if include_seen:
        rankings["personal_frequency"] = rank(task, PersonalFrequency().fit(task).scores, kmax)
    for name, ranked in rankings.items():
        f.metrics[name], f.per_user[name] = score_rankings(task, ranked, ks=ks)
    for src in f.sources:
        f.intervals[f"recall@{kmax} merged - {src}"] = paired_bootstrap(
            f.per_user[src][f"recall@{kmax}"], f.per_user["merged"][f"recall@{kmax}"], n_resamples)
    k = claim_k or min(ks)
    final = "reranked" if "reranked" in f.per_user else "merged"
    refs = ["two_tower", "personal_frequency"] + (["merged"] if final == "reranked" else [])
    for ref in refs:
        if ref in f.per_user:
            for m in (f"ndcg@{k}", f"recall@{k}"):
                f.intervals[f"{m} {final} - {ref}"] = paired_bootstrap(f.per_user[ref][m], f.per_user[final][m],
                                                                       n_resamples)
    if heads and task.held is not None:
        f.heads = head_auc(task, heads["items"], heads["click"], heads["purchase"], heads["weights"],
                           heads.get("value_kind"))
    return f


def head_auc(task: EvalTask, items: np.ndarray, click: np.ndarray, buy: np.ndarray, weights: EventWeights,
             value_kind: str | None) -> dict:
    """The heads' AUCs over every reranked candidate of every task user (see the module doc)."""
    held = task.held.with_columns(strong_events(task.held, weights, value_kind).alias("_strong"))
    bought = held.filter(pl.col("_strong")).group_by("user_idx").agg("item_idx")
    bought = dict(zip(bought["user_idx"].to_list(), bought["item_idx"].to_list()))
    touched_y, bought_y, keep = np.zeros(items.shape, bool), np.zeros(items.shape, bool), items >= 0
    for r, u in enumerate(task.users):
        touched_y[r] = np.isin(items[r], task.targets[r])
        bought_y[r] = np.isin(items[r], bought.get(int(u), []))
    out = {"candidates": int(keep.sum()), "touched": int(touched_y[keep].sum()), "bought": int(bought_y[keep].sum()),
           "auc_click": auc(click[keep], touched_y[keep]), "auc_purchase": None, "auc_purchase_among_touched": None}
    if out["bought"] and np.isfinite(buy[keep]).all():  # a purchase head that learnt, and purchases to score it on
        out["auc_purchase"] = auc(buy[keep], bought_y[keep])
        both = keep & touched_y  # among the touched candidates only: does it tell a purchase from a view?
        if bought_y[both].any() and not bought_y[both].all():  # undefined where every touched one was bought
            out["auc_purchase_among_touched"] = auc(buy[both], bought_y[both])
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def _width(ranked: np.ndarray, k: int) -> np.ndarray:
    if ranked.shape[1] >= k:
        return ranked[:, :k]
    return np.concatenate([ranked, np.full((ranked.shape[0], k - ranked.shape[1]), -1, dtype=ranked.dtype)], axis=1)


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
        among = h["auc_purchase_among_touched"]
        buy = (f"AUC P(purchase) {h['auc_purchase']}" + (f", AUC P(purchase) among the touched {among}" if among is not
                                                           None else " (every touched candidate was bought)")
               if h["auc_purchase"] is not None else
               "P(purchase) not scored (no purchase in the held-out period, or no purchase head learnt)")
        lines += ["", f"Reranker heads over {h['candidates']} candidates ({h['touched']} touched, {h['bought']} bought "
                      f"in the held-out period): AUC P(click) {h['auc_click']}, {buy}."]
    return "\n".join(lines) + "\n"
