"""Reranker training lists: at sampled (user, decision time) points, the retrieval stage's
candidates for the history before that time, labelled by what the user did next.

For a user and a decision time ``t`` (the time of one of the user's events, never the first two):

- the history is the user's events strictly before ``t``: it gives the context text, the
  candidates (every source, fused, as at serving time) and the "seen" feature;
- the labels come from the user's events in ``[t, t + horizon]``: a candidate is a *click* if the
  user touched it then, a *purchase* if the event was a purchase (or a rating of 4 or more,
  or any event weighing at least a purchase).

Nothing after ``t`` enters the history side. The models that propose the candidates were trained
on the whole training period, as at serving time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from .features import candidate_features, context_text


@dataclass
class RerankLists:
    """One row per (user, decision time): candidates, their features, labels and the context."""

    users: np.ndarray  # (L,) internal user indices
    cuts: list  # (L,) decision times
    contexts: list[str]
    items: np.ndarray  # (L, n) internal item ids, -1 pad (best first by the fused score)
    features: np.ndarray  # (L, n, F)
    click: np.ndarray  # (L, n) 0/1
    purchase: np.ndarray  # (L, n) 0/1

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, rows: np.ndarray) -> RerankLists:
        rows = np.asarray(rows, dtype=np.int64)
        return RerankLists(self.users[rows], [self.cuts[r] for r in rows], [self.contexts[r] for r in rows],
                           self.items[rows], self.features[rows], self.click[rows], self.purchase[rows])


def strong_events(events: pl.DataFrame, weights, value_kind: str | None) -> pl.Expr:
    """True for events that count as a purchase (see the module doc)."""
    names = weights.names()
    purchase_w = weights.weight("purchase") if "purchase" in names else max(w for _, w in weights.weights)
    strong = weights.expr().fill_null(0.0) >= purchase_w
    if value_kind == "rating" and "value" in events.columns:
        strong = pl.when(pl.col("event") == "rating").then(pl.col("value").fill_null(0.0) >= 4.0).otherwise(strong)
    return strong


def sample_cuts(events: pl.DataFrame, per_user: int, seed: int, min_before: int = 2) -> pl.DataFrame:
    """Up to ``per_user`` decision times per user among the times of their events, skipping each
    user's first ``min_before`` distinct times (``user_idx``, ``cut``)."""
    times = events.select("user_idx", "timestamp").unique().sort("user_idx", "timestamp")
    times = times.with_columns(pl.col("timestamp").rank("ordinal").over("user_idx").alias("_n"))
    eligible = times.filter(pl.col("_n") > min_before)
    rng = np.random.default_rng(seed)
    eligible = eligible.with_columns(pl.Series("_r", rng.random(eligible.height)))
    picked = eligible.sort("user_idx", "_r").group_by("user_idx", maintain_order=True).head(per_user)
    return picked.select("user_idx", pl.col("timestamp").alias("cut")).sort("user_idx", "cut")


def build_lists(rec, cuts: pl.DataFrame, include_seen: bool, horizon: dt.timedelta = dt.timedelta(hours=1),
                batch_size: int = 512, context_items: int = 8) -> RerankLists:
    """Candidates, features, labels and contexts for every (user_idx, cut) row of ``cuts``.

    ``rec`` is a :class:`~recsys.retrieval.recommender.Recommender` whose history holds the
    events both sides of the cuts (the labels are read from it too).
    """
    h = rec.history
    strong = strong_events(h, rec.weights, rec.value_kind)
    future = (h.join(cuts.with_row_index("_row"), on="user_idx", how="inner")
              .filter((pl.col("timestamp") >= pl.col("cut")) & (pl.col("timestamp") <= pl.col("cut") + horizon))
              .group_by("_row", "item_idx").agg(strong.any().alias("strong")))
    users = cuts["user_idx"].to_numpy().astype(np.int64)
    times = cuts["cut"].to_list()
    n = rec.fusion.n_candidates
    items = np.full((len(users), n), -1, dtype=np.int64)
    feats = None
    contexts: list[str] = []
    for s in range(0, len(users), batch_size):
        p = rec.profiles_at(users[s:s + batch_size], np.array(times[s:s + batch_size], dtype=object))
        c = rec.fuse(rec.source_lists(p, include_seen))
        seen = rec._seen(p)
        f = candidate_features(c, rec.popular, seen)
        feats = np.zeros((len(users), n, f.shape[2]), dtype=np.float32) if feats is None else feats
        items[s:s + batch_size], feats[s:s + batch_size] = c.items, f
        ev = p.events.sort("user_idx", "timestamp", maintain_order=True)
        per_row = ev.group_by("user_idx", maintain_order=True).agg(pl.col("item_idx").tail(context_items),
                                                                   pl.col("event").tail(context_items))
        ctx = dict(zip(per_row["user_idx"].to_list(), zip(per_row["item_idx"].to_list(), per_row["event"].to_list())))
        for r in range(len(p.rows)):
            its, evs = ctx.get(r, ([], []))
            contexts.append(context_text([rec.titles[i] for i in its], evs, context_items))
    click = np.zeros(items.shape, dtype=np.float32)
    purchase = np.zeros(items.shape, dtype=np.float32)
    if future.height:
        lookup = {(r, i): st for r, i, st in future.select("_row", "item_idx", "strong").iter_rows()}
        for r in range(len(users)):
            for j in np.flatnonzero(items[r] >= 0):
                label = lookup.get((r, int(items[r, j])))
                if label is not None:
                    click[r, j] = 1.0
                    purchase[r, j] = float(label)
    if feats is None:
        feats = np.zeros((0, n, 0), dtype=np.float32)
    return RerankLists(users, times, contexts, items, feats, click, purchase)
