"""The two-tower source: the FAISS top-N of the user vector, computed from the history at query time."""

from __future__ import annotations

import numpy as np

from recsys.sources import Batch, CandidateSource, FitInfo, Space, empty_lists

from ..sequences import history_sequences


class TwoTowerSource(CandidateSource):
    """Items nearest the user vector in the index; seen items skipped unless they may be served.

    The model is trained by the build's two-tower stage (``recsys.pipeline.stages``), not by
    :meth:`fit`; its :class:`~recsys.sources.FitInfo` is the model's own.
    """

    name = "two_tower"
    learns = True
    external_fit = True

    def __init__(self, space: Space, model=None, index=None):
        super().__init__(space)
        self.model, self.index = model, index
        self.fit_info = getattr(model, "fit_info", FitInfo())

    @classmethod
    def load(cls, folder, space: Space, model=None, index=None, **_) -> TwoTowerSource | None:
        return cls(space, model, index) if model is not None and index is not None else None

    def user_vectors(self, batch: Batch) -> np.ndarray:
        return self.model.user_vectors(history_sequences(batch.history, self.model.cfg.n_gap_buckets), batch.rows)

    def candidates(self, batch: Batch, n: int, include_seen: bool, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        seen = batch.seen()
        vecs = self.user_vectors(batch)
        extra = 0 if include_seen else max((s.size for s in seen), default=0)
        ids, scores = self.index.search(vecs, min(n + extra, self.space.n_items))
        out_ids, out_scores = empty_lists(len(batch), n)
        for r in range(len(batch)):
            keep = ids[r] >= 0
            if not include_seen:
                keep &= ~np.isin(ids[r], seen[r])
            chosen = np.flatnonzero(keep)[:n]
            out_ids[r, :chosen.size], out_scores[r, :chosen.size] = ids[r, chosen], scores[r, chosen]
        return out_ids, out_scores
