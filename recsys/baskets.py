"""Time-decayed basket vectors and their neighbours: TIFU-KNN (Hu et al., SIGIR 2020).

A user's history is a sequence of *baskets* (visits: a session, or a day when events carry no
session), oldest first. Counted back from the newest, the baskets fall into groups of
``group_size`` (the oldest group may be short). With a basket's age ``a`` (0 = newest), its group
``g = a // group_size`` (0 = newest), ``G`` groups and ``size(g)`` baskets in group g, the user's
vector is

    v[i] = Σ over baskets b holding item i of  value(b, i) · rb ** (a mod group_size) / size(g) · rg ** g / G

with ``rb`` the within-group decay and ``rg`` the group decay; ``value(b, i)`` is 1 for a plain
basket, or the strongest event weight the user gave item i in that visit. The TIFU-KNN score of a
user blends their own vector with the mean vector of their ``k`` nearest users (cosine):

    score = alpha · v_user + (1 - alpha) · mean(v_neighbour over the k nearest)

Both the ``repeat`` candidate source (``recsys.retrieval.sources``) and the ``tifu_knn`` peer
(``recsys.eval.baselines``) are computed here.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from .schema import EventWeights


def visit_key(events: pl.DataFrame) -> pl.Expr:
    """A basket's key: the event's session where it has one, else its day."""
    day = pl.col("timestamp").dt.date().cast(pl.Utf8)
    return pl.coalesce(pl.col("session_id").cast(pl.Utf8), day) if "session_id" in events.columns else day


def visit_ages(df: pl.DataFrame) -> pl.DataFrame:
    """One row per (``user_idx``, visit ``_v``) of ``df``: ``_age``, the visit's age among the user's
    visits (0 = the newest, by first timestamp; ties by the larger key), and ``_n``, their count."""
    return (df.group_by("user_idx", "_v").agg(pl.col("timestamp").min().alias("_start"))
            .sort("user_idx", "_start", "_v", descending=[False, True, True])
            .select("user_idx", "_v", pl.int_range(pl.len()).over("user_idx").alias("_age"),
                    pl.len().over("user_idx").alias("_n")))


def basket_vectors(events: pl.DataFrame, n_rows: int, n_items: int, weights: EventWeights | None = None,
                   group_size: int = 3, within_decay: float = 0.9, group_decay: float = 0.7,
                   visit: pl.Expr | None = None) -> sp.csr_matrix:
    """Rows × items TIFU-KNN user vectors of ``events`` (``user_idx`` = row, ``item_idx``,
    ``timestamp``); ``weights``: values are event weights (None: 1 per basket item); ``visit``: the
    basket key (default :func:`visit_key`). See the module doc.

    Three baskets in groups of two: the newest group holds baskets 2 and 1 (ages 0 and 1), the
    oldest only basket 0 (age 2), so item 0 (in baskets 0 and 2) weighs 1/1 · 0.5/2 + 1/2 · 1/2:

    >>> import datetime as dt
    >>> d = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    >>> ev = pl.DataFrame({"user_idx": [0, 0, 0, 0], "item_idx": [0, 1, 1, 0],
    ...                    "timestamp": [d + dt.timedelta(days=k) for k in (0, 1, 2, 2)]})
    >>> basket_vectors(ev, 1, 2, group_size=2, within_decay=0.5, group_decay=0.5).toarray().tolist()
    [[0.5, 0.375]]
    """
    if events.height == 0:
        return sp.csr_matrix((n_rows, n_items), dtype=np.float32)
    value = weights.expr().fill_null(1.0) if weights is not None else pl.lit(1.0)
    df = events.select("user_idx", "item_idx", "timestamp", (visit if visit is not None else visit_key(events)).alias("_v"),
                       value.alias("_w"))
    items = df.group_by("user_idx", "_v", "item_idx").agg(pl.col("_w").max())
    baskets = visit_ages(df)
    age = baskets["_age"].to_numpy().astype(np.int64)
    n = baskets["_n"].to_numpy().astype(np.int64)
    g = age // group_size
    groups = -(-n // group_size)
    size = np.where(g == groups - 1, n - group_size * (groups - 1), group_size)
    bw = within_decay ** (age % group_size) / size * group_decay ** g / groups
    baskets = baskets.select("user_idx", "_v").with_columns(pl.Series("_bw", bw))
    # a fixed order: the float sums below must not depend on how the joins and groupings came out
    items = items.join(baskets, on=["user_idx", "_v"], how="left").sort("user_idx", "item_idx", "_v")
    data = (items["_w"].to_numpy() * items["_bw"].to_numpy()).astype(np.float32)
    m = sp.csr_matrix((data, (items["user_idx"].to_numpy(), items["item_idx"].to_numpy())), shape=(n_rows, n_items))
    m.sum_duplicates()
    return m


def basket_counts(events: pl.DataFrame, n_rows: int) -> np.ndarray:
    """Baskets (visits, keyed as by :func:`visit_key`) per row (``user_idx``)."""
    if events.height == 0:
        return np.zeros(n_rows, dtype=np.int64)
    per = events.select("user_idx", visit_key(events).alias("_v")).unique().group_by("user_idx").len()
    out = np.zeros(n_rows, dtype=np.int64)
    out[per["user_idx"].to_numpy()] = per["len"].to_numpy()
    return out


def unit_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    """``m`` with each non-zero row scaled to length 1."""
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return sp.diags(1.0 / np.maximum(norms, 1e-12)).astype(np.float32) @ m


def neighbour_mean(own: sp.csr_matrix, others: sp.csr_matrix, others_unit: sp.csr_matrix, k: int,
                   self_rows: np.ndarray | None = None) -> sp.csr_matrix:
    """For each row of ``own`` (rows × items), the mean of the ``k`` rows of ``others`` nearest to it
    by cosine (``others_unit``: ``others`` by :func:`unit_rows`), as a sparse (rows, items) matrix;
    ``self_rows[r]`` (≥ 0) is row r's own row in ``others``, never its neighbour. Ties go to the
    smaller row index; a mean always divides by ``k`` (TIFU-KNN), so fewer than ``k`` similar users
    weigh less.

    >>> others = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]))
    >>> neighbour_mean(sp.csr_matrix(np.array([[1.0, 0.0]])), others, unit_rows(others), 2, np.array([0])).toarray().tolist()
    [[0.5, 1.0]]
    """
    rows, n_others = own.shape[0], others.shape[0]
    k = min(k, n_others - 1 if self_rows is not None else n_others)
    if rows == 0 or k <= 0:
        return sp.csr_matrix((rows, others.shape[1]), dtype=np.float32)
    own_unit = unit_rows(own.tocsr().astype(np.float32))
    parts = []
    for s in range(0, rows, 256):
        sims = np.asarray((own_unit[s:s + 256] @ others_unit.T).todense(), dtype=np.float64)
        if self_rows is not None:
            mine = self_rows[s:s + 256]
            hit = np.flatnonzero(mine >= 0)
            sims[hit, mine[hit]] = -np.inf
        r, c = nearest(sims, k)
        mix = sp.csr_matrix((np.full(r.size, 1.0 / k, dtype=np.float32), (r, c)), shape=(sims.shape[0], n_others))
        parts.append((mix @ others).astype(np.float32))
    return sp.vstack(parts, format="csr")


def nearest(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each row's ``k`` largest entries of ``sims``, ties to the smaller column.

    >>> nearest(np.array([[0.1, 0.5, 0.1, 0.1]]), 2)
    (array([0, 0]), array([0, 1]))
    """
    kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1:k]
    above = sims > kth
    tied = sims == kth
    room = k - above.sum(axis=1, keepdims=True)
    keep = above | (tied & (np.cumsum(tied, axis=1) <= room))
    return np.nonzero(keep)
