"""Scores that need no model: recent popularity (:func:`popularity_scores`, :func:`popularity_as_of`)
and the top-n of a score array, dense (:func:`top_n`) or sparse (:func:`top_n_sparse`), which the
model-free sources share.

Popularity is Σ over events of weight(event) · 0.5 ** (age in days / half-life), the age counted
back from the newest event in the data. It serves users nobody knows.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.schema import EventWeights


def popularity_scores(events: pl.DataFrame, n_items: int, weights: EventWeights, half_life_days: float = 30.0) -> np.ndarray:
    """Time-decayed weighted popularity of each item (events carry ``item_idx``).

    >>> import datetime as dt
    >>> t = dt.datetime(2024, 1, 31, tzinfo=dt.timezone.utc)
    >>> ev = pl.DataFrame({"item_idx": [0, 1, 1], "event": ["purchase", "view", "view"],
    ...                    "timestamp": [t - dt.timedelta(days=30), t, t]})
    >>> popularity_scores(ev, 3, EventWeights(), half_life_days=30).tolist()
    [4.0, 2.0, 0.0]
    """
    if events.height == 0:
        return np.zeros(n_items)
    newest = events["timestamp"].max()
    age = ((newest - events["timestamp"]).dt.total_seconds() / 86400.0).to_numpy()
    w = events.select(weights.expr().fill_null(1.0)).to_series().to_numpy()
    return np.bincount(events["item_idx"].to_numpy(), weights=w * 0.5 ** (age / half_life_days), minlength=n_items)


def popularity_as_of(events: pl.DataFrame, weights: EventWeights, items: np.ndarray, cuts: np.ndarray,
                     half_life_days: float = 30.0) -> np.ndarray:
    """:func:`popularity_scores` of ``items[r, j]`` as it stood at ``cuts[r]``: only events strictly
    before the cut count, their age taken back from the cut. ``items`` (rows, n) with -1 pads (0 there),
    ``cuts`` (rows,) datetimes. Training examples read this, so no label leaks into the feature.

    >>> import datetime as dt
    >>> t = dt.datetime(2024, 1, 31, tzinfo=dt.timezone.utc)
    >>> ev = pl.DataFrame({"item_idx": [0, 1, 1], "event": ["purchase", "view", "view"],
    ...                    "timestamp": [t - dt.timedelta(days=30), t, t]})
    >>> popularity_as_of(ev, EventWeights(), np.array([[0, 1], [1, -1]]), np.array([t, t + dt.timedelta(days=30)])).tolist()
    [[4.0, 0.0], [1.0, 0.0]]

    (At ``t`` item 0 weighs as in :func:`popularity_scores` and item 1's views are not yet before
    the cut; thirty days later they are, at half weight: 2 · 0.5.)
    """
    out = np.zeros(items.shape, dtype=np.float64)
    if events.height == 0 or items.size == 0:
        return out
    us = pl.Datetime("us", "UTC")
    ev = events.select("item_idx", pl.col("timestamp").cast(us).cast(pl.Int64).alias("_t"),
                       weights.expr().fill_null(1.0).alias("_w")).sort("item_idx", "_t")
    item, t, w = ev["item_idx"].to_numpy(), ev["_t"].to_numpy(), ev["_w"].to_numpy()
    day = 86400e6
    newest = t.max()
    # Σ w · 2^((t - newest)/h) as a running sum per item; at cut c it is scaled by 2^((newest - c)/h)
    mass = np.concatenate([[0.0], np.cumsum(w * 0.5 ** ((newest - t) / day / half_life_days))])
    n_items = int(max(item.max(), items.max())) + 1
    start = np.searchsorted(item, np.arange(n_items))
    c = pl.Series(list(cuts)).cast(us).cast(pl.Int64).to_numpy()
    for r in range(items.shape[0]):
        for j in np.flatnonzero(items[r] >= 0):
            i = items[r, j]
            lo = start[i]
            hi = lo + np.searchsorted(t[lo:start[i + 1] if i + 1 < n_items else t.size], c[r])
            out[r, j] = (mass[hi] - mass[lo]) * 0.5 ** ((c[r] - newest) / day / half_life_days)
    return out


def top_n(scores: np.ndarray, n: int, exclude: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n`` ids and scores of each row of a dense ``scores`` (rows, items), best first, ties by
    the smaller id; ids in ``exclude[row]`` and non-positive scores are left out; rows are padded
    with -1 / -inf (:func:`top_n_sparse` of its non-zero entries).

    >>> ids, scores = top_n(np.array([[0.5, 2.0, 0.0, 1.0]]), 3, [np.array([3])])
    >>> ids.tolist(), scores.tolist()
    ([[1, 0, -1]], [[2.0, 0.5, -inf]])
    """
    return top_n_sparse(sp.csr_matrix(np.asarray(scores, dtype=np.float64)), n, exclude)


def top_n_sparse(scores: sp.spmatrix, n: int, exclude: list[np.ndarray] | None = None,
                 allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n`` ids and scores of each row of a sparse ``scores`` (rows, items), best first, ties by
    the smaller id (also where tied scores straddle the n-th place); ids in ``exclude[row]`` and
    non-positive scores are left out; rows are padded with -1 / -inf. Time and memory grow with the
    stored entries, not rows × catalogue (a batch of 1,024 users over a million items would be an
    8 GB dense array). ``allowed`` (bool over items), when given, restricts the items.

    >>> m = sp.csr_matrix(np.array([[0.5, 2.0, 0.0, 1.0], [0.0, 0.0, 3.0, 3.0]]))
    >>> ids, scores = top_n_sparse(m, 3, [np.array([3]), np.array([], dtype=np.int64)])
    >>> ids.tolist(), scores.tolist()
    ([[1, 0, -1], [2, 3, -1]], [[2.0, 0.5, -inf], [3.0, 3.0, -inf]])
    """
    m = sp.csr_matrix(scores, dtype=np.float64)
    m.sum_duplicates()
    rows, items = m.shape
    ids = np.full((rows, n), -1, dtype=np.int64)
    out = np.full((rows, n), -np.inf, dtype=np.float32)
    if n == 0:
        return ids, out
    row = np.repeat(np.arange(rows, dtype=np.int64), np.diff(m.indptr))
    col, val = m.indices.astype(np.int64), m.data
    keep = val > 0
    if allowed is not None:
        keep &= np.asarray(allowed, dtype=bool)[col]
    if exclude is not None and len(exclude):
        lists = [np.asarray(e, dtype=np.int64).reshape(-1) for e in exclude]
        banned = np.repeat(np.arange(len(lists), dtype=np.int64), [e.size for e in lists]) * items + np.concatenate(lists)
        keep &= ~np.isin(row * items + col, banned)
    row, col, val = row[keep], col[keep], val[keep]
    # a row with more than n entries keeps those at or above its n-th best score (ties at it included)
    bounds = np.searchsorted(row, np.arange(rows + 1))
    floor = np.full(rows, -np.inf)
    for r in np.flatnonzero(np.diff(bounds) > n):
        part = val[bounds[r]:bounds[r + 1]]
        floor[r] = np.partition(part, part.size - n)[part.size - n]
    top = val >= floor[row]
    row, col, val = row[top], col[top], val[top]
    order = np.lexsort((col, -val, row))  # by row, best first, ties by the smaller id
    row, col, val = row[order], col[order], val[order]
    pos = np.arange(row.size) - np.searchsorted(row, row)  # place within the row
    first = pos < n
    ids[row[first], pos[first]] = col[first]
    out[row[first], pos[first]] = val[first]
    return ids, out
