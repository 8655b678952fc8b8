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
        sizes = np.array([q.size for q in latest])
        if not sizes.any():
            return ids, scores
        queries = np.concatenate(latest)
        extra = 0 if include_seen else int(max((s.size for s in seen), default=0))
        found, sims = self.index.search(self.item_vectors[queries], min(n + extra + 1, self.space.n_items))
        ages = np.concatenate([np.arange(k) for k in sizes])
        sims = sims * (self.decay ** ages)[:, None]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        for r in np.flatnonzero(sizes):
            j = found[starts[r]:starts[r + 1]].ravel()
            s = sims[starts[r]:starts[r + 1]].ravel()
            keep = (j >= 0) & ~np.isin(j, latest[r] if include_seen else seen[r])
            j, s = j[keep], s[keep]
            order = np.lexsort((j, -s))  # best score first; an item's first place is its best
            j, s = j[order], s[order]
            first = np.unique(j, return_index=True)[1]
            best = np.sort(first)[:n]  # by score, each item once
            ids[r, :best.size], scores[r, :best.size] = j[best], s[best]
        return ids, scores
