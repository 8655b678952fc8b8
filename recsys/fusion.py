"""Candidate fusion: the union of several ranked lists, de-duplicated, with a fused score and the
provenance of every candidate (which sources proposed it, at what rank and score); and the
features of each fused candidate that a reranker reads.

Reciprocal-rank fusion (the default; Cormack et al., 2009) scores item i for one user as

    RRF(i) = Σ_s  w_s / (k + rank_s(i))        over the sources s that proposed i

so an item proposed by several sources rises, and no source's score scale matters. The
alternative ``method="score"`` sums each source's scores after min-max scaling them per user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

METHODS = ("rrf", "score")
SOURCE_FEATURES = ("inv_rank", "score", "present")
EXTRA_FEATURES = ("fused", "log_popularity", "seen", "cooc_score", "cooc_inv_rank")


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
    return Union(lists, method, k).candidates(weights, n)


class Union:
    """The union of several sources' lists for a batch of users, each (user, item) pair once with its
    rank and score in every source: fused under any weights by :meth:`candidates`, or, to compare
    many weightings of the same lists (fusion tuning), only each user's top ``k`` by :meth:`top`.

    The order is the fused score, best first; ties go to the best rank in any source, then the
    smaller item id.
    """

    def __init__(self, lists: Mapping[str, tuple[np.ndarray, np.ndarray]], method: str = "rrf", k: int = 60):
        if method not in METHODS:
            raise ConfigError(f"fusion method {method!r}: use one of {', '.join(METHODS)}")
        if not lists:
            raise ConfigError("fusion: no candidate source given")
        self.names = names = tuple(lists)
        self.n_users = n_users = next(iter(lists.values()))[0].shape[0]
        ids_all, unit_all, src_all, rank_all, score_all = [], [], [], [], []
        for s, name in enumerate(names):
            ids, scores = (np.asarray(x) for x in lists[name])
            if ids.shape[0] != n_users or ids.shape != scores.shape:
                raise ConfigError(f"fusion: source {name!r} has ids {ids.shape} and scores {scores.shape}; "
                                  f"both must be ({n_users}, n)")
            rank = np.broadcast_to(np.arange(1, ids.shape[1] + 1), ids.shape)
            valid = ids >= 0
            if method == "rrf":
                unit = 1.0 / (k + rank)
            else:  # min-max scaled per user
                sc = np.where(valid, scores, np.nan).astype(np.float64)
                lo, hi = np.nanmin(np.where(valid, sc, np.inf), axis=1, keepdims=True), np.nanmax(
                    np.where(valid, sc, -np.inf), axis=1, keepdims=True)
                unit = np.where(hi > lo, (sc - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
            rows = np.broadcast_to(np.arange(n_users)[:, None], ids.shape)
            ids_all.append(np.stack([rows[valid], ids[valid]], axis=1))
            unit_all.append(np.broadcast_to(unit, ids.shape)[valid])
            src_all.append(np.full(int(valid.sum()), s))
            rank_all.append(rank[valid])
            score_all.append(scores[valid])
        pairs = np.concatenate(ids_all) if ids_all else np.zeros((0, 2), np.int64)
        self.unit = np.concatenate(unit_all) if unit_all else np.zeros(0)
        self.src = np.concatenate(src_all) if src_all else np.zeros(0, np.int64)
        if pairs.shape[0] == 0:
            self.uniq = np.zeros((0, 2), np.int64)
            self.inverse = np.zeros(0, np.int64)
        else:  # one int64 key per (user row, item): a 1-d unique is far faster than one over rows of pairs
            width = int(pairs[:, 1].max()) + 1
            keys, inverse = np.unique(pairs[:, 0] * width + pairs[:, 1], return_inverse=True)
            self.inverse = inverse.reshape(-1)
            self.uniq = np.stack([keys // width, keys % width], axis=1)  # sorted by user, then item
        self.ranks = np.zeros((len(self.uniq), len(names)), dtype=np.int32)
        self.sscores = np.full((len(self.uniq), len(names)), np.nan, dtype=np.float32)
        if pairs.shape[0]:
            self.ranks[self.inverse, self.src] = np.concatenate(rank_all)
            self.sscores[self.inverse, self.src] = np.concatenate(score_all)
        self.best_rank = np.where(self.ranks > 0, self.ranks, np.iinfo(np.int32).max).min(axis=1)
        row = self.uniq[:, 0]
        self.first = np.searchsorted(row, np.arange(n_users))
        self.pos = np.arange(len(row)) - self.first[row]  # place of each pair within its user's union
        self._dense: np.ndarray | None = None

    def fused(self, weights: Mapping[str, float] | None = None) -> np.ndarray:
        """Each pair's fused score under ``weights`` (absent sources: 1)."""
        weights = dict(weights or {})
        unknown = set(weights) - set(self.names)
        if unknown:
            raise ConfigError(f"fusion weights name unknown sources {sorted(unknown)}; the sources are "
                              f"{sorted(self.names)}")
        w = np.array([float(weights.get(name, 1.0)) for name in self.names])
        return np.bincount(self.inverse, weights=self.unit * w[self.src], minlength=len(self.uniq))

    def _place(self, order: np.ndarray, n: int):
        row = self.uniq[order, 0]
        pos = np.arange(order.size) - np.searchsorted(row, np.arange(self.n_users))[row]
        keep = pos < n
        return order[keep], row[keep], pos[keep]

    def candidates(self, weights: Mapping[str, float] | None = None, n: int = 100) -> Candidates:
        """The top ``n`` of every user under ``weights``, with their provenance."""
        fused = self.fused(weights)
        items_out = np.full((self.n_users, n), -1, dtype=np.int64)
        fused_out = np.full((self.n_users, n), -np.inf, dtype=np.float32)
        ranks_out = np.zeros((self.n_users, n, len(self.names)), dtype=np.int32)
        scores_out = np.full((self.n_users, n, len(self.names)), np.nan, dtype=np.float32)
        if len(self.uniq):
            # lexsort is stable and the pairs are in item order within a user: the last tie-break
            o, r, p = self._place(np.lexsort((self.best_rank, -fused, self.uniq[:, 0])), n)
            items_out[r, p] = self.uniq[o, 1]
            fused_out[r, p] = fused[o]
            ranks_out[r, p] = self.ranks[o]
            scores_out[r, p] = self.sscores[o]
        return Candidates(items_out, fused_out, self.names, ranks_out, scores_out)

    def top(self, weights: Mapping[str, float] | None = None, k: int = 10) -> np.ndarray:
        """(users, k) the items :meth:`candidates` would rank first, -1 padded; each user's k-th best
        fused score is found by a partial sort, and only the pairs at or above it are sorted.

        >>> u = Union({"a": (np.array([[5, 7, 3]]), np.ones((1, 3))), "b": (np.array([[3, 9]]), np.ones((1, 2)))}, k=0)
        >>> u.top({"b": 0.1}, k=2).tolist(), u.candidates({"b": 0.1}, n=2).items.tolist()  # 3: 1/3 + 0.1/1
        ([[5, 7]], [[5, 7]])
        """
        fused = self.fused(weights)
        if self._dense is None:
            self._dense = np.full((self.n_users, int(self.pos.max(initial=-1)) + 1), -np.inf)
        dense = self._dense
        dense[self.uniq[:, 0], self.pos] = fused
        width = dense.shape[1]
        if width > k:
            kth = np.partition(dense, width - k, axis=1)[:, width - k]
        else:
            kth = np.full(self.n_users, -np.inf)
        pick = np.flatnonzero(fused >= kth[self.uniq[:, 0]])  # ties at the k-th score are all kept
        order = pick[np.lexsort((self.best_rank[pick], -fused[pick], self.uniq[pick, 0]))]
        o, r, p = self._place(order, k)
        out = np.full((self.n_users, k), -1, dtype=np.int64)
        out[r, p] = self.uniq[o, 1]
        return out


