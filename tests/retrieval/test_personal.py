"""Popularity (time-decayed) and repeat (the user's own recent frequent items) sources."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from recsys.retrieval.personal import popularity_scores, repeat_scores, top_n
from recsys.schema import EventWeights

D = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)


def test_popularity_halves_every_half_life():
    ev = pl.DataFrame({"item_idx": [0, 0, 1, 2], "event": ["view", "purchase", "cart", "click"],
                       "timestamp": [D, D - dt.timedelta(days=10), D - dt.timedelta(days=20), D]})
    got = popularity_scores(ev, 4, EventWeights(), half_life_days=10)
    assert got.tolist() == pytest.approx([1 + 8 * 0.5, 4 * 0.25, 2, 0])


def test_repeat_decays_by_visits_not_days():
    # user 0: three sessions (oldest a, then b, then c); user 1: no session ids, so each day is a visit
    ev = pl.DataFrame({
        "user_idx": [0, 0, 0, 0, 1, 1],
        "item_idx": [5, 5, 6, 5, 5, 5],
        "event": ["purchase", "purchase", "view", "cart", "purchase", "purchase"],
        "timestamp": [D, D + dt.timedelta(days=30), D + dt.timedelta(days=30), D + dt.timedelta(days=31),
                      D, D + dt.timedelta(hours=30)],
        "session_id": ["a", "b", "b", "c", None, None],
    })
    m = repeat_scores(ev, 2, 7, EventWeights(), decay=0.5).toarray()
    assert m[0, 5] == pytest.approx(8 * 0.25 + 8 * 0.5 + 4)  # sessions a (age 2), b (age 1), c (age 0)
    assert m[0, 6] == pytest.approx(1 * 0.5)
    assert m[1, 5] == pytest.approx(8 * 0.5 + 8)  # two different days
    assert repeat_scores(ev.clear(), 2, 7, EventWeights()).nnz == 0


def test_top_n_orders_excludes_and_pads():
    ids, scores = top_n(np.array([[0.0, 3.0, 1.0, 3.0], [0.0, 0.0, 0.0, 2.0]]), 3, [np.array([]), np.array([3])])
    assert ids.tolist() == [[1, 3, 2], [-1, -1, -1]]  # ties by the smaller id; zero scores are not candidates
    assert scores[0].tolist() == [3.0, 3.0, 1.0] and np.isneginf(scores[1]).all()
    ids, _ = top_n(np.ones((1, 2)), 4)
    assert ids.tolist() == [[0, 1, -1, -1]]
