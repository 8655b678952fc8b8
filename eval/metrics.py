"""Ranking metrics over full-catalogue rankings, each per user; means are taken by the caller.

A *ranking* is a sequence of item indices, best first (-1 pads a short list); *targets* is the set of held-out items
(one for leave-one-out, a whole basket for last-basket). Relevance is binary; repeated target
items count once. An empty target set has no defined recall: such users are left out by the
protocols, and the functions here return 0.0 for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def _hits(ranking: Sequence[int], targets: Iterable[int], k: int) -> np.ndarray:
    t = set(int(x) for x in targets)
    return np.fromiter((int(i) in t for i in list(ranking)[:k]), dtype=bool)


def recall_at_k(ranking: Sequence[int], targets: Iterable[int], k: int) -> float:
    """Recall@k = |top-k ∩ T| / |T|.

    >>> recall_at_k([3, 1, 2], {1, 5}, 2)   # one of the two targets in the top 2
    0.5
    >>> recall_at_k([3, 1], {1}, 10)         # fewer than k items ranked
    1.0
    >>> recall_at_k([3, 1], set(), 10)
    0.0
    """
    t = set(int(x) for x in targets)
    return float(_hits(ranking, t, k).sum() / len(t)) if t else 0.0


def hit_rate_at_k(ranking: Sequence[int], targets: Iterable[int], k: int) -> float:
    """HitRate@k = 1 if any target is in the top k, else 0.

    >>> hit_rate_at_k([3, 1, 2], {2}, 2), hit_rate_at_k([3, 1, 2], {2}, 3)
    (0.0, 1.0)
    """
    return float(_hits(ranking, targets, k).any())


def ndcg_at_k(ranking: Sequence[int], targets: Iterable[int], k: int) -> float:
    """NDCG@k = DCG@k / IDCG@k, DCG@k = Σ_{i=1..k} rel_i / log2(i + 1), IDCG over min(k, |T|) hits.

    >>> ndcg_at_k([7, 1], {1}, 10)                     # hit at rank 2: 1 / log2(3)
    0.6309297535714575
    >>> round(ndcg_at_k([1, 9, 2], {1, 2}, 3), 4)      # (1 + 1/log2(4)) / (1 + 1/log2(3))
    0.9197
    """
    t = set(int(x) for x in targets)
    if not t:
        return 0.0
    hits = _hits(ranking, t, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((hits * discounts[: hits.size]).sum())
    idcg = float(discounts[: min(k, len(t))].sum())
    return dcg / idcg


def ndcg_many(rankings: np.ndarray, targets: Sequence[np.ndarray], k: int) -> np.ndarray:
    """:func:`ndcg_at_k` of every row of ``rankings`` (rows, ≥k item indices, -1 pads) at once.

    >>> ndcg_many(np.array([[7, 1], [1, 9]]), [np.array([1]), np.array([1, 2])], 2).round(4).tolist()
    [0.6309, 0.6131]
    """
    rankings = np.asarray(rankings, dtype=np.int64)[:, :k]
    rows, width = rankings.shape
    sizes = np.array([np.unique(t).size for t in targets], dtype=np.int64)
    if rows == 0:
        return np.zeros(0)
    span = int(max(rankings.max(initial=0), max((int(np.max(t)) for t in targets if len(t)), default=0))) + 2
    wanted = np.concatenate([r * span + np.asarray(t, dtype=np.int64) for r, t in enumerate(targets)]) \
        if sizes.sum() else np.zeros(0, np.int64)
    keys = np.arange(rows)[:, None] * span + np.where(rankings >= 0, rankings, span - 1)
    hits = np.isin(keys, wanted)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(sizes, k)]
    return np.where(sizes > 0, (hits * discounts[:width]).sum(1) / np.where(ideal > 0, ideal, 1.0), 0.0)


def mrr_at_k(ranking: Sequence[int], targets: Iterable[int], k: int | None = None) -> float:
    """MRR@k = 1 / rank of the first target in the top k (0 if none); k=None looks at the whole list.

    >>> mrr_at_k([4, 5, 6], {5, 6}), mrr_at_k([4, 5, 6], {6}, k=2)
    (0.5, 0.0)
    """
    hits = _hits(ranking, targets, len(ranking) if k is None else k)
    first = np.flatnonzero(hits)
    return float(1.0 / (first[0] + 1)) if first.size else 0.0


def coverage_at_k(rankings: Iterable[Sequence[int]], n_items: int, k: int) -> float:
    """Catalogue coverage@k = |∪_u top-k(u)| / n_items.

    >>> coverage_at_k([[0, 1], [1, 2]], n_items=8, k=2)   # items 0, 1, 2 of 8
    0.375
    """
    seen: set[int] = set()
    for r in rankings:
        seen.update(int(i) for i in list(r)[:k] if i >= 0)
    return len(seen) / n_items if n_items else 0.0


def novelty_at_k(rankings: Iterable[Sequence[int]], item_popularity: np.ndarray, n_users: int, k: int) -> float:
    """Mean self-information of recommended items: mean over users and top-k items of
    -log2(p_i), p_i = (users who interacted with i in training + 1) / (n_users + 1).

    >>> novelty_at_k([[0], [1]], np.array([3, 0]), n_users=3, k=1)   # (-log2(1) - log2(1/4)) / 2
    1.0
    """
    pop = np.asarray(item_popularity, dtype=np.float64)
    info = -np.log2((pop + 1.0) / (n_users + 1.0))
    values = [info[[i for i in list(r)[:k] if i >= 0]] for r in rankings]
    flat = np.concatenate(values) if values else np.empty(0)
    return float(flat.mean()) if flat.size else 0.0


METRICS = {"recall": recall_at_k, "ndcg": ndcg_at_k, "hit": hit_rate_at_k, "mrr": mrr_at_k}


def auc(scores: Sequence[float], labels: Sequence[float]) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative), ties
    counting one half (the Mann-Whitney U statistic over n₊·n₋). NaN without both classes.

    >>> auc([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0])   # pairs (0.9>0.8, 0.9>0.1, 0.3<0.8, 0.3>0.1): 3/4
    0.75
    >>> auc([0.5, 0.5, 0.2], [1, 0, 0])           # (tie: 1/2, 0.5>0.2: 1) / 2
    0.75
    >>> auc([0.5, 0.2], [1, 1])
    nan
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties (1-based)
    first = np.concatenate([[True], sorted_s[1:] != sorted_s[:-1]])
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.concatenate([starts[1:], [s.size]])
    ranks[order] = ((starts + ends + 1) / 2.0)[group]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def per_user(rankings: Sequence[Sequence[int]], targets: Sequence[Iterable[int]], ks: Iterable[int]) -> dict[str, np.ndarray]:
    """Every metric at every k, one value per user: ``{"ndcg@10": array, ...}``."""
    out: dict[str, np.ndarray] = {}
    targets = [set(int(x) for x in t) for t in targets]
    for k in ks:
        for name, fn in METRICS.items():
            out[f"{name}@{k}"] = np.array([fn(r, t, k) for r, t in zip(rankings, targets)], dtype=np.float64)
    return out


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict[str, float]:
    """Mean of ``b - a`` over users, with a paired bootstrap interval (resampling users).

    >>> r = paired_bootstrap(np.zeros(50), np.ones(50))
    >>> r["diff"], r["low"], r["high"]
    (1.0, 1.0, 1.0)
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired_bootstrap: a and b must be 1-d arrays of one length > 0, got {a.shape} and {b.shape}")
    d = b - a
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for i in range(n_resamples):
        means[i] = d[rng.integers(0, d.size, d.size)].mean()
    alpha = (1 - level) / 2
    return {"diff": float(d.mean()), "low": float(np.quantile(means, alpha)),
            "high": float(np.quantile(means, 1 - alpha)), "n": int(d.size)}
