"""The reorder source: the user's own items ranked by the chance they are in the next basket, from
gradient-boosted trees (or a logistic model) of repeat features (how often, how recently, how
regularly the user had each item; how often every user buys it, and its catalogue group, again in
the next basket; :mod:`recsys.reorder`) learnt on the stored history, cut before each user's last
baskets. The catalogue group is the space's ``item_groups`` (:func:`recsys.catalog.item_groups`).

Where ``repeat`` (TIFU-KNN) weighs baskets by fixed decays and tops a short history up with similar
users' items, this source learns from the data how much each of those signals is worth, and
proposes the user's own items only. It reads the request's time (``Batch.at``): the days since the
user's last basket and since the item's, against the item's usual interval; without it, the user is
taken to return after their usual interval. It runs only where seen items are served. Before it has
learnt (no user with enough baskets, or never a repeat to learn from) it ranks by ``decay_7``, the
items' baskets decayed by 0.7 per basket of age.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.errors import ConfigError
from recsys.reorder import (
    FEATURES,
    HISTORY_FEATURES,
    TIMES,
    TREE_FEATURES,
    RepeatModel,
    RepeatTrees,
    basket_rows,
    history_features,
    next_rates,
    time_features,
    training_rows,
)
from recsys.sources import Batch, CandidateSource, FitInfo, Space

from ..personal import top_n_sparse

MODEL = "repeat_model.json"
TREES = "repeat_trees.json"
POPULARITY = "basket_popularity.npy"
RATES = "repeat_rates.npy"
MODELS = ("trees", "logistic")


@dataclass(frozen=True)
class OwnItems:
    """Every (user, item) of a history, sorted by user then item: ``users``, ``items``, their
    :data:`~recsys.reorder.HISTORY_FEATURES` ``x`` and :data:`~recsys.reorder.TIMES` ``times``,
    and ``starts`` (row r's pairs are ``starts[r]`` to ``starts[r + 1]``)."""

    users: np.ndarray
    items: np.ndarray
    x: np.ndarray
    times: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, events: pl.DataFrame, n_rows: int, popularity: np.ndarray) -> OwnItems:
        if events.height == 0:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, len(HISTORY_FEATURES))),
                       np.zeros((0, len(TIMES))), np.zeros(n_rows + 1, np.int64))
        f = history_features(basket_rows(events), popularity)
        users = f["user_idx"].to_numpy().astype(np.int64)
        return cls(users, f["item_idx"].to_numpy().astype(np.int64),
                   f.select(HISTORY_FEATURES).to_numpy().astype(np.float64), f.select(TIMES).to_numpy().astype(np.float64),
                   np.searchsorted(users, np.arange(n_rows + 1)))

    def rows_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indices of the pairs of ``rows``, in their order; the position in ``rows`` each belongs to)."""
        lo, hi = self.starts[rows], self.starts[rows + 1]
        counts = hi - lo
        row = np.repeat(np.arange(rows.size), counts)
        return np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum()), row


@dataclass(frozen=True)
class ReorderConfig:
    """``max_back``: the cuts per user (before each of their last ``max_back`` baskets);
    ``min_history``: the baskets a cut keeps before it at least; ``max_rows``: the most training
    rows (item × cut), which bounds the fit's memory (about 1 kB a row); ``model``: ``"trees"``
    (:class:`~recsys.reorder.RepeatTrees`, ``rounds`` trees of ``leaves`` leaves) or
    ``"logistic"`` (:class:`~recsys.reorder.RepeatModel`, L2 penalty ``l2``; the model of
    artifacts built before the trees)."""

    max_back: int = 8
    min_history: int = 2
    l2: float = 1.0
    max_rows: int = 1_000_000
    model: str = "trees"
    rounds: int = 300
    leaves: int = 15

    def __post_init__(self) -> None:
        if self.max_back < 1 or self.min_history < 1 or self.l2 < 0 or self.max_rows < 1:
            raise ConfigError(f"reorder max_back={self.max_back}, min_history={self.min_history}, l2={self.l2}, "
                              f"max_rows={self.max_rows}: give max_back ≥ 1, min_history ≥ 1, l2 ≥ 0 and max_rows ≥ 1")
        if self.model not in MODELS or self.rounds < 1 or self.leaves < 2:
            raise ConfigError(f"reorder model={self.model!r}, rounds={self.rounds}, leaves={self.leaves}: give model "
                              f"{' or '.join(map(repr, MODELS))}, rounds ≥ 1 and leaves ≥ 2")


class ReorderSource(CandidateSource):
    name = "reorder"
    fusion_grid = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
    seen_only = True
    learns = True
    Config = ReorderConfig

    def __init__(self, space: Space, config: ReorderConfig | None = None, device: str | None = None):
        super().__init__(space, config or ReorderConfig(), device)
        self.model: RepeatTrees | RepeatModel | None = None
        self.popularity = np.zeros(space.n_items, dtype=np.float64)  # baskets holding each item
        self.rates = np.zeros((space.n_items, 2), dtype=np.float64)  # each item's RATE_FEATURES

    def fit(self, events: pl.DataFrame, parts: tuple[str, ...] = ()) -> ReorderSource:
        c = self.config
        rows = basket_rows(events) if events.height else None
        n, groups = self.space.n_items, self.space.item_groups
        self.popularity = np.zeros(n, dtype=np.float64)
        self.rates = np.zeros((n, 2), dtype=np.float64)
        self.model = None
        if rows is not None:
            self.popularity = np.bincount(rows["item_idx"].to_numpy(), minlength=n).astype(np.float64)
            self.rates, prior = next_rates(rows, groups, n)
            x, y = training_rows(rows, self.popularity, c.max_back, c.min_history, c.max_rows, groups)
            if c.model == "trees":
                self.model = RepeatTrees.fit(x, y, prior, c.rounds, c.leaves)
            else:
                self.model = RepeatModel.fit(x[:, :len(FEATURES)], y, c.l2)
        self.fit_info = FitInfo(tuple(parts), events.height)
        return self

    def candidates(self, batch: Batch, n: int, include_seen: bool, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        return top_n_sparse(self.score_rows(batch), n, None if include_seen else batch.seen(), allowed)

    def score_rows(self, batch: Batch) -> sp.csr_matrix:
        """Batch rows × items: the source's score of every item in each row's history, at the row's
        request time (``batch.at``; not given: the user's usual return). The history features are
        computed once per history (a cached view); only the time features are computed per batch."""
        view = batch.history.view("reorder_features", lambda h: OwnItems.of(h.events, h.n_rows, self.popularity))
        idx, row = view.rows_of(batch.rows)
        items = view.items[idx]
        x = np.hstack([view.x[idx], time_features(view.times[idx], batch.request_days()[row]), self.rates[items]])
        if self.model is None:
            score = x[:, TREE_FEATURES.index("decay_7")]
        else:
            score = self.model.predict(x[:, [TREE_FEATURES.index(f) for f in self.model.features]])
        return sp.csr_matrix((score, (row, items)), shape=(len(batch), self.space.n_items))

    def save(self, folder: Path) -> None:
        self.save_config(folder)
        np.save(folder / POPULARITY, self.popularity, allow_pickle=False)
        np.save(folder / RATES, self.rates, allow_pickle=False)
        if self.model is not None:
            self.model.save(folder / (TREES if isinstance(self.model, RepeatTrees) else MODEL))
        super().save(folder)

    @classmethod
    def config_from(cls, saved: dict) -> ReorderConfig:
        return ReorderConfig(**{"model": "logistic", **saved})  # saved before the trees: it refits as logistic

    @classmethod
    def load(cls, folder: Path | None, space: Space, **_) -> ReorderSource | None:
        out = super().load(folder, space)
        if out is not None:
            out.popularity = np.load(folder / POPULARITY, allow_pickle=False)
            if (folder / RATES).is_file():  # built before the trees: none (the logistic model does not read them)
                out.rates = np.load(folder / RATES, allow_pickle=False)
            if (folder / TREES).is_file():
                out.model = RepeatTrees.load(folder / TREES)
            elif (folder / MODEL).is_file():
                out.model = RepeatModel.load(folder / MODEL)
        return out

    def add_items(self, n: int) -> bool:
        self.popularity = np.concatenate([self.popularity, np.zeros(n, dtype=np.float64)])
        prior = self.model.prior if isinstance(self.model, RepeatTrees) else 0.0
        self.rates = np.vstack([self.rates, np.full((n, 2), prior)])  # no basket yet: every item's rate
        return True
