"""Choosing the fusion weights on the validation stage (never on the test targets).

For each serving mode (seen items excluded, or kept), the sources' weight grids (each registered
source's ``fusion_grid``: the two-tower's is fixed at 1, since only ratios matter for
reciprocal-rank fusion) are searched — every combination when they are few, else coordinate
ascent (:func:`search`) — each weighting fused and scored by NDCG@10 on the validation targets, with
the validation stage's engine (:mod:`.provider`); the best combination is stored in the artifact
(``fusion.json``) and read by the :class:`~recsys.retrieval.recommender.Recommender`.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import polars as pl

from recsys.eval.metrics import ndcg_many, paired_bootstrap
from recsys.eval.protocols import EvalTask
from recsys.fusion import Union

log = logging.getLogger(__name__)

FEW_USERS = 100  # below this many validation users, fusion's choices are flagged as resting on little evidence


def evidence_warning(users: int, few: int | None = None) -> str | None:
    """A warning when the validation stage holds fewer than ``few`` (default :data:`FEW_USERS`) users
    with a target, else None.

    >>> evidence_warning(19)[:58]
    'the validation stage holds 19 users with a target (fewer t'
    >>> evidence_warning(100) is None
    True
    """
    few = FEW_USERS if few is None else few
    if users >= few:
        return None
    return (f"the validation stage holds {users} users with a target (fewer than {few}): fusion's weights, the "
            "sources that earn their place and the serving mode rest on little evidence; a longer history (more "
            "users with a target in the validation period) makes them firmer")


def tune_fusion(rec, task: EvalTask, include_seen: bool, k: int = 10, max_users: int = 3000, seed: int = 0,
                batch_of=None) -> dict:
    """Best source weights for ``rec`` (whose history is ``task.history``) on ``task``'s targets;
    ``batch_of(users)`` gives the users' histories as a batch (default: their stored ones, at the
    time of their first target).

    A source that must earn its place (``must_earn``) keeps a non-zero weight only when the best
    weighting beats the same weighting without it by a paired bootstrap interval above zero; one
    that does not is fixed at 0 and the other weights are searched again (:func:`earned_weights`).

    Returns ``{"weights": {...}, "valid_ndcg@k": best, "default_ndcg@k": with all weights 1, "users": n,
    "evidence": {source: {"diff", "interval", "kept"}} for the sources that had to earn their place,
    "per_user": the best weighting's NDCG@k per user (an array, not for the JSON)}``.
    """
    users = task.users
    if users.size == 0:
        return {"weights": {}, f"valid_ndcg@{k}": None, f"default_ndcg@{k}": None, "users": 0, "per_user": None}
    keep = np.sort(np.random.default_rng(seed).choice(users.size, min(max_users, users.size), replace=False))
    at = task.request_times()[keep]
    sub = EvalTask(task.protocol, users[keep], [task.targets[i] for i in keep], task.history, task.exclude_seen,
                   task.n_users, task.n_items)
    lists: dict[str, list] = {}
    for s in range(0, sub.users.size, 1024):
        users = sub.users[s:s + 1024]
        batch = batch_of(users) if batch_of else rec.stored_batch(users, at[s:s + 1024])
        for name, v in rec.source_lists(batch, include_seen).items():
            lists.setdefault(name, []).append(v)
    lists = {name: (np.concatenate([v[0] for v in parts]), np.concatenate([v[1] for v in parts]))
             for name, parts in lists.items()}
    grids = {name: rec.sources[name].fusion_grid for name in lists if len(rec.sources[name].fusion_grid) > 1}
    names = list(grids)

    union = Union(lists, rec.fusion.method, rec.fusion.rrf_k)  # built once; each weighting only re-scores it

    def ndcg(weights: dict) -> np.ndarray:
        return ndcg_many(union.top(weights, k), sub.targets, k)

    default = float(ndcg({n: 1.0 for n in names}).mean())
    must = [n for n in names if rec.sources[n].must_earn and 0.0 in grids[n]]
    per_user, weights, evidence = earned_weights(ndcg, grids, must)
    best = float(per_user.mean())
    log.info("fusion weights (%s): %s, validation NDCG@%d %.4f (all 1: %.4f)",
             "seen kept" if include_seen else "seen excluded", weights, k, best, default)
    return {"weights": weights, f"valid_ndcg@{k}": round(best, 4), f"default_ndcg@{k}": round(default, 4),
            "users": int(sub.users.size), "evidence": evidence, "per_user": per_user}


def earned_weights(score, grids: dict[str, tuple[float, ...]], must: list[str]):
    """:func:`search`, where each source of ``must`` keeps a non-zero weight only when the best
    weighting beats the same weighting without it by a paired bootstrap interval above zero. A
    source that fails is fixed at 0 and the others' weights are searched again (the best weighting
    of the sources kept, not the best one with the failed source taken out), until every source
    left earns its place. Returns (per_user, weights, evidence: {source: {"diff", "interval",
    "kept"}} for each source of ``must`` that failed, and each that earned its final weight).

    ``a``'s best weight is 2 with ``b`` and 1 without it; ``b`` adds +0.05 or -0.048 by user, +0.001
    on average, not enough to be kept. Taking ``b`` out of the best weighting would leave ``a`` at 2
    (0.999); searched again, ``a`` is 1 (1.0):

    >>> users = np.arange(40)
    >>> def f(w):
    ...     noise = np.where(users % 2 == 0, 0.05, -0.048) * w["b"]
    ...     return 1.0 - 0.001 * (w["a"] - (2.0 if w["b"] else 1.0)) ** 2 + noise
    >>> per_user, weights, evidence = earned_weights(f, {"a": (0.0, 1.0, 2.0), "b": (0.0, 1.0)}, ["b"])
    >>> weights, evidence["b"]["kept"], round(float(per_user.mean()), 4)
    ({'a': 1.0, 'b': 0.0}, False, 1.0)
    """
    dropped: set[str] = set()
    evidence: dict[str, dict] = {}
    while True:
        per_user, weights = search(score, {n: (0.0,) if n in dropped else g for n, g in grids.items()})
        evidence = {n: e for n, e in evidence.items() if n in dropped}  # the others are tested anew
        failed = None
        for name in must:
            if name in dropped or weights[name] == 0.0:
                continue
            d = paired_bootstrap(score({**weights, name: 0.0}), per_user)
            evidence[name] = {"diff": round(d["diff"], 4), "interval": [round(d["low"], 4), round(d["high"], 4)],
                              "kept": bool(d["low"] > 0)}
            if d["low"] <= 0:
                failed = name
                break
        if failed is None:
            return per_user, weights, evidence
        dropped.add(failed)


def search(score, grids: dict[str, tuple[float, ...]], exhaustive: int = 256, rounds: int = 3):
    """The weights (one value from each grid) whose ``score(weights)`` (per-user array) has the best
    mean: every combination when there are at most ``exhaustive``, else coordinate ascent from all
    weights 1 (each source's grid tried with the others fixed, in turn, until a round changes
    nothing). The first best wins ties: grids list smaller weights first. Returns (per_user, weights).

    >>> f = lambda w: np.array([-(w["a"] - 2) ** 2 - (w["b"] - 1) ** 2])
    >>> search(f, {"a": (0.0, 1.0, 2.0, 4.0), "b": (0.0, 1.0, 2.0)}, exhaustive=0)[1]
    {'a': 2.0, 'b': 1.0}
    """
    names = list(grids)
    combos = int(np.prod([len(g) for g in grids.values()])) if names else 1
    if combos <= exhaustive:
        results = [(score(w), w) for w in (dict(zip(names, c)) for c in itertools.product(*(grids[n] for n in names)))]
        return max(results, key=lambda r: r[0].mean())
    weights = {n: 1.0 if 1.0 in grids[n] else grids[n][0] for n in names}
    best = score(weights)
    for _ in range(rounds):
        changed = False
        for n in names:
            for v in grids[n]:
                if v == weights[n]:
                    continue
                trial = {**weights, n: v}
                got = score(trial)
                if got.mean() > best.mean():
                    best, weights, changed = got, trial, True
        if not changed:
            break
    return best, weights


def serving_mode(excluded: dict, included: dict, k: int = 10) -> dict:
    """Whether the engine serves items the user already had, from :func:`tune_fusion`'s answers for
    both modes on the same validation users: kept only when keeping them raises NDCG@k with a
    paired bootstrap interval above zero; otherwise (no evidence, or none either way) excluded.

    >>> serving_mode({"per_user": np.array([0.0, 0.2, 0.5])}, {"per_user": np.array([0.5, 0.6, 1.0])})["include_seen"]
    True
    >>> serving_mode({"per_user": np.array([0.3, 0.2])}, {"per_user": np.array([0.3, 0.2])})["include_seen"]
    False
    """
    a, b = excluded.get("per_user"), included.get("per_user")
    if a is None or b is None or len(a) == 0:
        return {"include_seen": False, "reason": "no validation users to decide on: seen items excluded"}
    d = paired_bootstrap(a, b)
    keep = d["low"] > 0
    return {"include_seen": bool(keep), f"valid_ndcg@{k}_excluded": round(float(np.mean(a)), 4),
            f"valid_ndcg@{k}_included": round(float(np.mean(b)), 4),
            "diff": round(d["diff"], 4), "interval": [round(d["low"], 4), round(d["high"], 4)], "users": d["n"],
            "reason": (f"keeping the user's own items {'raised' if keep else 'did not raise'} validation NDCG@{k} "
                       f"({d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}], {d['n']} users)")}


def short_history_task(rec, task: EvalTask, short: int, min_users: int = 20):
    """(task, batch_of) for choosing the weights of short histories: a new visitor's first event in the
    held-out period is the history and the rest of their held-out items the targets (none of which any
    model learnt); where too few users have two held-out items (leave-one-out), each user's last
    ``short`` events before the period are the history and the held-out items the targets."""
    held = task.held.sort("user_idx", "timestamp", maintain_order=True)
    first = held.group_by("user_idx", maintain_order=True).head(1)
    rest = held.join(first.select("user_idx", "item_idx"), on=["user_idx", "item_idx"], how="anti")
    grouped = rest.group_by("user_idx").agg(pl.col("item_idx").unique().sort()).sort("user_idx")
    if grouped.height < min_users:
        return task, lambda users: rec.suffix_batch(users, short)
    users = grouped["user_idx"].to_numpy()
    targets = [np.asarray(t, dtype=np.int64) for t in grouped["item_idx"].to_list()]
    history = first.filter(pl.col("user_idx").is_in(pl.Series(users).implode()))
    short_task = EvalTask(task.protocol, users, targets, history, task.exclude_seen, task.n_users, task.n_items)
    return short_task, lambda us: rec.events_batch(history.filter(pl.col("user_idx").is_in(pl.Series(us).implode())), us)
