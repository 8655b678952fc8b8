"""The similar-items source: the items nearest (cosine of the two-tower item vectors, through the FAISS
index) to the user's latest items, as ``/similar`` finds them. A history of one or two events says
little to a sequence model; what the user just looked at says a lot about what is like it."""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys.sources import Batch, CandidateSource, Space, empty_lists


class SimilarSource(CandidateSource):
    """For each of the user's ``recent`` latest distinct items, its nearest items; an item's score is
    its best ``similarity · decay ** age`` over them (age 0: the latest item)."""

    name = "similar"
    fusion_grid = (0.0, 0.5, 1.0, 2.0)
    recent = 3
    decay = 0.8

    def __init__(self, space: Space, index=None, item_vectors: np.ndarray | None = None):
        super().__init__(space)
        self.index, self.item_vectors = index, item_vectors

    @classmethod
    def load(cls, folder, space: Space, index=None, item_vectors=None, **_) -> SimilarSource | None:
        return cls(space, index, item_vectors) if index is not None and item_vectors is not None else None

    def latest(self, batch: Batch) -> list[np.ndarray]:
        """Each row's ``recent`` latest distinct items, newest first."""
        rows = pl.Series(np.unique(batch.rows)).implode()
        ev = (batch.history.events.filter(pl.col("user_idx").is_in(rows)).sort("user_idx", "timestamp", maintain_order=True)
              .reverse().unique(["user_idx", "item_idx"], keep="first", maintain_order=True)
              .group_by("user_idx", maintain_order=True).agg(pl.col("item_idx").head(self.recent)))
        by_row = dict(zip(ev["user_idx"].to_list(), ev["item_idx"].to_list()))
        return [np.asarray(by_row.get(int(r), []), dtype=np.int64) for r in batch.rows]

    def candidates(self, batch: Batch, n: int, include_seen: bool, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = empty_lists(len(batch), n)
        latest, seen = self.latest(batch), batch.seen()
        queries = np.concatenate([q for q in latest if q.size]) if any(q.size for q in latest) else None
        if queries is None:
            return ids, scores
        extra = 0 if include_seen else max((s.size for s in seen), default=0)
        found, sims = self.index.search(self.item_vectors[queries], min(n + extra + 1, self.space.n_items))
        at = 0
        for r, q in enumerate(latest):
            best: dict[int, float] = {}
            for age in range(q.size):
                for j, s in zip(found[at + age], sims[at + age]):
                    if j >= 0 and j != q[age] and (include_seen or j not in seen[r]):
                        best[int(j)] = max(best.get(int(j), -np.inf), float(s) * self.decay ** age)
            at += q.size
            top = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
            for k, (j, s) in enumerate(top):
                ids[r, k], scores[r, k] = j, s
        return ids, scores
