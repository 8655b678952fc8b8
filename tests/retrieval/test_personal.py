"""Popularity (time-decayed) and the top-n the model-free sources share."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from recsys.retrieval.personal import popularity_scores, top_n
from recsys.schema import EventWeights

D = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)


def test_popularity_halves_every_half_life():
    ev = pl.DataFrame({"item_idx": [0, 0, 1, 2], "event": ["view", "purchase", "cart", "click"],
                       "timestamp": [D, D - dt.timedelta(days=10), D - dt.timedelta(days=20), D]})
    got = popularity_scores(ev, 4, EventWeights(), half_life_days=10)
    assert got.tolist() == pytest.approx([1 + 8 * 0.5, 4 * 0.25, 2, 0])


def test_top_n_orders_excludes_and_pads():
    ids, scores = top_n(np.array([[0.0, 3.0, 1.0, 3.0], [0.0, 0.0, 0.0, 2.0]]), 3, [np.array([]), np.array([3])])
    assert ids.tolist() == [[1, 3, 2], [-1, -1, -1]]  # ties by the smaller id; zero scores are not candidates
    assert scores[0].tolist() == [3.0, 3.0, 1.0] and np.isneginf(scores[1]).all()
    ids, _ = top_n(np.ones((1, 2)), 4)
    assert ids.tolist() == [[0, 1, -1, -1]]
