"""The ALS source: implicit's AlternatingLeastSquares (:mod:`recsys.retrieval.als`), with users whose
history differs from what the factors were solved from folded in at query time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recsys import layout
from recsys.sources import Batch, CandidateSource, FitInfo, Space, empty_lists

from ..als import ALSCandidates, ALSConfig, confidence_matrix

COUNTS = "user_event_counts.npy"


def confidence(history):
    """The history's users × items confidence rows (cached on the history)."""
    s = history.space
    return history.view("confidence", lambda h: confidence_matrix(h.events, h.n_rows, s.n_items, s.weights,
                                                                  s.value_kind))


class ALSSource(CandidateSource):
    name = "als"
    fusion_grid = (0.0, 0.25, 0.5, 1.0, 2.0)
    learns = True
    Config = ALSConfig

    def __init__(self, space: Space, config: ALSConfig | None = None, device: str | None = "cpu"):
        super().__init__(space, config or ALSConfig(), device)
        use_gpu = None if device in (None, "auto") else device.startswith("cuda")
        self.model = ALSCandidates(self.config, use_gpu=use_gpu)
        self.counts = np.zeros(space.n_users, dtype=np.int64)  # events each user's factors were solved from

    def fit(self, events: pl.DataFrame, parts: tuple[str, ...] = ()) -> ALSSource:
        s = self.space
        self.model.fit(confidence_matrix(events, s.n_users, s.n_items, s.weights, s.value_kind))
        self.counts = np.bincount(events["user_idx"].to_numpy(), minlength=s.n_users).astype(np.int64)
        self.fit_info = FitInfo(tuple(parts), events.height)
        return self

    def candidates(self, batch: Batch, n: int, include_seen: bool, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        conf = confidence(batch.history)[batch.rows]
        users = batch.users
        known = users >= 0
        fresh = ~known | (batch.lengths() != self.counts[np.maximum(users, 0)])
        ids, scores = empty_lists(len(batch), n)
        for flag in (False, True):  # stored factors, then users folded in from their rows
            sel = np.flatnonzero((fresh == flag) & (known | flag))
            if sel.size:
                ids[sel], scores[sel] = self.model.recommend(users[sel], conf[sel], n, exclude_seen=not include_seen,
                                                             recalculate=flag)
        return ids, scores

    def save(self, folder: Path) -> None:
        self.model.save(folder)
        np.save(folder / COUNTS, self.counts, allow_pickle=False)
        super().save(folder)

    @classmethod
    def load(cls, folder: Path | None, space: Space, **_) -> ALSSource | None:
        if folder is None:
            return None
        model = ALSCandidates.load(folder)
        out = cls(space, model.cfg)
        out.model = model
        out.model.cpu_model()  # built once here, not lazily by two requests at once
        out.counts = np.load(folder / COUNTS, allow_pickle=False)
        out.fit_info = FitInfo.read(folder / layout.FIT)
        return out

    def add_items(self, n: int) -> bool:
        f = self.model.item_factors
        self.model.item_factors = np.concatenate([f, np.zeros((n, f.shape[1]), f.dtype)])
        return True

    def forget(self, user: int) -> bool:
        self.model.user_factors = self.model.user_factors.copy()
        self.model.user_factors[user] = 0.0
        self.counts = self.counts.copy()
        self.counts[user] = 0
        return True
