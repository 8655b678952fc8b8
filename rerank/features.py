"""What the reranker reads besides text: the candidate's retrieval features and the user context.

- :func:`candidate_features`: for each candidate, per source its reciprocal rank, score and
  whether it proposed the candidate; the fused score; log popularity; whether the user has
  already interacted with it; and, given its sequential co-occurrence scores
  (:mod:`recsys.retrieval.cooccurrence`), log(1 + 100·score) and its reciprocal rank in the list.
- :func:`context_text`: the user's most recent items with their event types, newest first
  ("bought: Toy Story | 1995; viewed: Heat | 1995"); the tokenizer truncates it to the budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

SOURCES = ("two_tower", "als", "repeat", "popular")
FEATURES = tuple([f"{s}_{kind}" for s in SOURCES for kind in ("inv_rank", "score", "present")]
                 + ["fused", "log_popularity", "seen", "cooc_score", "cooc_inv_rank"])
VERB = {"view": "viewed", "click": "clicked", "cart": "carted", "purchase": "bought", "rating": "rated"}


def candidate_features(candidates, popularity: np.ndarray, seen: Sequence[np.ndarray],
                       cooc: np.ndarray | None = None) -> np.ndarray:
    """(users, n, len(FEATURES)) float32 features of :class:`~recsys.retrieval.fusion.Candidates`.

    >>> from recsys.retrieval.fusion import fuse
    >>> c = fuse({"two_tower": (np.array([[4, 2]]), np.array([[0.5, 0.25]]))}, n=2, k=0)
    >>> f = candidate_features(c, np.array([0, 0, 3.0, 0, 1.0]), [np.array([2])])
    >>> row = dict(zip(FEATURES, f[0, 1].tolist()))
    >>> row["two_tower_inv_rank"], row["seen"], float(f[0, 0, -1])
    (0.5, 1.0, 0.0)
    """
    users, n = candidates.items.shape
    out = np.zeros((users, n, len(FEATURES)), dtype=np.float32)
    valid = candidates.items >= 0
    items = np.maximum(candidates.items, 0)
    for s, name in enumerate(SOURCES):
        if name not in candidates.sources:
            continue
        j = candidates.sources.index(name)
        rank = candidates.ranks[:, :, j]
        present = rank > 0
        score = np.nan_to_num(candidates.source_scores[:, :, j], nan=0.0, posinf=0.0, neginf=0.0)
        if name in ("repeat", "popular"):
            score = np.log1p(np.maximum(score, 0.0))
        out[:, :, 3 * s] = np.where(present, 1.0 / np.maximum(rank, 1), 0.0)
        out[:, :, 3 * s + 1] = np.where(present, score, 0.0)
        out[:, :, 3 * s + 2] = present
    base = 3 * len(SOURCES)
    out[:, :, base] = np.where(valid, np.nan_to_num(candidates.scores, neginf=0.0), 0.0)
    out[:, :, base + 1] = np.log1p(np.maximum(popularity[items], 0.0))
    for r in range(users):
        out[r, :, base + 2] = np.isin(candidates.items[r], seen[r])
    if cooc is not None:
        cooc = np.where(valid, cooc, -np.inf)
        rank = (-cooc).argsort(1, kind="stable").argsort(1) + 1
        out[:, :, base + 3] = np.log1p(100.0 * np.maximum(np.nan_to_num(cooc, neginf=0.0), 0.0))
        out[:, :, base + 4] = np.where(cooc > 0, 1.0 / rank, 0.0)
    out[~valid] = 0.0
    return out


def context_text(titles: Sequence[str], events: Sequence[str], max_items: int = 10) -> str:
    """The newest ``max_items`` of a user's (title, event) history, given oldest first.

    A run of events on one item (viewed, then carted, then bought) says it once, with the newest.

    >>> context_text(["Heat", "Toy Story", "Toy Story", "Heat"], ["view", "cart", "purchase", "rating"])
    'rated: Heat; bought: Toy Story; viewed: Heat'
    """
    parts: list[str] = []
    previous = None
    for t, e in zip(reversed(list(titles)), reversed(list(events))):
        if t and t != previous:
            parts.append(f"{VERB.get(e, e)}: {t}")
        previous = t
        if len(parts) == max_items:
            break
    return "; ".join(parts)


def cooccurrence_scores(rec, profiles, items: np.ndarray) -> np.ndarray:
    """(rows, n) co-occurrence scores of ``items`` given each profile row's last 5 items, from
    ``rec``'s transitions (see :meth:`~recsys.retrieval.recommender.Recommender.cooccurrence`)."""
    from recsys.retrieval.cooccurrence import recent_items, scores_of

    mine = pl.Series(np.unique(profiles.rows).astype(np.int64)).implode()
    ev = profiles.events.filter(pl.col("user_idx").is_in(mine)).sort("user_idx", "timestamp", maintain_order=True)
    recent = recent_items(ev)
    return scores_of(rec.cooccurrence(), [recent.get(int(k), []) for k in profiles.rows], items)
