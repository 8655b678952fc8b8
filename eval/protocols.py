"""Evaluation protocols: who is scored, on which targets, with which history, excluding what.

- ``loo`` — leave-one-out by time (the field's standard, for comparison with published
  results): one target per user; the history is training + validation; seen items excluded.
- ``temporal`` — a global cut (the leak-free default for a shop's own data): every distinct item
  a training user touches after the cut is a target; seen items excluded.
- ``last_basket`` — every item of the user's final order is a target, repeats included (most
  grocery purchases are repeats), so seen items are *not* excluded.
- ``next_purchase`` — the item(s) of the user's last purchase are the targets; the history is
  everything the user did before it (views and carts of the very item included), so seen items
  are *not* excluded.

Ranking is over the full catalogue; there are no sampled-negative metrics here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.errors import ConfigError
from recsys.idmap import IDMap
from recsys.schema import EventWeights
from recsys.sources import request_times
from recsys.splits import Split

from .metrics import coverage_at_k, novelty_at_k, per_user

PROTOCOLS = ("loo", "temporal", "last_basket", "next_purchase")


def keeps_seen(protocol: str) -> bool:
    """Whether a protocol's targets include items the user already had: next baskets do (most
    grocery purchases are repeats), and so do next purchases (most are of items viewed or carted
    before); next items by time do not.

    >>> keeps_seen("last_basket"), keeps_seen("next_purchase"), keeps_seen("loo")
    (True, True, False)
    """
    return protocol in ("last_basket", "next_purchase")


@dataclass
class EvalTask:
    """Users to score (internal indices), their targets, and the history a model may use."""

    protocol: str
    users: np.ndarray
    targets: list[np.ndarray]
    history: pl.DataFrame  # events a model may read at scoring time (user_idx, item_idx, event, timestamp, ...)
    exclude_seen: bool
    n_users: int
    n_items: int
    held: pl.DataFrame | None = None  # the held-out events behind ``targets`` (with indices and event types)

    def request_times(self) -> np.ndarray:
        """Each user's request time (epoch seconds, in :attr:`users`' order): the first of their held
        events, when the target basket or purchase happens; NaN without ``held``."""
        if self.held is None or self.held.height == 0:
            return np.full(self.users.size, np.nan)
        first = self.held.group_by("user_idx").agg(pl.col("timestamp").min())
        got = pl.DataFrame({"user_idx": self.users}).join(first, on="user_idx", how="left", maintain_order="left")
        return request_times(got["timestamp"], self.users.size)

    def seen_matrix(self) -> sp.csr_matrix:
        """Users × items, 1 where the user has the item in its history."""
        return interactions(self.history, self.n_users, self.n_items, binary=True)


def with_indices(events: pl.DataFrame, users: IDMap, items: IDMap) -> pl.DataFrame:
    """Add ``user_idx`` / ``item_idx`` columns (rows with ids outside the maps are dropped)."""
    return events.with_columns(
        pl.Series("user_idx", users.to_internal(events["user_id"], missing="ignore")),
        pl.Series("item_idx", items.to_internal(events["item_id"], missing="ignore")),
    ).filter((pl.col("user_idx") >= 0) & (pl.col("item_idx") >= 0))


def interactions(events: pl.DataFrame, n_users: int, n_items: int, weights: EventWeights | None = None,
                 binary: bool = False) -> sp.csr_matrix:
    """Users × items matrix: summed event weights (1 per event without ``weights``), or 0/1."""
    if binary or weights is None:
        data = np.ones(events.height, dtype=np.float32)
    else:
        data = events.select(weights.expr()).to_series().fill_null(1.0).to_numpy().astype(np.float32)
    m = sp.csr_matrix((data, (events["user_idx"].to_numpy(), events["item_idx"].to_numpy())), shape=(n_users, n_items))
    m.sum_duplicates()
    if binary:
        m.data[:] = 1.0
    return m


def make_task(protocol: str, split: Split, users: IDMap, items: IDMap, stage: str = "test") -> EvalTask:
    """Build the task for ``stage`` ("valid" or "test") of a split made with the same protocol: the
    validation stage reads the training events, the test stage training and validation."""
    if stage not in ("valid", "test"):
        raise ConfigError(f"stage {stage!r}: use 'valid' or 'test'")
    history = split.train if stage == "valid" else pl.concat([split.train, split.valid])
    return task_from(protocol, history, split.valid if stage == "valid" else split.test, users, items)


def task_from(protocol: str, history: pl.DataFrame, held: pl.DataFrame, users: IDMap, items: IDMap) -> EvalTask:
    """The task of scoring ``held``'s events (the targets) from ``history`` (what a model may read)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    history = with_indices(history, users, items)
    held = with_indices(held, users, items)
    known = history["user_idx"].unique()
    held = held.filter(pl.col("user_idx").is_in(known.implode()))  # users with no history cannot be scored
    if protocol == "next_purchase":  # the purchase that opens the held-out frame, not what came after it
        held = held.filter((pl.col("event") == "purchase")
                           & (pl.col("timestamp") == pl.col("timestamp").min().over("user_idx")))
    grouped = held.group_by("user_idx").agg(pl.col("item_idx").unique().sort()).sort("user_idx")
    return EvalTask(
        protocol=protocol,
        users=grouped["user_idx"].to_numpy(),
        targets=[np.asarray(t, dtype=np.int64) for t in grouped["item_idx"].to_list()],
        history=history,
        exclude_seen=not keeps_seen(protocol),
        n_users=len(users),
        n_items=len(items),
        held=held,
    )


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k best scores per row, ties broken by the lower index; ``exclude`` (bool,
    same shape) masks items out. Rows with fewer than k eligible items are padded with -1.

    >>> top_k(np.array([[0.5, 0.9, 0.5, 0.1]]), 3).tolist()
    [[1, 0, 2]]
    >>> top_k(np.array([[0.5, 0.9, 0.5]]), 2, exclude=np.array([[False, True, False]])).tolist()
    [[0, 2]]
    >>> top_k(np.array([[0.5, 0.9]]), 2, exclude=np.array([[False, True]])).tolist()
    [[0, -1]]
    >>> top_k(np.array([[np.nan, 0.9]]), 2).tolist()  # NaN: no score
    [[1, -1]]
    """
    scores = np.array(scores, dtype=np.float64, copy=True, ndmin=2)
    scores[np.isnan(scores)] = -np.inf  # no score: ranked like an excluded item
    if exclude is not None:
        scores[exclude] = -np.inf
    k = min(k, scores.shape[1])
    out = np.empty((scores.shape[0], k), dtype=np.int64)
    for row, s in enumerate(scores):
        kth = np.partition(-s, k - 1)[k - 1]
        cand = np.flatnonzero(-s <= kth)
        order = np.lexsort((cand, -s[cand]))
        best = cand[order[:k]]
        out[row] = np.where(np.isneginf(s[best]), -1, best)
    return out


Scorer = Callable[[np.ndarray], np.ndarray]  # user indices -> scores (n_users_batch, n_items)


def rank(task: EvalTask, scorer: Scorer, k: int, batch_size: int = 1024) -> np.ndarray:
    """Top-k item indices for every task user, with seen items excluded when the protocol says so."""
    seen = task.seen_matrix() if task.exclude_seen else None
    out = []
    for start in range(0, task.users.size, batch_size):
        batch = task.users[start:start + batch_size]
        scores = np.asarray(scorer(batch), dtype=np.float64)
        exclude = seen[batch].toarray().astype(bool) if seen is not None else None
        out.append(top_k(scores, k, exclude))
    return np.concatenate(out) if out else np.empty((0, k), dtype=np.int64)


def score_rankings(task: EvalTask, rankings: np.ndarray, ks=(10, 20, 100)) -> tuple[dict, dict]:
    """Mean metrics (plus coverage and novelty) and the per-user arrays behind them."""
    users = per_user(rankings, task.targets, ks)
    means = {name: float(v.mean()) if v.size else 0.0 for name, v in users.items()}
    pop = np.bincount(task.history.unique(["user_idx", "item_idx"])["item_idx"].to_numpy(), minlength=task.n_items)
    for k in ks:
        means[f"coverage@{k}"] = coverage_at_k(rankings, task.n_items, k)
        means[f"novelty@{k}"] = novelty_at_k(rankings, pop, task.n_users, k)
    means["users"] = int(task.users.size)
    return means, users
