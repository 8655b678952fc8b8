"""Candidate fusion: the union of several ranked lists, de-duplicated, with a fused score and the
provenance of every candidate (which sources proposed it, at what rank and score).

Reciprocal-rank fusion (the default; Cormack et al., 2009) scores item i for one user as

    RRF(i) = Σ_s  w_s / (k + rank_s(i))        over the sources s that proposed i

so an item proposed by several sources rises, and no source's score scale matters. The
alternative ``method="score"`` sums each source's scores after min-max scaling them per user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from recsys.errors import ConfigError

METHODS = ("rrf", "score")


@dataclass
class Candidates:
    """Fused candidates for a batch of users, best first; ``-1`` pads short rows.

    ``ranks[u, j, s]`` is the 1-based rank of candidate j in source s's list (0: not proposed by
    s) and ``source_scores[u, j, s]`` its score there (NaN: not proposed).
    """

    items: np.ndarray  # (users, n) int64 internal ids
    scores: np.ndarray  # (users, n) float32 fused scores
    sources: tuple[str, ...]
    ranks: np.ndarray  # (users, n, sources) int32
    source_scores: np.ndarray  # (users, n, sources) float32

    def provenance(self, row: int, col: int) -> dict[str, dict]:
        """``{source: {"rank": r, "score": s}}`` for the sources that proposed this candidate."""
        return {name: {"rank": int(self.ranks[row, col, s]), "score": round(float(self.source_scores[row, col, s]), 6)}
                for s, name in enumerate(self.sources) if self.ranks[row, col, s] > 0}


def fuse(lists: Mapping[str, tuple[np.ndarray, np.ndarray]], n: int = 100, method: str = "rrf",
         weights: Mapping[str, float] | None = None, k: int = 60) -> Candidates:
    """Fuse ``{source: (ids, scores)}`` (each (users, n_s), best first, -1 padded) into the top ``n``.

    >>> a = (np.array([[5, 7]]), np.array([[0.9, 0.8]]))
    >>> b = (np.array([[7, 3]]), np.array([[2.0, 1.0]]))
    >>> c = fuse({"a": a, "b": b}, n=3, k=0)
    >>> c.items.tolist(), [round(float(x), 4) for x in c.scores[0]]  # 7: 1/2 + 1/1; 5: 1/1; 3: 1/2
    ([[7, 5, 3]], [1.5, 1.0, 0.5])
    >>> c.provenance(0, 0)
    {'a': {'rank': 2, 'score': 0.8}, 'b': {'rank': 1, 'score': 2.0}}
    """
    if method not in METHODS:
        raise ConfigError(f"fusion method {method!r}: use one of {', '.join(METHODS)}")
    if not lists:
        raise ConfigError("fusion: no candidate source given")
    weights = dict(weights or {})
    unknown = set(weights) - set(lists)
    if unknown:
        raise ConfigError(f"fusion weights name unknown sources {sorted(unknown)}; the sources are {sorted(lists)}")
    names = tuple(lists)
    n_users = next(iter(lists.values()))[0].shape[0]
    ids_all, contrib_all, src_all, rank_all, score_all = [], [], [], [], []
    for s, name in enumerate(names):
        ids, scores = (np.asarray(x) for x in lists[name])
        if ids.shape[0] != n_users or ids.shape != scores.shape:
            raise ConfigError(f"fusion: source {name!r} has ids {ids.shape} and scores {scores.shape}; "
                              f"both must be ({n_users}, n)")
        rank = np.broadcast_to(np.arange(1, ids.shape[1] + 1), ids.shape)
        valid = ids >= 0
        w = float(weights.get(name, 1.0))
        if method == "rrf":
            contrib = w / (k + rank)
        else:
            sc = np.where(valid, scores, np.nan).astype(np.float64)
            lo, hi = np.nanmin(np.where(valid, sc, np.inf), axis=1, keepdims=True), np.nanmax(
                np.where(valid, sc, -np.inf), axis=1, keepdims=True)
            contrib = w * np.where(hi > lo, (sc - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
        rows = np.broadcast_to(np.arange(n_users)[:, None], ids.shape)
        ids_all.append(np.stack([rows[valid], ids[valid]], axis=1))
        contrib_all.append(contrib[valid])
        src_all.append(np.full(int(valid.sum()), s))
        rank_all.append(rank[valid])
        score_all.append(scores[valid])
    pairs = np.concatenate(ids_all) if ids_all else np.zeros((0, 2), np.int64)
    items_out = np.full((n_users, n), -1, dtype=np.int64)
    fused_out = np.full((n_users, n), -np.inf, dtype=np.float32)
    ranks_out = np.zeros((n_users, n, len(names)), dtype=np.int32)
    scores_out = np.full((n_users, n, len(names)), np.nan, dtype=np.float32)
    if pairs.shape[0] == 0:
        return Candidates(items_out, fused_out, names, ranks_out, scores_out)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    fused = np.bincount(inverse, weights=np.concatenate(contrib_all), minlength=len(uniq))
    ranks = np.zeros((len(uniq), len(names)), dtype=np.int32)
    sscores = np.full((len(uniq), len(names)), np.nan, dtype=np.float32)
    src = np.concatenate(src_all)
    ranks[inverse, src] = np.concatenate(rank_all)
    sscores[inverse, src] = np.concatenate(score_all)
    # best first within each user; ties by the best rank in any source, then by item id
    best_rank = np.where(ranks > 0, ranks, np.iinfo(np.int32).max).min(axis=1)
    order = np.lexsort((uniq[:, 1], best_rank, -fused, uniq[:, 0]))
    row = uniq[order, 0]
    first = np.searchsorted(row, np.arange(n_users))
    pos = np.arange(order.size) - first[row]
    keep = pos < n
    o, r, p = order[keep], row[keep], pos[keep]
    items_out[r, p] = uniq[o, 1]
    fused_out[r, p] = fused[o]
    ranks_out[r, p] = ranks[o]
    scores_out[r, p] = sscores[o]
    return Candidates(items_out, fused_out, names, ranks_out, scores_out)
