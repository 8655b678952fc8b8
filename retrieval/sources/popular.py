"""The popular source: time-decayed popularity (:func:`~recsys.retrieval.personal.popularity_scores`) for
users nobody knows, restricted to the items a query's context allows."""

from __future__ import annotations

import numpy as np

from recsys.sources import Batch, CandidateSource

from ..personal import top_n


class PopularSource(CandidateSource):
    name = "popular"
    cold_only = True
    count_scores = True

    def candidates(self, batch: Batch, n: int, include_seen: bool, allowed=None):
        pop = batch.history.popular
        pop = np.where(allowed, pop, 0.0) if allowed is not None else pop
        ids, scores = top_n(pop[None, :], n)
        return np.repeat(ids, len(batch), axis=0), np.repeat(scores, len(batch), axis=0)
