"""Popularity (time-decayed) and the top-n the model-free sources share."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsys.retrieval.personal import popularity_scores, top_n, top_n_sparse
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


def _by_sorting(dense: np.ndarray, n: int, exclude, allowed):
    """The reference: each row's positive, allowed, not excluded scores sorted by (-score, id)."""
    ids = np.full((dense.shape[0], n), -1)
    scores = np.full((dense.shape[0], n), -np.inf, dtype=np.float32)
    for r, row in enumerate(dense):
        best = sorted((-v, i) for i, v in enumerate(row) if v > 0 and allowed[i] and i not in set(exclude[r]))[:n]
        ids[r, :len(best)] = [i for _, i in best]
        scores[r, :len(best)] = [-v for v, _ in best]
    return ids, scores


def test_sparse_top_n_answers_as_sorting_each_row():
    rng = np.random.default_rng(0)
    dense = np.where(rng.random((40, 300)) < 0.05, rng.random((40, 300)) - 0.2, 0.0)  # some negative entries too
    dense[3, [7, 9, 11]] = 0.9  # ties inside the top n: the smaller id first
    exclude = [rng.choice(300, 4, replace=False) for _ in range(40)]
    allowed = rng.random(300) < 0.8
    for n in (1, 3, 5, 30):
        ids, scores = top_n_sparse(sp.csr_matrix(dense), n, exclude, allowed)
        want_ids, want_scores = _by_sorting(dense, n, exclude, allowed)
        assert ids.tolist() == want_ids.tolist()
        assert scores.tolist() == want_scores.tolist()
    assert top_n_sparse(sp.csr_matrix(dense), 5)[0][3, :3].tolist() == [7, 9, 11]
    assert top_n(dense, 5, exclude)[0].tolist() == top_n_sparse(sp.csr_matrix(dense), 5, exclude)[0].tolist()


def test_sparse_top_n_keeps_the_smaller_ids_at_a_tie_across_the_cut_and_pads():
    m = sp.csr_matrix(np.array([[0.0, 1.0, 1.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0, 0.0]]))
    ids, scores = top_n_sparse(m, 3)
    assert ids.tolist() == [[4, 1, 2], [-1, -1, -1]]
    assert scores[0].tolist() == [2.0, 1.0, 1.0] and np.isneginf(scores[1]).all()
    ids, _ = top_n_sparse(sp.csr_matrix((0, 5)), 3)
    assert ids.shape == (0, 3)
    ids, _ = top_n_sparse(m, 7, [np.array([4]), np.array([], dtype=np.int64)])  # more places than items
    assert ids[0].tolist() == [1, 2, 3, -1, -1, -1, -1]
