"""The repeat source: the user's own items as TIFU-KNN scores them (:mod:`recsys.baskets`) — recent
baskets weigh more, items bought again and again more still — blended with the baskets of the
users most like them.

It runs only where seen items are served (groceries, event logs: most purchases are of items the
user bought or looked at before); its neighbours' part tops a short history up with the items
such users buy. Fitted on the stored history (the neighbours); an artifact built before it learnt
anything serves the user's own items alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys import layout
from recsys.baskets import basket_counts, basket_vectors, neighbour_mean, unit_rows
from recsys.errors import ConfigError
from recsys.sources import Batch, CandidateSource, FitInfo, Space

from ..personal import top_n_sparse

VECTORS = "basket_vectors.npz"


@dataclass(frozen=True)
class RepeatConfig:
    """TIFU-KNN's knobs (defaults: its Instacart settings, chosen on the validation stage).

    ``group_size`` baskets per group; ``within_decay`` / ``group_decay``: the weight kept per
    basket / group of age; ``n_neighbors``: the similar users averaged; ``alpha``: the user's own
    share of the score (1: own items only); ``min_baskets``: a history of fewer baskets gets its
    own items only (the "users like them" of a one-visit history are just whoever touched the
    same item, which the ``similar`` source answers better).
    """

    group_size: int = 3
    within_decay: float = 0.9
    group_decay: float = 0.7
    n_neighbors: int = 100
    alpha: float = 0.9
    min_baskets: int = 2

    def __post_init__(self) -> None:
        if self.group_size < 1 or self.n_neighbors < 0:
            raise ConfigError(f"repeat group_size={self.group_size}, n_neighbors={self.n_neighbors}: give "
                              "group_size ≥ 1 and n_neighbors ≥ 0")
        for key in ("within_decay", "group_decay", "alpha"):
            v = getattr(self, key)
            if not 0.0 <= v <= 1.0 or (key != "alpha" and v == 0.0):
                raise ConfigError(f"repeat {key}={v}: give a value in (0, 1] (alpha: [0, 1])")


class RepeatSource(CandidateSource):
    name = "repeat"
    fusion_grid = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
    seen_only = True
    learns = True
    must_earn = True  # its decayed baskets are among what ``reorder`` learns from: it must show it adds
    Config = RepeatConfig

    def __init__(self, space: Space, config: RepeatConfig | None = None, device: str | None = None):
        super().__init__(space, config or RepeatConfig(), device)
        self.vectors: sp.csr_matrix | None = None  # stored users' basket vectors: the neighbours
        self.unit: sp.csr_matrix | None = None

    def vectors_of(self, events: pl.DataFrame, n_rows: int) -> sp.csr_matrix:
        c, s = self.config, self.space
        return basket_vectors(events, n_rows, s.n_items, s.weights, c.group_size, c.within_decay, c.group_decay)

    def fit(self, events: pl.DataFrame, parts: tuple[str, ...] = ()) -> RepeatSource:
        self.set_vectors(self.vectors_of(events, self.space.n_users))
        self.fit_info = FitInfo(tuple(parts), events.height)
        return self

    def set_vectors(self, vectors: sp.csr_matrix) -> None:
        self.vectors = vectors.tocsr().astype(np.float32)
        self.unit = unit_rows(self.vectors)

    def candidates(self, batch: Batch, n: int, include_seen: bool, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        own = batch.history.view("baskets", lambda h: self.vectors_of(h.events, h.n_rows))[batch.rows]
        scores = c.alpha * own
        baskets = batch.history.view("basket_counts", lambda h: basket_counts(h.events, h.n_rows))[batch.rows]
        blend = np.flatnonzero(baskets >= c.min_baskets)
        if self.vectors is not None and c.alpha < 1.0 and c.n_neighbors > 0 and blend.size:
            neighbours = (1.0 - c.alpha) * neighbour_mean(own[blend], self.vectors, self.unit, c.n_neighbors,
                                                          batch.users[blend])
            into_rows = sp.csr_matrix((np.ones(blend.size, dtype=neighbours.dtype), (blend, np.arange(blend.size))),
                                      shape=(len(batch), blend.size))
            scores = scores + into_rows @ neighbours
        return top_n_sparse(scores, n, None if include_seen else batch.seen(), allowed)

    def save(self, folder: Path) -> None:
        self.save_config(folder)
        if self.vectors is not None:
            sp.save_npz(folder / VECTORS, self.vectors, compressed=False)
        super().save(folder)

    @classmethod
    def load(cls, folder: Path | None, space: Space, **_) -> RepeatSource:
        config = cls.saved_config(folder)
        if config is None:
            return cls(space)  # built before the source learnt: the user's own items alone
        out = cls(space, config)
        if (folder / VECTORS).is_file():
            out.set_vectors(sp.load_npz(folder / VECTORS))  # numpy arrays only: scipy loads without pickle
        out.fit_info = FitInfo.read(folder / layout.FIT)
        return out

    def add_items(self, n: int) -> bool:
        if self.vectors is None:
            return False
        v = self.vectors
        self.set_vectors(sp.csr_matrix((v.data, v.indices, v.indptr), shape=(v.shape[0], v.shape[1] + n)))
        return True

    def forget(self, user: int) -> bool:
        if self.vectors is None:
            return False
        v = self.vectors.tolil()
        v.rows[user], v.data[user] = [], []
        self.set_vectors(v.tocsr())
        return True
