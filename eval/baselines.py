"""Peers every stage is measured against, all scored by the same protocol code.

Each peer is a small class in the style of ``implicit``: ``fit(task)`` reads the task's history;
``scores(users)`` answers a dense (len(users), n_items) array. Popularity, personal frequency,
recency, sequential item co-occurrence and TIFU-KNN are written here; ALS, BPR and item-kNN are
``implicit``'s own models behind the same interface.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.baskets import basket_vectors, neighbour_mean, unit_rows
from recsys.cooccurrence import recent_items, transitions

from .protocols import EvalTask, interactions


class Peer:
    """Base class: fit on a task's history, then score users against the whole catalogue."""

    name = "peer"

    def fit(self, task: EvalTask) -> Peer:
        raise NotImplementedError

    def scores(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Popularity(Peer):
    """Items ranked by how many distinct users interacted with them."""

    name = "popularity"

    def fit(self, task: EvalTask) -> Popularity:
        pairs = task.history.unique(["user_idx", "item_idx"])
        self.pop = np.bincount(pairs["item_idx"].to_numpy(), minlength=task.n_items).astype(np.float64)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.pop, (len(users), self.pop.size))


class PersonalFrequency(Peer):
    """The user's own most-bought items (by count), topped up with popular items."""

    name = "personal_frequency"

    def fit(self, task: EvalTask) -> PersonalFrequency:
        self.counts = interactions(task.history, task.n_users, task.n_items)
        pop = Popularity().fit(task).pop
        self.tiebreak = pop / (pop.max() + 1.0)  # < 1: never outranks a single own purchase
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return self.counts[users].toarray() + self.tiebreak


class Recency(Peer):
    """The user's own items, the most recently touched first (ties: the more popular), topped up with
    popular items: what a "recently viewed" shelf shows."""

    name = "recency"

    def fit(self, task: EvalTask) -> Recency:
        last = (task.history.group_by("user_idx", "item_idx").agg(pl.col("timestamp").max())
                .with_columns(pl.col("timestamp").rank("dense").over("user_idx").alias("_r")))
        self.order = sp.csr_matrix((last["_r"].to_numpy().astype(np.float64),
                                    (last["user_idx"].to_numpy(), last["item_idx"].to_numpy())),
                                   shape=(task.n_users, task.n_items))
        pop = Popularity().fit(task).pop
        self.tiebreak = pop / (pop.max() + 1.0)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return self.order[users].toarray() + self.tiebreak


class ItemCooccurrence(Peer):
    """Sequential co-occurrence: item j scores by how often it followed the user's recent items
    (within ``window`` steps) in everyone's histories, the recent items weighted by ``decay`` ** age."""

    name = "cooccurrence"

    def __init__(self, window: int = 3, last_n: int = 5, decay: float = 0.6):
        self.window, self.last_n, self.decay = window, last_n, decay

    def fit(self, task: EvalTask) -> ItemCooccurrence:
        h = task.history.sort(["user_idx", "timestamp"], maintain_order=True)
        self.trans = transitions(h, task.n_items, self.window)
        self.recent = recent_items(h, self.last_n)
        self.pop = Popularity().fit(task).pop / (task.history.height + 1.0)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        n = self.trans.shape[0]
        rows, cols, vals = [], [], []
        for r, u in enumerate(users):
            items = self.recent.get(int(u), [])
            rows += [r] * len(items)
            cols += items
            vals += [self.decay ** a for a in range(len(items))]
        weights = sp.csr_matrix((vals, (rows, cols)), shape=(len(users), n))
        return np.asarray((weights @ self.trans).todense()) + 1e-6 * self.pop


class TIFUKNN(Peer):
    """TIFU-KNN (Hu et al., SIGIR 2020) on the sessions as baskets: a user vector from time-decayed
    basket groups, blended with its nearest neighbours' vectors (:mod:`recsys.baskets`)."""

    name = "tifu_knn"

    def __init__(self, group_size: int = 7, within_decay: float = 0.9, group_decay: float = 0.7,
                 n_neighbors: int = 300, alpha: float = 0.7):
        self.group_size, self.rb, self.rg = group_size, within_decay, group_decay
        self.n_neighbors, self.alpha = n_neighbors, alpha

    def fit(self, task: EvalTask) -> TIFUKNN:
        h = task.history.filter(pl.col("session_id").is_not_null())
        self.vec = basket_vectors(h, task.n_users, task.n_items, None, self.group_size, self.rb, self.rg,
                                  visit=pl.col("session_id"))
        self.unit = unit_rows(self.vec)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        neigh = neighbour_mean(self.vec[users], self.vec, self.unit, self.n_neighbors, self_rows=users)
        return self.alpha * self.vec[users].toarray() + (1 - self.alpha) * neigh.toarray()


class ImplicitPeer(Peer):
    """An ``implicit`` model (ALS, BPR, item-kNN) on the users × items confidence matrix."""

    def __init__(self, kind: str = "als", factors: int = 64, iterations: int = 15, regularization: float = 0.05,
                 alpha: float = 1.0, learning_rate: float = 0.01, K: int = 100, seed: int = 0):
        self.kind, self.factors, self.iterations = kind, factors, iterations
        self.regularization, self.alpha, self.learning_rate, self.K, self.seed = regularization, alpha, learning_rate, K, seed
        self.name = kind

    def _model(self):
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        if self.kind == "als":
            return AlternatingLeastSquares(factors=self.factors, iterations=self.iterations, alpha=self.alpha,
                                           regularization=self.regularization, random_state=self.seed)
        if self.kind == "bpr":
            # one thread: implicit's BPR updates shared factors from every thread at once (lock-free SGD), so
            # with several threads the same seed gives other factors run to run; one thread costs ~10% here
            return BayesianPersonalizedRanking(factors=self.factors, iterations=self.iterations,
                                               learning_rate=self.learning_rate, regularization=self.regularization,
                                               random_state=self.seed, num_threads=1)
        if self.kind == "itemknn_cosine":
            return CosineRecommender(K=self.K)
        if self.kind == "itemknn_bm25":
            return BM25Recommender(K=self.K)
        raise ValueError(f"kind {self.kind!r}: use als, bpr, itemknn_cosine or itemknn_bm25")

    def fit(self, task: EvalTask) -> ImplicitPeer:
        self.user_items = interactions(task.history, task.n_users, task.n_items).tocsr()
        self.model = self._model()
        self.model.fit(self.user_items, show_progress=False)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        if self.kind in ("als", "bpr"):
            return np.asarray(self.model.user_factors[users] @ self.model.item_factors.T)
        return np.asarray((self.user_items[users] @ self.model.similarity).todense())
