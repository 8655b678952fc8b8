"""What a user is still weighing up: recent, strong, repeated interest in items, and how often an
item's interest turns into a purchase.

- :func:`engagement_scores`: for each user, Σ over their events on an item of weight(event) ·
  ``decay`` ** (visits since) · ``step_decay`` ** (steps since), a visit being a session (or a
  day, when events carry no session) and a step a turn to another item: recent visits count
  more, and within a visit the items turned to last; a cart more than a view; every repeated
  view adds (dwell).
- :func:`conversion_rates`: per item, the share of the users who touched it that bought it,
  smoothed towards the catalogue's share ``overall`` by ``prior`` pseudo-buyers:
  (buyers + prior) / (users + prior / overall). The prior is counted in buyers, not users: where
  purchases are rare, what a rate knows is its count of buyers, so one buyer among ten viewers is
  weak evidence on a log where one view in 600 ends in a purchase, and strong where one in six does.

The ``reengage`` candidate source (``recsys.retrieval.sources``) multiplies the two over the items
a user looked at and has not bought; the ``recency`` peer (``recsys.eval.baselines``) is the
plain alternative it is measured against.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from .baskets import visit_ages, visit_key
from .errors import ConfigError
from .schema import EventWeights

UNITS = ("buyers", "users")  # what conversion_rates' prior counts


def engagement_scores(events: pl.DataFrame, n_rows: int, n_items: int, weights: EventWeights,
                      decay: float = 0.9, step_decay: float = 1.0) -> sp.csr_matrix:
    """Rows × items recency-decayed weighted event counts (``user_idx`` = row; see the module doc).

    >>> import datetime as dt
    >>> d = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    >>> ev = pl.DataFrame({"user_idx": [0, 0, 0], "item_idx": [0, 0, 1], "event": ["purchase"] * 3,
    ...                    "timestamp": [d, d + dt.timedelta(days=1), d + dt.timedelta(days=1)],
    ...                    "session_id": ["a", "b", "b"]})
    >>> engagement_scores(ev, 1, 2, EventWeights(), decay=0.5).toarray().tolist()  # item 0: 8·0.5 + 8
    [[12.0, 8.0]]
    >>> engagement_scores(ev, 1, 2, EventWeights(), decay=0.5, step_decay=0.5).toarray().tolist()  # 8·0.5·0.5 + 8·0.5
    [[6.0, 8.0]]
    """
    if events.height == 0:
        return sp.csr_matrix((n_rows, n_items), dtype=np.float32)
    df = events.select("user_idx", "item_idx", "timestamp", visit_key(events).alias("_v"),
                       weights.expr().fill_null(1.0).alias("_w"))
    df = df.join(visit_ages(df).select("user_idx", "_v", "_age"), on=["user_idx", "_v"], how="left",
                 maintain_order="left")
    # steps since: how many other items the user turned to after this event (runs on one item are one step)
    df = df.sort("user_idx", "timestamp", maintain_order=True).with_columns(
        ((pl.col("item_idx") != pl.col("item_idx").shift(1)) | (pl.col("user_idx") != pl.col("user_idx").shift(1)))
        .fill_null(True).cast(pl.Int64).cum_sum().alias("_run"))
    df = df.with_columns((pl.col("_run").max().over("user_idx") - pl.col("_run")).alias("_steps"))
    data = (df["_w"].to_numpy() * decay ** df["_age"].to_numpy().astype(np.float64)
            * step_decay ** df["_steps"].to_numpy().astype(np.float64)).astype(np.float32)
    m = sp.csr_matrix((data, (df["user_idx"].to_numpy(), df["item_idx"].to_numpy())), shape=(n_rows, n_items))
    m.sum_duplicates()
    return m


def conversion_rates(events: pl.DataFrame, n_items: int, purchase: str = "purchase", prior: float = 3.0,
                     unit: str = "buyers") -> np.ndarray:
    """Per item, the smoothed share of its users who bought it (see the module doc); every item at 1
    when nobody bought anything (no evidence either way). ``unit``: ``"buyers"`` (``prior``
    pseudo-buyers, the default) or ``"users"`` (``prior`` pseudo-users: (buyers + prior · overall) /
    (users + prior), the rates of artifacts built before 2026-12-03).

    Item 0: 1 buyer of 2 users; item 1: 0 of 1; overall 1 of 3 (user, item) pairs; a prior of 1
    buyer weighs as 1 / (1/3) = 3 users:

    >>> ev = pl.DataFrame({"user_idx": [0, 0, 1, 1], "item_idx": [0, 0, 0, 1], "event": ["view", "purchase", "view", "view"]})
    >>> [round(float(r), 4) for r in conversion_rates(ev, 3, prior=1.0)]  # (1 + 1)/(2 + 3), (0 + 1)/(1 + 3), 1/3
    [0.4, 0.25, 0.3333]
    >>> [round(float(r), 4) for r in conversion_rates(ev, 3, prior=3.0, unit="users")]  # the same, in users
    [0.4, 0.25, 0.3333]
    """
    if unit not in UNITS:
        raise ConfigError(f"conversion rate unit={unit!r}: give {' or '.join(map(repr, UNITS))}")
    if events.height == 0:
        return np.ones(n_items, dtype=np.float32)
    pairs = events.group_by("user_idx", "item_idx").agg((pl.col("event") == purchase).any().alias("_bought"))
    item = pairs["item_idx"].to_numpy()
    users = np.bincount(item, minlength=n_items).astype(np.float64)
    buyers = np.bincount(item, weights=pairs["_bought"].to_numpy().astype(np.float64), minlength=n_items)
    if buyers.sum() == 0:
        return np.ones(n_items, dtype=np.float32)
    overall = buyers.sum() / users.sum()
    strength = prior / overall if unit == "buyers" else prior  # in pseudo-users
    return ((buyers + strength * overall) / (users + strength)).astype(np.float32)