def feature_names(sources: Sequence[str]) -> tuple[str, ...]:
    """The columns of :func:`candidate_features` for these sources, in order.

    >>> feature_names(["a"])
    ('a_inv_rank', 'a_score', 'a_present', 'fused', 'log_popularity', 'seen', 'cooc_score', 'cooc_inv_rank')
    """
    return tuple(f"{s}_{kind}" for s in sources for kind in SOURCE_FEATURES) + EXTRA_FEATURES


def candidate_features(candidates: Candidates, sources: Sequence[str], popularity: np.ndarray,
                       seen: Sequence[np.ndarray], cooc: np.ndarray | None = None,
                       count_scores: Sequence[str] = ()) -> np.ndarray:
    """(users, n, len(feature_names(sources))) float32 features of fused candidates.

    Per source (absent sources give zeros): its reciprocal rank, its score (log(1 + score) for the
    ``count_scores`` sources) and whether it proposed the candidate; then the fused score, log
    popularity, whether the user has interacted with the item, and, given the candidates' sequential
    co-occurrence scores (:mod:`recsys.cooccurrence`), log(1 + 100·score) and the reciprocal of the
    candidate's rank by it in the list.

    >>> c = fuse({"two_tower": (np.array([[4, 2]]), np.array([[0.5, 0.25]]))}, n=2, k=0)
    >>> f = candidate_features(c, ["two_tower", "als"], np.array([0, 0, 3.0, 0, 1.0]), [np.array([2])])
    >>> row = dict(zip(feature_names(["two_tower", "als"]), f[0, 1].tolist()))
    >>> row["two_tower_inv_rank"], row["als_present"], row["seen"], float(f[0, 0, -1])
    (0.5, 0.0, 1.0, 0.0)
    """
    users, n = candidates.items.shape
    names = feature_names(sources)
    out = np.zeros((users, n, len(names)), dtype=np.float32)
    valid = candidates.items >= 0
    items = np.maximum(candidates.items, 0)
    for s, name in enumerate(sources):
        if name not in candidates.sources:
            continue
        j = candidates.sources.index(name)
        rank = candidates.ranks[:, :, j]
        present = rank > 0
        score = np.nan_to_num(candidates.source_scores[:, :, j], nan=0.0, posinf=0.0, neginf=0.0)
        if name in count_scores:
            score = np.log1p(np.maximum(score, 0.0))
        out[:, :, 3 * s] = np.where(present, 1.0 / np.maximum(rank, 1), 0.0)
        out[:, :, 3 * s + 1] = np.where(present, score, 0.0)
        out[:, :, 3 * s + 2] = present
    base = 3 * len(sources)
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
