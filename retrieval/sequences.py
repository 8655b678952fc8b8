"""Behaviour sequences: per-user arrays of (item, event type, time gap, weight), left-padded windows.

Event types are coded 1..n in the order of the dataset's :class:`EventWeights` (0 is padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from recsys.schema import EventWeights

from .towers import gap_buckets


@dataclass
class Sequences:
    """Every user's events in time order, flattened: user u's events are ``[offsets[u], offsets[u+1])``."""

    items: np.ndarray  # int64
    events: np.ndarray  # int64 event codes (1..)
    gaps: np.ndarray  # int64 gap buckets
    weights: np.ndarray  # float32 event weights
    offsets: np.ndarray  # int64, n_users + 1

    @property
    def n_users(self) -> int:
        return self.offsets.size - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def event_codes(weights: EventWeights) -> dict[str, int]:
    return {name: i + 1 for i, name in enumerate(weights.names())}


def build_sequences(events: pl.DataFrame, n_users: int, weights: EventWeights, n_gap_buckets: int = 16,
                    collapse_repeats: bool = True) -> Sequences:
    """Sequences from events carrying ``user_idx`` / ``item_idx`` (any order; sorted here by time,
    ties by item index).

    With ``collapse_repeats`` a run of consecutive events on the same item (view -> click -> cart
    -> purchase) becomes one step that carries the run's strongest event: the model learns which
    item comes *next*, not that a viewed item is then carted.
    """
    codes = event_codes(weights)
    df = events.sort(["user_idx", "timestamp", "item_idx"], maintain_order=True).select(
        "user_idx", "item_idx", "timestamp",
        pl.col("event").replace_strict(codes, default=0, return_dtype=pl.Int64).alias("code"),
        weights.expr().fill_null(1.0).alias("w"),
    )
    if collapse_repeats:
        run = ((pl.col("item_idx") != pl.col("item_idx").shift(1)) | (pl.col("user_idx") != pl.col("user_idx").shift(1)))
        df = (
            df.with_columns(run.fill_null(True).cum_sum().alias("_run"))
            .group_by("_run", maintain_order=True)
            .agg(pl.col("user_idx").first(), pl.col("item_idx").first(), pl.col("timestamp").first(),
                 pl.col("code").sort_by("w").last(), pl.col("w").max())
        )
    df = df.with_columns(
        (pl.col("timestamp").dt.epoch("ms") - pl.col("timestamp").dt.epoch("ms").shift(1).over("user_idx"))
        .fill_null(-1000).alias("gap_ms"),
    )
    counts = np.bincount(df["user_idx"].to_numpy(), minlength=n_users)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Sequences(
        items=df["item_idx"].to_numpy().astype(np.int64),
        events=df["code"].to_numpy().astype(np.int64),
        gaps=gap_buckets(df["gap_ms"].to_numpy() / 1000.0, n_gap_buckets),
        weights=df["w"].to_numpy().astype(np.float32),
        offsets=offsets,
    )


def left_pad(seq: Sequences, users: np.ndarray, length: int, end: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The last ``length`` events of each user (up to ``end`` exclusive when given), left-padded."""
    users = np.asarray(users, dtype=np.int64)
    stop = seq.offsets[users + 1] if end is None else np.asarray(end, dtype=np.int64)
    start = np.maximum(seq.offsets[users], stop - length)
    n = stop - start
    pos = np.arange(length)[None, :] - (length - n)[:, None]  # index inside the window; < 0 is padding
    valid = pos >= 0
    src = np.where(valid, start[:, None] + pos, 0)
    return {
        "items": np.where(valid, seq.items[src], 0),
        "events": np.where(valid, seq.events[src], 0),
        "gaps": np.where(valid, seq.gaps[src], 0),
        "weights": np.where(valid, seq.weights[src], 0.0).astype(np.float32),
        "valid": valid,
    }


def training_windows(seq: Sequences, length: int, min_len: int = 2, stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(user, end) pairs of windows of ``length + 1`` events ending at the user's last event,
    stepping back by ``stride`` (default ``length``: every event is a target exactly once).

    A smaller stride makes overlapping windows, so each event is also predicted from a longer
    context than its position in one window would give it (the data augmentation that SASRec-style
    training gets from using every prefix).
    """
    stride = length if stride is None else stride
    if stride < 1:
        raise ValueError(f"stride: {stride}; use a positive number of events")
    users, ends = [], []
    lens = seq.lengths()
    for u in np.flatnonzero(lens >= min_len):
        stops = seq.offsets[u] + window_ends(int(lens[u]), stride, min_len)
        users.append(np.full(stops.size, u, dtype=np.int64))
        ends.append(stops)
    if not users:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(users), np.concatenate(ends).astype(np.int64)


def window_ends(n: int, stride: int, min_len: int = 2) -> np.ndarray:
    """Where a user's training windows end, counted in events from the first: at the last of the
    user's ``n`` events, then every ``stride`` events back, while a window holds ``min_len`` events.

    >>> window_ends(11, 5).tolist()
    [11, 6]
    """
    return np.arange(n, min_len - 1, -stride, dtype=np.int64)


def predicted_positions(lengths: np.ndarray, length: int, stride: int) -> int:
    """Positions one epoch of :func:`training_windows` predicts for users of ``lengths`` events:
    each window reads up to ``length + 1`` events and predicts all but its first.

    >>> predicted_positions(np.array([11]), 50, 50), predicted_positions(np.array([11]), 20, 5)  # 10; 10 + 5
    (10, 15)
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    return sum(int(count) * int(np.minimum(length, window_ends(int(n), stride) - 1).sum())
               for n, count in zip(*np.unique(lengths[lengths >= 2], return_counts=True)))


def history_sequences(history, n_gap_buckets: int = 16) -> Sequences:
    """A :class:`recsys.sources.History`'s sequences (cached on it): what the user tower reads."""
    return history.view(f"sequences/{n_gap_buckets}",
                        lambda h: build_sequences(h.events, h.n_rows, h.space.weights, n_gap_buckets))
