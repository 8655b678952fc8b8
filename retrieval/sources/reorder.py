"""The reorder source: the user's own items ranked by the chance they are in the next basket, from a
logistic model of repeat features (how often, how recently, how regularly the user had each item;
:mod:`recsys.reorder`) learnt on the stored history, cut before each user's last baskets.

Where ``repeat`` (TIFU-KNN) weighs baskets by fixed decays and tops a short history up with similar
users' items, this source learns from the data how much each of those signals is worth, and
proposes the user's own items only. It runs only where seen items are served. Before it has learnt
(no user with enough baskets, or never a repeat to learn from) it ranks by ``decay_7``, the
items' baskets decayed by 0.7 per basket of age.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.errors import ConfigError
from recsys.reorder import FEATURES, RepeatModel, basket_rows, repeat_features, training_rows
from recsys.sources import Batch, CandidateSource, FitInfo, Space

from ..personal import top_n_sparse

MODEL = "repeat_model.json"
POPULARITY = "basket_popularity.npy"


@dataclass(frozen=True)
class ReorderConfig:
    """``max_back``: the cuts per user (before each of their last ``max_back`` baskets);
    ``min_history``: the baskets a cut keeps before it at least; ``l2``: the model's penalty;
    ``max_rows``: the most training rows (item × cut), which bounds the fit's memory (about
    1 kB a row)."""

    max_back: int = 8
    min_history: int = 2
    l2: float = 1.0
    max_rows: int = 1_000_000

    def __post_init__(self) -> None:
        if self.max_back < 1 or self.min_history < 1 or self.l2 < 0 or self.max_rows < 1:
            raise ConfigError(f"reorder max_back={self.max_back}, min_history={self.min_history}, l2={self.l2}, "
                              f"max_rows={self.max_rows}: give max_back ≥ 1, min_history ≥ 1, l2 ≥ 0 and max_rows ≥ 1")


class ReorderSource(CandidateSource):
    name = "reorder"
    fusion_grid = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
    seen_only = True
    learns = True
    Config = ReorderConfig

    def __init__(self, space: Space, config: ReorderConfig | None = None, device: str | None = None):
        super().__init__(space, config or ReorderConfig(), device)
        self.model: RepeatModel | None = None
        self.popularity = np.zeros(space.n_items, dtype=np.float64)  # baskets holding each item

    def fit(self, events: pl.DataFrame, parts: tuple[str, ...] = ()) -> ReorderSource:
        c = self.config
        rows = basket_rows(events) if events.height else None
        self.popularity = np.zeros(self.space.n_items, dtype=np.float64)
        self.model = None
        if rows is not None:
            self.popularity = np.bincount(rows["item_idx"].to_numpy(), minlength=self.space.n_items).astype(np.float64)
            x, y = training_rows(rows, self.popularity, c.max_back, c.min_history, c.max_rows)
            self.model = RepeatModel.fit(x, y, c.l2)
        self.fit_info = FitInfo(tuple(parts), events.height)
        return self

    def scores_of(self, features: pl.DataFrame) -> np.ndarray:
        """The source's score of each row of :func:`~recsys.reorder.repeat_features`."""
        if self.model is None:
            return features["decay_7"].to_numpy().astype(np.float64)
        return self.model.predict(features.select(FEATURES).to_numpy().astype(np.float64))

    def candidates(self, batch: Batch, n: int, include_seen: bool, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        scores = batch.history.view("reorder_scores", lambda h: self.score_matrix(h.events, h.n_rows))
        return top_n_sparse(scores[batch.rows], n, None if include_seen else batch.seen(), allowed)

    def score_matrix(self, events: pl.DataFrame, n_rows: int) -> sp.csr_matrix:
        """Rows (``user_idx``) × items: the source's score of every item in ``events``' histories."""
        if events.height == 0:
            return sp.csr_matrix((n_rows, self.space.n_items), dtype=np.float64)
        feats = repeat_features(basket_rows(events), self.popularity)
        return sp.csr_matrix((self.scores_of(feats), (feats["user_idx"].to_numpy(), feats["item_idx"].to_numpy())),
                             shape=(n_rows, self.space.n_items))

    def save(self, folder: Path) -> None:
        self.save_config(folder)
        np.save(folder / POPULARITY, self.popularity, allow_pickle=False)
        if self.model is not None:
            self.model.save(folder / MODEL)
        super().save(folder)

    @classmethod
    def load(cls, folder: Path | None, space: Space, **_) -> ReorderSource | None:
        out = super().load(folder, space)
        if out is not None:
            out.popularity = np.load(folder / POPULARITY, allow_pickle=False)
            out.model = RepeatModel.load(folder / MODEL) if (folder / MODEL).is_file() else None
        return out

    def add_items(self, n: int) -> bool:
        self.popularity = np.concatenate([self.popularity, np.zeros(n, dtype=np.float64)])
        return True
