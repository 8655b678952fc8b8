"""Which of a user's own items they buy again: per-item repeat features, and a logistic model of
them learnt from the history itself.

A user's history is a sequence of *baskets* (visits, keyed as by :func:`recsys.baskets.visit_key`),
with ages 0 (the newest) to n - 1. For each item the user has, :func:`repeat_features` reads:

- ``baskets`` / ``share``: how many baskets hold it, and that count over n;
- ``since``: the age of the newest basket holding it; ``first``: of the oldest;
- ``share_since_first``: baskets holding it over the baskets since it first appeared;
- ``gap``: the mean number of baskets between its purchases; ``since_over_gap``: since / gap (an
  item due again reads near 1);
- ``days_since``: days from the newest basket holding it to the user's newest basket;
- ``decay_9`` / ``decay_7`` / ``decay_5``: Σ r ** age over the baskets holding it (r = 0.9, 0.7,
  0.5); ``in_3`` / ``in_10``: the baskets holding it among the newest 3 / 10;
- ``history``: n; ``log_popularity``: log(1 + baskets holding it, over every user);

and, from the request's time ``now`` (in days; a shop knows it when the user opens the app):

- ``now_gap``: days from the user's newest basket to now; ``item_now``: from the newest basket
  holding the item to now; ``item_now_over_gap``: that over the item's mean interval in days (at
  least 1: an item due again reads near 1); ``user_gap_days``: the user's mean interval in days.

Where the request's time is not given, ``now`` is the user's usual return: their newest basket
plus ``user_gap_days``. In a training cut, ``now`` is the time of the basket that follows it.

and, from every user's baskets (:func:`next_rates`):

- ``item_next_rate``: how often a basket holding the item is followed by one holding it again,
  over every user; ``group_next_rate``: the same over the items of its catalogue group (aisle,
  category), towards which the item's rate is shrunk (bananas come back each week, spices seldom).

:func:`training_rows` cuts each user's history before each of their last ``max_back`` baskets
(keeping at least ``min_history`` baskets before the cut): the features as of the cut, labelled 1
when the item is in the basket that follows. :class:`RepeatTrees` are gradient-boosted trees
(LightGBM) of those labels on every feature; :class:`RepeatModel` is a logistic regression of them
on the features but the rates and their logarithms, standardised, fitted by Newton's method with
an L2 penalty. Either gives the same model from the same inputs. Nothing they read lies after a
cut but the time of the next basket (as a request's time), so they learn from the history alone
and no held-out event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy.special import expit

from .baskets import visit_ages, visit_key
from .errors import ConfigError

HISTORY_FEATURES = ("baskets", "share", "since", "first", "share_since_first", "gap", "since_over_gap",
                    "days_since", "decay_9", "decay_7", "decay_5", "in_3", "in_10", "history", "log_popularity")
TIME_FEATURES = ("now_gap", "item_now", "item_now_over_gap", "user_gap_days")
FEATURES = HISTORY_FEATURES + TIME_FEATURES
RATE_FEATURES = ("item_next_rate", "group_next_rate")
TREE_FEATURES = FEATURES + RATE_FEATURES
# what the time features need besides the request's time: the user's newest basket and mean interval,
# the item's newest basket and mean interval (days)
TIMES = ("_user_last", "_user_gap", "_item_last", "_item_gap")


def basket_rows(events: pl.DataFrame, visit: pl.Expr | None = None) -> pl.DataFrame:
    """One row per (``user_idx``, basket, ``item_idx``) of ``events``: the basket's ``_age`` (0 = the
    newest), ``_n`` (the user's baskets) and ``_day`` (its first event, in days)."""
    df = events.select("user_idx", "item_idx", "timestamp",
                       (visit if visit is not None else visit_key(events)).alias("_v"))
    start = df.group_by("user_idx", "_v").agg((pl.col("timestamp").min().dt.epoch("s") / 86400.0).alias("_day"))
    ages = visit_ages(df).join(start, on=["user_idx", "_v"])
    return (df.select("user_idx", "_v", "item_idx").unique().join(ages, on=["user_idx", "_v"])
            .select("user_idx", "item_idx", "_age", "_n", "_day"))


def history_features(rows: pl.DataFrame, popularity: np.ndarray) -> pl.DataFrame:
    """``user_idx``, ``item_idx``, the :data:`HISTORY_FEATURES` (see the module doc) and the
    :data:`TIMES` of each item in the baskets ``rows`` (as :func:`basket_rows` gives them), sorted by
    user then item; ``popularity``: baskets holding each item, over every user.

    >>> rows = pl.DataFrame({"user_idx": [0, 0, 0], "item_idx": [5, 5, 6], "_age": [0, 2, 1],
    ...                      "_n": [3, 3, 3], "_day": [10.0, 3.0, 7.0]})
    >>> f = history_features(rows, np.zeros(7))
    >>> f.select("item_idx", "baskets", "share", "since", "gap", "days_since", "decay_5").rows()
    [(5, 2, 0.6666666666666666, 0, 2.0, 0.0, 1.25), (6, 1, 0.3333333333333333, 1, 0.0, 3.0, 0.5)]
    >>> f.select(TIMES).rows()  # the user: baskets on days 3, 7, 10; item 5: days 3 and 10; item 6: day 7 alone
    [(10.0, 3.5, 10.0, 7.0), (10.0, 3.5, 7.0, 1.0)]
    """
    # a fixed order: the float sums below must not depend on how the joins and groupings came out
    rows = rows.sort("user_idx", "item_idx", "_age")
    day = pl.col("_day")
    user = rows.group_by("user_idx").agg(day.max().alias("_user_last"), day.min().alias("_user_start"))
    age = pl.col("_age")
    f = (rows.group_by("user_idx", "item_idx", maintain_order=True).agg(
        pl.len().alias("baskets"), age.min().alias("since"), age.max().alias("first"),
        pl.col("_n").first().alias("history"), day.max().alias("_item_last"), day.min().alias("_item_first"),
        *[(r ** age).sum().alias(name) for r, name in ((0.9, "decay_9"), (0.7, "decay_7"), (0.5, "decay_5"))],
        (age < 3).sum().alias("in_3"), (age < 10).sum().alias("in_10"),
    ).join(user, on="user_idx", how="left"))
    gap = (pl.col("first") - pl.col("since")) / pl.max_horizontal(pl.col("baskets") - 1, 1)
    f = f.with_columns(
        (pl.col("baskets") / pl.col("history")).alias("share"),
        (pl.col("baskets") / (pl.col("first") + 1)).alias("share_since_first"),
        gap.cast(pl.Float64).alias("gap"),
        (pl.col("_user_last") - pl.col("_item_last")).fill_null(0.0).alias("days_since"),
        ((pl.col("_user_last") - pl.col("_user_start")) / pl.max_horizontal(pl.col("history") - 1, 1))
        .alias("_user_gap"),
        pl.max_horizontal((pl.col("_item_last") - pl.col("_item_first")) / pl.max_horizontal(pl.col("baskets") - 1, 1),
                          1.0).alias("_item_gap"),
    ).with_columns((pl.col("since") / pl.max_horizontal(pl.col("gap"), 0.5)).alias("since_over_gap"))
    f = f.sort("user_idx", "item_idx")
    pop = np.log1p(np.asarray(popularity, dtype=np.float64)[f["item_idx"].to_numpy()])
    return f.with_columns(pl.Series("log_popularity", pop)).select("user_idx", "item_idx", *HISTORY_FEATURES, *TIMES)


def time_features(times: np.ndarray, now: np.ndarray) -> np.ndarray:
    """The :data:`TIME_FEATURES` of rows whose :data:`TIMES` are ``times`` (n, 4), at the request
    times ``now`` (n,; days, NaN: not given, the user's usual return instead; a time before the
    user's newest basket counts as that basket's).

    >>> times = np.array([[10.0, 3.5, 10.0, 7.0], [10.0, 3.5, 7.0, 1.0]])
    >>> time_features(times, np.array([14.0, np.nan])).tolist()
    [[4.0, 4.0, 0.5714285714285714, 3.5], [3.5, 6.5, 6.5, 3.5]]
    """
    user_last, user_gap, item_last, item_gap = np.asarray(times, dtype=np.float64).T
    now = np.asarray(now, dtype=np.float64)
    now = np.where(np.isnan(now), user_last + user_gap, np.maximum(now, user_last))
    item_now = now - item_last
    return np.column_stack([now - user_last, item_now, item_now / item_gap, user_gap])


def repeat_features(rows: pl.DataFrame, popularity: np.ndarray, now: pl.DataFrame | None = None) -> pl.DataFrame:
    """``user_idx``, ``item_idx`` and the :data:`FEATURES` (see the module doc) of each item in the
    baskets ``rows``, sorted by user then item (:func:`history_features`, then :func:`time_features`);
    ``now``: the request's time of each user (``user_idx``, ``_now`` in days; a user not in it, or
    None: not given)."""
    f = history_features(rows, popularity)
    if now is None:
        at = np.full(f.height, np.nan)
    else:
        at = (f.select("user_idx").join(now.select("user_idx", "_now"), on="user_idx", how="left", maintain_order="left")
              ["_now"].cast(pl.Float64).fill_null(np.nan).to_numpy())
    t = time_features(f.select(TIMES).to_numpy(), at)
    return f.select("user_idx", "item_idx", *HISTORY_FEATURES).with_columns(
        [pl.Series(name, t[:, j]) for j, name in enumerate(TIME_FEATURES)])


def next_rates(rows: pl.DataFrame, groups: np.ndarray | None, n_items: int,
               strength: float = 5.0) -> tuple[np.ndarray, float]:
    """``(rates, prior)``: each item's :data:`RATE_FEATURES` (``n_items``, 2) from the basket
    ``rows`` (as :func:`basket_rows` gives them) of every user, and every item's rate. Of the
    baskets holding an item that are followed by another, the share where the next one holds it
    too: every item's (``prior``); per group (``groups[item]``, -1 or None: no group) shrunk
    towards ``prior`` with the weight of ``strength`` baskets; per item shrunk towards its group's
    (``prior``, without a group) the same way.

    >>> rows = pl.DataFrame({"user_idx": [0] * 5, "item_idx": [5, 5, 5, 6, 7], "_age": [0, 1, 2, 2, 1]})
    >>> r, prior = next_rates(rows, np.array([-1] * 5 + [0, 0, -1, 0]), 9)
    >>> # followed: 5 twice (both again), 6 and 7 once (not again); every item 2 / 4, group 0: 5 and 6
    >>> prior, r[5:].tolist() == [[(2 + 5 * 4.5 / 8) / (2 + 5), 4.5 / 8], [(0 + 5 * 4.5 / 8) / (1 + 5), 4.5 / 8],
    ...                    [(0 + 5 * 0.5) / (1 + 5), 0.5], [4.5 / 8, 4.5 / 8]]  # group 0: (2 + 5 · 0.5) / (3 + 5)
    (0.5, True)
    """
    r = rows.select(pl.col("user_idx").cast(pl.Int64), pl.col("item_idx").cast(pl.Int64), pl.col("_age").cast(pl.Int64)).unique()
    again = r.with_columns(pl.col("_age") + 1, pl.lit(1.0).alias("_again"))  # held by the basket one younger
    x = (r.filter(pl.col("_age") >= 1).join(again, on=["user_idx", "item_idx", "_age"], how="left")
         .select("item_idx", pl.col("_again").fill_null(0.0)))
    item, hit = x["item_idx"].to_numpy(), x["_again"].to_numpy()
    prior = float(hit.mean()) if hit.size else 0.0
    group = np.full(n_items, -1, dtype=np.int64)
    if groups is not None:
        given = np.asarray(groups, dtype=np.int64)[:n_items]
        group[:given.size] = given
    g = group[item]
    known = g >= 0
    size = int(group.max()) + 1 if group.size else 0
    per_group = ((np.bincount(g[known], hit[known], size) + strength * prior)
                 / (np.bincount(g[known], minlength=size) + strength))
    group_rate = np.where(group >= 0, per_group[np.maximum(group, 0)] if size else prior, prior)
    item_rate = ((np.bincount(item, hit, n_items) + strength * group_rate)
                 / (np.bincount(item, minlength=n_items) + strength))
    return np.column_stack([item_rate, group_rate]), prior


def cuts(rows: pl.DataFrame, max_back: int = 8, min_history: int = 2) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """For ``back`` = 1 … ``max_back``, the basket ``rows`` (as :func:`basket_rows` gives them) cut
    before each user's ``back``-th newest basket, of the users with at least ``min_history``
    baskets before it: ``(before, following)``, the rows before the cut with their ages and counts
    as of the cut, and the rows of the basket that follows it. Stops at the first empty cut.

    >>> rows = pl.DataFrame({"user_idx": [0, 0, 0], "item_idx": [5, 6, 5], "_age": [0, 1, 2], "_n": [3] * 3,
    ...                      "_day": [9.0, 5.0, 1.0]})
    >>> [(b["item_idx"].to_list(), b["_age"].to_list(), f["item_idx"].to_list()) for b, f in cuts(rows)]
    [([6, 5], [0, 1], [5])]
    """
    for back in range(1, max_back + 1):
        cut = rows.filter(pl.col("_n") - back >= min_history)
        if cut.height == 0:
            return
        yield (cut.filter(pl.col("_age") >= back).with_columns(pl.col("_age") - back, pl.col("_n") - back),
               cut.filter(pl.col("_age") == back - 1))


def training_rows(rows: pl.DataFrame, popularity: np.ndarray, max_back: int = 8, min_history: int = 2,
                  max_rows: int = 1_000_000, groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: each user's history cut before each of their last ``max_back`` baskets, keeping
    at least ``min_history`` baskets before the cut; X holds the :data:`TREE_FEATURES` of every
    item before the cut (the rates from every user's baskets before their cut, ``groups`` the
    items' catalogue groups), y is 1 where the next basket holds it. At most ``max_rows`` rows: the newest
    cuts first, and the cut that would pass the bound keeps whole users, in a fixed pseudo-random
    order, while they fit (so memory stays bounded on a large history).

    >>> rows = pl.DataFrame({"user_idx": [0, 0, 0, 0], "item_idx": [5, 5, 6, 5], "_age": [0, 1, 1, 2],
    ...                      "_n": [3] * 4, "_day": [9.0, 5.0, 5.0, 1.0]})
    >>> X, y = training_rows(rows, np.zeros(7), max_back=2)
    >>> y.tolist()  # cut before basket 0: items 5 and 6, and 5 is bought next
    [1.0, 0.0]
    """
    xs, ys, total = [], [], 0
    for before, following in cuts(rows, max_back, min_history):
        if total >= max_rows:
            break
        bought = following.select("user_idx", "item_idx", pl.lit(1.0).alias("_y"))
        now = following.group_by("user_idx").agg(pl.col("_day").min().alias("_now"))  # the next basket's time
        f = (repeat_features(before, popularity, now).join(bought, on=["user_idx", "item_idx"], how="left")
             .sort("user_idx", "item_idx"))
        full = f.height
        if full > max_rows - total:
            f = f.filter(pl.col("user_idx").is_in(users_that_fit(f, max_rows - total).implode()))
        total += f.height
        rates = next_rates(before, groups, popularity.size)[0][f["item_idx"].to_numpy()]
        xs.append(np.hstack([f.select(FEATURES).to_numpy().astype(np.float64), rates]))
        ys.append(f["_y"].fill_null(0.0).to_numpy())
        if f.height < full:  # the bound is reached: no older cut
            break
    if not xs:
        return np.zeros((0, len(TREE_FEATURES))), np.zeros(0)
    return np.vstack(xs), np.concatenate(ys)


def users_that_fit(f: pl.DataFrame, room: int) -> pl.Series:
    """The users of ``f`` whose rows, taken whole in a fixed pseudo-random order of users
    (Knuth's multiplicative hash of ``user_idx``), add up to at most ``room``."""
    per = (f.group_by("user_idx").len()
           .with_columns(((pl.col("user_idx").cast(pl.Int64) * 2654435761) % 4294967296).alias("_h"))
           .sort("_h", "user_idx"))
    return per.filter(pl.col("len").cum_sum() <= room)["user_idx"]


def expand(x: np.ndarray) -> np.ndarray:
    """The model's inputs: the features and log(1 + |feature|)."""
    return np.hstack([x, np.log1p(np.abs(x))])


@dataclass
class RepeatModel:
    """A logistic regression of "bought again in the next basket" on the repeat features (see the
    module doc); ``mean`` / ``scale`` standardise the expanded inputs; ``features``: the inputs it
    reads, :data:`FEATURES` (or, saved by an older version, :data:`HISTORY_FEATURES`)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    features: tuple[str, ...] = FEATURES

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 25,
            features: tuple[str, ...] = FEATURES) -> RepeatModel | None:
        """Newton's method on the mean log-loss + ``l2`` / 2 · |coef|² / rows, the columns of ``x``
        being ``features``; None where ``y`` holds a single class (nothing to learn)."""
        if x.shape[0] == 0 or y.min() == y.max():
            return None
        z = expand(x)
        mean, scale = z.mean(axis=0), z.std(axis=0)
        scale[scale == 0] = 1.0
        a = np.hstack([(z - mean) / scale, np.ones((z.shape[0], 1))])
        w = np.zeros(a.shape[1])
        reg = np.full(a.shape[1], l2)
        reg[-1] = 0.0  # the intercept is not penalised
        for _ in range(iterations):
            p = expit(a @ w)
            grad = a.T @ (p - y) + reg * w
            hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(reg) + 1e-9 * np.eye(a.shape[1])
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls(mean, scale, w[:-1], float(w[-1]), tuple(features))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(bought again in the next basket) of each row of features (the columns of :attr:`features`)."""
        logits = ((expand(x) - self.mean) / self.scale) @ self.coef + self.intercept
        return expit(logits)

    def to_dict(self) -> dict:
        return {"features": list(self.features), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: Path) -> RepeatModel:
        d = json.loads(path.read_text())
        features = tuple(d.get("features", ()))
        if features not in (FEATURES, HISTORY_FEATURES):
            raise ConfigError(f"{path}: a repeat model of features {d.get('features')}, not {list(FEATURES)}; "
                              "rebuild the artifact with this version (`recsys build-index`)")
        return cls(np.asarray(d["mean"]), np.asarray(d["scale"]), np.asarray(d["coef"]), float(d["intercept"]),
                   features)


@dataclass
class RepeatTrees:
    """Gradient-boosted trees (LightGBM's binary objective) of "bought again in the next basket" on
    the :data:`TREE_FEATURES`; ``model``: LightGBM's own text form of them, read into a booster on
    the first prediction (so that loading an engine that never ranks own items costs nothing);
    ``prior``: every item's rate of coming back in the next basket (the rates of an item added
    later). Saved as a JSON file holding the text model."""

    model: str
    prior: float
    features: tuple[str, ...] = TREE_FEATURES

    def __post_init__(self) -> None:
        self._booster = None

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, prior: float, rounds: int = 300, leaves: int = 15,
            learning_rate: float = 0.05, min_rows_in_leaf: int = 100, seed: int = 0) -> RepeatTrees | None:
        """``rounds`` trees of at most ``leaves`` leaves, each leaf holding at least
        ``min_rows_in_leaf`` rows, shrunk by ``learning_rate``; one thread and LightGBM's
        deterministic mode, so the same rows and ``seed`` give the same trees. None where ``y``
        holds a single class (nothing to learn)."""
        if x.shape[0] == 0 or y.min() == y.max():
            return None
        lgb = _lightgbm()
        params = {"objective": "binary", "learning_rate": learning_rate, "num_leaves": leaves,
                  "min_data_in_leaf": min_rows_in_leaf, "seed": seed, "deterministic": True, "force_row_wise": True,
                  "num_threads": 1, "verbose": -1}
        booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=rounds)
        out = cls(booster.model_to_string(), prior)
        out._booster = booster
        return out

    @property
    def booster(self):
        """The trees as a ``lightgbm.Booster``."""
        if self._booster is None:
            self._booster = _lightgbm().Booster(model_str=self.model)
        return self._booster

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(bought again in the next basket) of each row of features (the columns of :attr:`features`)."""
        if x.shape[0] == 0:
            return np.zeros(0)
        return self.booster.predict(np.asarray(x, dtype=np.float64), num_threads=1)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"kind": "lightgbm", "features": list(self.features), "prior": self.prior,
                                    "booster": self.model}) + "\n")

    @classmethod
    def load(cls, path: Path) -> RepeatTrees:
        d = json.loads(path.read_text())
        if d.get("kind") != "lightgbm" or tuple(d.get("features", ())) != TREE_FEATURES:
            raise ConfigError(f"{path}: a repeat model of features {d.get('features')}, not {list(TREE_FEATURES)}; "
                              "rebuild the artifact with this version (`recsys build-index`)")
        return cls(str(d["booster"]), float(d["prior"]))


def _lightgbm():
    """LightGBM, imported when trees are fitted or loaded: its import takes a second or two, which
    every command that never reads these trees would otherwise pay."""
    import lightgbm

    return lightgbm
