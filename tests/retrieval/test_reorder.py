"""The reorder source: the user's own items ranked by a model of when items are bought again."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from recsys.errors import ConfigError
from recsys.retrieval.sources.reorder import ReorderConfig, ReorderSource
from recsys.schema import EventWeights
from recsys.sources import Batch, History, Space

D = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)


def shop(n_users=30, n_baskets=6):
    """Every user buys staple item 0 in every basket and one new item per basket (items 1...): a
    staple always comes back, a one-off never does."""
    rows = []
    for u in range(n_users):
        for b in range(n_baskets):
            t = D + dt.timedelta(days=7 * b)
            rows += [(u, 0, t, f"{u}-{b}"), (u, 1 + b, t + dt.timedelta(minutes=1), f"{u}-{b}")]
    return pl.DataFrame(rows, schema=["user_idx", "item_idx", "timestamp", "session_id"], orient="row").with_columns(
        pl.lit("purchase").alias("event"))


def answer(src, events, space, include_seen=True, allowed=None):
    batch = Batch(History(events, np.arange(space.n_users), space), np.array([0]))
    ids, scores = src.candidates(batch, 10, include_seen, allowed)
    return ids[0][ids[0] >= 0].tolist(), scores[0][ids[0] >= 0].tolist()


def test_it_learns_that_the_staple_comes_back():
    ev = shop()
    space = Space(n_users=30, n_items=8, weights=EventWeights())
    src = ReorderSource(space).fit(ev, ("train",))
    assert src.fit_info.parts == ("train",) and src.fit_info.events == ev.height
    ids, scores = answer(src, ev, space)
    # the staple first, far ahead of the one-offs, which never came back
    assert ids[0] == 0 and scores[0] > 0.9 and max(scores[1:]) < 0.1
    assert sorted(ids) == [0, 1, 2, 3, 4, 5, 6]  # the user's own items only
    assert answer(src, ev, space, include_seen=False) == ([], [])
    allowed = np.ones(8, dtype=bool)
    allowed[0] = False
    assert 0 not in answer(src, ev, space, allowed=allowed)[0]


def test_before_it_learns_it_ranks_by_baskets_decayed_by_age():
    ev = shop(n_users=1, n_baskets=3)
    space = Space(n_users=1, n_items=8, weights=EventWeights())
    src = ReorderSource(space, ReorderConfig(min_history=5)).fit(ev)  # no user has 5 baskets before a cut
    assert src.model is None
    # item 0 in baskets of age 0, 1, 2: 1 + 0.7 + 0.49; item 3 in the newest basket: 1; 2: 0.7; 1: 0.49
    ids, scores = answer(src, ev, space)
    assert ids == [0, 3, 2, 1] and scores == pytest.approx([1 + 0.7 + 0.49, 1.0, 0.7, 0.49])


def test_saved_and_loaded_it_answers_the_same(tmp_path):
    ev = shop()
    space = Space(n_users=30, n_items=8, weights=EventWeights())
    src = ReorderSource(space).fit(ev)
    src.save(tmp_path)
    back = ReorderSource.load(tmp_path, space)
    assert back.config == src.config and answer(back, ev, space) == answer(src, ev, space)
    assert ReorderSource.load(None, space) is None  # an artifact built without it has none
    assert back.add_items(2) and back.popularity.shape == (10,)


def test_bad_config_names_the_knob():
    with pytest.raises(ConfigError, match=r"reorder max_back=0, min_history=2, l2=1.0, max_rows=1000000: give max_back ≥ 1"):
        ReorderConfig(max_back=0)


def test_the_same_events_in_another_order_give_the_same_scores_to_the_bit():
    ev = shop()
    space = Space(n_users=30, n_items=8, weights=EventWeights())
    a = ReorderSource(space).fit(ev)
    b = ReorderSource(space).fit(ev.sample(fraction=1.0, shuffle=True, seed=3))
    assert np.array_equal(a.model.coef, b.model.coef) and a.model.intercept == b.model.intercept
    assert (a.score_matrix(ev, 30) != b.score_matrix(ev.reverse(), 30)).nnz == 0
