"""Reranker training lists: at sampled (user, decision time) points, the retrieval stage's
candidates for the history before that time, labelled by what the user did next.

A decision point is one of the user's events (never among their first two), at time ``t``, with
``n_before`` of the user's events before it in time order (ties in the order the splits use, so
events sharing a second — common in rating data — fall on the side the splits put them):

- the history is those ``n_before`` events: it gives the context text, the candidates (every
  source, fused, as at serving time) and the "seen" feature;
- the labels come from the user's events from the decision point on, up to ``t + horizon``: a
  candidate is a *click* if the user touched it then, a *purchase* if the event was a purchase
  (or a rating of 4 or more, or any event weighing at least a purchase).

Nothing from the decision point on enters the history side, nor the features (popularity is
taken as it stood then). Which models propose the candidates is the caller's choice: engines from
the stage provider (:mod:`.provider`), whose models never learnt the lists' labels.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from recsys.rerank.features import context_text
from recsys.rerank.lists import RerankLists
from recsys.retrieval.personal import popularity_as_of
from recsys.schema import strong_events
from recsys.sources import request_times


def sample_cuts(events: pl.DataFrame, per_user: int, seed: int, min_before: int = 2) -> pl.DataFrame:
    """Up to ``per_user`` decision points per user, each one of the user's events after their first
    ``min_before``: (``user_idx``, ``n_before``: how many of the user's events precede it in time
    order, ``cut``: its time). ``events`` must be sorted by user and time (a Recommender's history)."""
    ev = events.select("user_idx", "timestamp").with_columns(pl.int_range(pl.len()).over("user_idx").alias("n_before"))
    eligible = ev.filter(pl.col("n_before") >= min_before)
    rng = np.random.default_rng(seed)
    eligible = eligible.with_columns(pl.Series("_r", rng.random(eligible.height)))
    picked = eligible.sort("user_idx", "_r").group_by("user_idx", maintain_order=True).head(per_user)
    return picked.select("user_idx", "n_before", pl.col("timestamp").alias("cut")).sort("user_idx", "n_before")


def validation_cuts(rec, valid_events: pl.DataFrame) -> pl.DataFrame:
    """One decision point per user with validation events, just before the first of them: the
    history is every earlier event (as the validation stage sees it), the labels the validation
    events in the horizon. ``rec``'s history must hold the validation events."""
    per_valid = valid_events.group_by("user_id").agg(pl.len().alias("_v"), pl.col("timestamp").min().alias("cut"))
    per_user = rec.history.group_by("user_idx", "user_id").agg(pl.len().alias("_n"))
    # the validation events are each user's last ones in the history (the split's time order)
    return (per_user.join(per_valid, on="user_id").select("user_idx", (pl.col("_n") - pl.col("_v")).alias("n_before"), "cut")
            .sort("user_idx"))


def build_lists(rec, cuts: pl.DataFrame, include_seen: bool, horizon: dt.timedelta = dt.timedelta(hours=1),
                batch_size: int = 512, context_items: int = 8, popularity_as_of_cut: bool = True) -> RerankLists:
    """Candidates, features, labels and contexts for every row of ``cuts`` (``user_idx``,
    ``n_before``, ``cut``; see :func:`sample_cuts`).

    ``rec`` is a :class:`~recsys.retrieval.recommender.Recommender` whose history holds the
    events both sides of the cuts (the labels are read from it too): row r's history is the user's
    first ``n_before`` events, its labels the events from there on up to ``cut + horizon``.
    ``popularity_as_of_cut``: each candidate's popularity counts the events before its row's cut
    (cuts inside the history, whose later events are labels); False: ``rec``'s own, for a stage's
    lists whose popularity :meth:`~recsys.retrieval.recommender.Recommender.count_from` set to what
    the stage's engine serves.
    """
    h = rec.history
    strong = strong_events(h, rec.weights, rec.value_kind)
    future = (rec.positions().with_columns(strong.alias("_strong")).join(cuts.with_row_index("_row"), on="user_idx")
              .filter((pl.col("_pos") >= pl.col("n_before")) & (pl.col("timestamp") <= pl.col("cut") + horizon))
              .group_by("_row", "item_idx").agg(pl.col("_strong").any().alias("strong")))
    users = cuts["user_idx"].to_numpy().astype(np.int64)
    times = cuts["cut"].to_list()
    lengths = cuts["n_before"].to_numpy().astype(np.int64)
    at = request_times(cuts["cut"], len(users))  # the decision point is the request
    n = rec.fusion.n_candidates
    items = np.full((len(users), n), -1, dtype=np.int64)
    popularity = rec.feature_names().index("log_popularity")
    feats = None
    contexts: list[str] = []
    for s in range(0, len(users), batch_size):
        batch = rec.prefix_batch(users[s:s + batch_size], lengths[s:s + batch_size], at[s:s + batch_size])
        c = rec.candidates(batch, include_seen)
        f = rec.features(batch, c)
        if popularity_as_of_cut:  # as it stood at each cut: the stored popularity counts the labels themselves
            f[:, :, popularity] = np.log1p(popularity_as_of(h, rec.weights, c.items,
                                                            np.array(times[s:s + batch_size], dtype=object)))
        f[c.items < 0] = 0.0
        feats = np.zeros((len(users), n, f.shape[2]), dtype=np.float32) if feats is None else feats
        items[s:s + batch_size], feats[s:s + batch_size] = c.items, f
        contexts += [context_text(titles, events, context_items) for titles, events in rec.contexts(batch, context_items)]
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
    return RerankLists(users, times, contexts, items, feats, click, purchase, rec.feature_names())


def stage_lists(rec, stage, include_seen: bool, horizon: dt.timedelta = dt.timedelta(hours=1),
                limit: int | None = None) -> RerankLists:
    """A stage's lists (:class:`~recsys.pipeline.provider.StageData`), as the funnel sees it: each user
    with a history, the stage's history as theirs and its targets as labels; ``rec``'s history is
    replaced and its popularity and transitions count no target. ``rec`` should be that stage's engine
    (:func:`~recsys.pipeline.provider.stage_engine`), whose models never learnt the targets."""
    rec.set_history(pl.concat([stage.history, stage.targets]))
    rec.count_from(stage.history)
    cuts = validation_cuts(rec, stage.targets).filter(pl.col("n_before") > 0)
    return build_lists(rec, cuts if limit is None else cuts.head(limit), include_seen, horizon,
                       popularity_as_of_cut=False)
