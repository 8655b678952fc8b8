"""Choosing the fusion weights on the validation stage (never on the test targets).

For each serving mode (seen items excluded, or kept), every combination of the sources' weight
grids (each registered source's ``fusion_grid``: the two-tower's is fixed at 1, since only ratios
matter for reciprocal-rank fusion) is fused and scored by NDCG@10 on the validation targets, with
the validation stage's engine (:mod:`.provider`); the best combination is stored in the artifact
(``fusion.json``) and read by the :class:`~recsys.retrieval.recommender.Recommender`.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np

from recsys.eval.protocols import EvalTask, score_rankings

log = logging.getLogger(__name__)


def tune_fusion(rec, task: EvalTask, include_seen: bool, k: int = 10, max_users: int = 3000, seed: int = 0) -> dict:
    """Best source weights for ``rec`` (whose history is ``task.history``) on ``task``'s targets.

    Returns ``{"weights": {...}, "valid_ndcg@k": best, "default_ndcg@k": with all weights 1, "users": n}``.
    """
    users = task.users
    if users.size == 0:
        return {"weights": {}, f"valid_ndcg@{k}": None, f"default_ndcg@{k}": None, "users": 0}
    keep = np.sort(np.random.default_rng(seed).choice(users.size, min(max_users, users.size), replace=False))
    sub = EvalTask(task.protocol, users[keep], [task.targets[i] for i in keep], task.history, task.exclude_seen,
                   task.n_users, task.n_items)
    lists: dict[str, list] = {}
    for s in range(0, sub.users.size, 1024):
        for name, v in rec.source_lists(rec.stored_batch(sub.users[s:s + 1024]), include_seen).items():
            lists.setdefault(name, []).append(v)
    lists = {name: (np.concatenate([v[0] for v in parts]), np.concatenate([v[1] for v in parts]))
             for name, parts in lists.items()}
    grids = {name: rec.sources[name].fusion_grid for name in lists if len(rec.sources[name].fusion_grid) > 1}
    names = list(grids)
    results = []
    for combo in itertools.product(*(grids[n] for n in names)):
        weights = dict(zip(names, combo))
        ranked = rec.fuse(lists, weights=weights).items[:, :k]
        results.append((score_rankings(sub, ranked, ks=(k,))[0][f"ndcg@{k}"], weights))
    default = score_rankings(sub, rec.fuse(lists, weights={n: 1.0 for n in names}).items[:, :k], ks=(k,))[0][f"ndcg@{k}"]
    best, weights = max(results, key=lambda r: r[0])  # first best wins ties: each grid lists smaller weights first
    log.info("fusion weights (%s): %s, validation NDCG@%d %.4f (all 1: %.4f)",
             "seen kept" if include_seen else "seen excluded", weights, k, best, default)
    return {"weights": weights, f"valid_ndcg@{k}": round(best, 4), f"default_ndcg@{k}": round(default, 4),
            "users": int(sub.users.size)}
