"""TIFU-KNN basket vectors and neighbours (recsys.baskets), worked out by hand."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsys.baskets import basket_vectors, nearest, neighbour_mean, unit_rows
from recsys.schema import EventWeights

D = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)


def events():
    # user 0: sessions a, b, c (oldest first); user 1: no session ids, so each day is a basket
    return pl.DataFrame({
        "user_idx": [0, 0, 0, 0, 0, 1, 1, 1],
        "item_idx": [5, 5, 6, 6, 5, 5, 5, 2],
        "event": ["purchase", "purchase", "view", "cart", "cart", "purchase", "purchase", "view"],
        "timestamp": [D, D + dt.timedelta(days=30), D + dt.timedelta(days=30), D + dt.timedelta(days=30, minutes=1),
                      D + dt.timedelta(days=31), D, D + dt.timedelta(hours=30), D + dt.timedelta(hours=31)],
        "session_id": ["a", "b", "b", "b", "c", None, None, None],
    })


def test_basket_weights_by_age_group_and_event():
    m = basket_vectors(events(), 2, 7, EventWeights(), group_size=2, within_decay=0.5, group_decay=0.25).toarray()
    # user 0: baskets c (age 0), b (age 1) form the newest group (size 2), a (age 2) the oldest (size 1);
    # two groups, so every basket also weighs 1/2. Item 5: purchase in a, purchase in b, cart in c.
    a, b, c = 1 / 1 * 0.25 / 2, 0.5 / 2 * 1 / 2, 1 / 2 * 1 / 2
    assert m[0, 5] == pytest.approx(8 * a + 8 * b + 4 * c)
    assert m[0, 6] == pytest.approx(4 * b)  # viewed then carted in b: the strongest event counts, once
    # user 1: days 1 and 2 (the purchase and the view on the second day share its basket), one group
    assert m[1, 5] == pytest.approx(8 * 0.5 / 2 + 8 * 1 / 2)
    assert m[1, 2] == pytest.approx(1 * 1 / 2)
    assert basket_vectors(events().clear(), 2, 7, EventWeights()).nnz == 0


def test_plain_baskets_count_each_item_once():
    m = basket_vectors(events(), 2, 7, None, group_size=3, within_decay=0.5, group_decay=0.25).toarray()
    assert m[0, 5] == pytest.approx(0.25 / 3 + 0.5 / 3 + 1 / 3)  # three baskets in one group of three
    assert m[0, 6] == pytest.approx(0.5 / 3)


def test_neighbours_are_the_k_most_similar_and_never_the_user():
    others = sp.csr_matrix(np.array([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.1]]))
    unit = unit_rows(others)
    own = others[[0]]
    got = neighbour_mean(own, others, unit, 2, np.array([0])).toarray()
    assert got[0].tolist() == pytest.approx([(1 + 1) / 2, 1 / 2, 0.1 / 2])  # rows 3 (cos ≈ 0.995) and 1 (≈ 0.707)
    # without a stored row of its own, the user is its own nearest neighbour
    assert neighbour_mean(own, others, unit, 1).toarray()[0].tolist() == pytest.approx([2.0, 0.0, 0.0])
    assert nearest(np.array([[0.0, 0.0, 0.0]]), 2)[1].tolist() == [0, 1]  # ties: the smaller index first
