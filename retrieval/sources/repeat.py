"""The repeat source: the user's own items, recency-decayed per visit (:func:`~recsys.retrieval.personal.repeat_scores`).

It proposes only items the user has interacted with, so it runs only where seen items are served
(groceries: most purchases are repeats)."""

from __future__ import annotations

from recsys.sources import Batch, CandidateSource

from ..personal import repeat_scores, top_n


class RepeatSource(CandidateSource):
    name = "repeat"
    fusion_grid = (0.5, 1.0, 2.0, 4.0, 8.0)
    seen_only = True
    count_scores = True

    def candidates(self, batch: Batch, n: int, include_seen: bool, allowed=None):
        s = self.space
        mat = batch.history.view("repeat", lambda h: repeat_scores(h.events, h.n_rows, s.n_items, s.weights))
        return top_n(mat[batch.rows].toarray(), n)
