"""ALS candidates: confidence from event weights and values, fold-in, save/load without pickle."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsys.errors import ConfigError
from recsys.retrieval.als import ALSCandidates, ALSConfig, confidence_matrix
from recsys.schema import EventWeights

T = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def events(rows):
    return pl.DataFrame(rows, schema=["user_idx", "item_idx", "event", "value"], orient="row")


def test_confidence_sums_event_weights_times_values():
    ev = events([(0, 0, "view", None), (0, 0, "cart", None), (0, 2, "purchase", 3.0), (1, 1, "click", 5.0)])
    w = EventWeights()
    # without a value kind the values are ignored: view 1 + cart 4; purchase 8; click 2
    assert confidence_matrix(ev, 2, 3, w).toarray().tolist() == [[1 + 4, 0, 8], [0, 2, 0]]
    # quantities (and ratings) multiply the weight; a price would not
    assert confidence_matrix(ev, 2, 3, w, "quantity").toarray().tolist() == [[1 + 4, 0, 8 * 3], [0, 2 * 5, 0]]
    assert confidence_matrix(ev, 2, 3, w, "price").toarray().tolist() == [[5, 0, 8], [0, 2, 0]]
    custom = EventWeights.from_dict({"view": 0.5})
    assert confidence_matrix(ev, 2, 3, custom)[0, 0] == 0.5 + 4


def block_data(n_users=60, n_items=20, seed=0):
    """Two groups of users, each buying from its own half of the catalogue."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(n_users):
        half = u % 2
        for i in rng.choice(n_items // 2, 5, replace=False):
            rows.append(u)
            cols.append(i + half * n_items // 2)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))


def test_als_recommends_from_the_users_block_and_excludes_seen():
    m = block_data()
    als = ALSCandidates(ALSConfig(factors=2, iterations=15, regularization=0.1), use_gpu=False).fit(m)
    ids, scores = als.recommend(np.arange(10), m[:10], n=3)
    for u in range(10):
        half = u % 2
        assert all(half * 10 <= i < half * 10 + 10 for i in ids[u]), (u, ids[u])
        assert not set(ids[u]) & set(m[u].indices)
        assert np.all(np.diff(scores[u]) <= 0)
    kept, _ = als.recommend(np.arange(2), m[:2], n=20, exclude_seen=False)
    assert set(m[0].indices) <= set(kept[0])
    # asking for more than the catalogue pads with -1 / -inf
    ids, scores = als.recommend(np.array([0]), m[:1], n=25)
    assert (ids[0, 15:] == -1).all() and np.isneginf(scores[0, 15:]).all()


def test_fold_in_reflects_fresh_events():
    m = block_data()
    als = ALSCandidates(ALSConfig(factors=2, iterations=15, regularization=0.1), use_gpu=False).fit(m)
    stored, _ = als.recommend(np.array([0]), m[:1], n=5, exclude_seen=False)
    same, _ = als.recommend(np.array([0]), m[:1], n=5, exclude_seen=False, recalculate=True)
    assert stored.tolist() == same.tolist()  # folding in the same row gives the stored answer
    # user 0 (group 0) now buys many group-1 items: folded in, the top items move to group 1
    row = m[:1].tolil()
    row[0, 10:20] = 5.0
    moved, _ = als.recommend(np.array([0]), row.tocsr(), n=3, exclude_seen=False, recalculate=True)
    assert all(i >= 10 for i in moved[0])
    # a user the factors never saw is served from the row alone
    new = sp.csr_matrix(([1.0, 1.0], ([0, 0], [11, 12])), shape=(1, 20), dtype=np.float32)
    ids, _ = als.recommend(np.array([-1]), new, n=3, recalculate=True)
    assert all(i >= 10 for i in ids[0]) and not {11, 12} & set(ids[0])


def test_save_load_roundtrip_without_pickle(tmp_path):
    m = block_data()
    als = ALSCandidates(ALSConfig(factors=4, iterations=3, weighting="bm25"), use_gpu=False).fit(m)
    als.save(tmp_path / "als")
    assert sorted(p.name for p in (tmp_path / "als").iterdir()) == ["config.json", "item_factors.npy", "user_factors.npy"]
    back = ALSCandidates.load(tmp_path / "als")
    assert back.cfg == als.cfg
    a = als.recommend(np.arange(5), m[:5], n=4)
    b = back.recommend(np.arange(5), m[:5], n=4)
    assert a[0].tolist() == b[0].tolist() and np.allclose(a[1], b[1])


def test_bad_config():
    with pytest.raises(ConfigError, match="ALS weighting 'idf': use one of none, bm25, tfidf"):
        ALSConfig(weighting="idf")
