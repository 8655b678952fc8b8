"""Metrics with expected values worked out by hand."""

import math

import numpy as np
import pytest

from recsys.eval.metrics import (
    coverage_at_k,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    novelty_at_k,
    paired_bootstrap,
    per_user,
    recall_at_k,
)

L2 = math.log2


def test_recall_several_targets_and_fewer_than_k():
    assert recall_at_k([5, 1, 9, 2], {1, 2, 7}, k=2) == 1 / 3
    assert recall_at_k([5, 1, 9, 2], {1, 2, 7}, k=4) == 2 / 3
    assert recall_at_k([1], {1, 2}, k=10) == 1 / 2  # fewer than k ranked
    assert recall_at_k([], {1}, k=10) == 0.0  # empty ranking
    assert recall_at_k([1, 2], [], k=10) == 0.0  # no target
    assert recall_at_k([1, 2], [2, 2, 2], k=10) == 1.0  # a repeated target counts once


def test_ndcg_by_hand():
    # targets at ranks 1 and 3 of 3; ideal: ranks 1 and 2
    assert ndcg_at_k([4, 0, 6], {4, 6}, 3) == pytest.approx((1 / L2(2) + 1 / L2(4)) / (1 / L2(2) + 1 / L2(3)))
    # a single target at rank 4 (outside k=3, inside k=5)
    assert ndcg_at_k([0, 1, 2, 3], {3}, 3) == 0.0
    assert ndcg_at_k([0, 1, 2, 3], {3}, 5) == pytest.approx(1 / L2(5))
    # more targets than k: the ideal has k hits
    assert ndcg_at_k([1, 2], {1, 2, 3, 4}, 2) == 1.0
    assert ndcg_at_k([], {1}, 10) == 0.0


def test_hit_rate_and_mrr():
    assert hit_rate_at_k([3, 4, 5], {5}, 2) == 0.0
    assert hit_rate_at_k([3, 4, 5], {5}, 3) == 1.0
    assert mrr_at_k([3, 4, 5], {4, 5}) == 1 / 2
    assert mrr_at_k([3, 4, 5], {9}) == 0.0
    assert mrr_at_k([3, 4, 5], {5}, k=2) == 0.0


def test_ties_are_decided_before_metrics():
    # two items with equal scores: the ranking (lower index first) decides; the metric then follows it
    from recsys.eval.protocols import top_k

    ranking = top_k(np.array([[0.2, 0.7, 0.7, 0.1]]), 2)[0].tolist()
    assert ranking == [1, 2]
    assert ndcg_at_k(ranking, {2}, 2) == pytest.approx(1 / L2(3))


def test_coverage_and_novelty():
    assert coverage_at_k([[0, 1, 2], [2, 3, 4]], n_items=10, k=2) == 4 / 10  # {0, 1, 2, 3}
    assert coverage_at_k([], n_items=10, k=2) == 0.0
    pop = np.array([7, 1, 0])  # users per item in training, of 7 users
    # p = (pop + 1) / 8 -> item 0: 1, item 1: 1/4, item 2: 1/8
    assert novelty_at_k([[0, 1], [2]], pop, n_users=7, k=2) == pytest.approx((0 + 2 + 3) / 3)


def test_per_user_arrays():
    out = per_user([[1, 2], [3, 4]], [{2}, {9}], ks=[1, 2])
    assert out["recall@1"].tolist() == [0.0, 0.0]
    assert out["recall@2"].tolist() == [1.0, 0.0]
    assert out["ndcg@2"].tolist() == pytest.approx([1 / L2(3), 0.0])
    assert out["mrr@2"].tolist() == [0.5, 0.0]


def test_paired_bootstrap():
    a = np.array([0.0, 0.0, 1.0, 1.0])
    b = np.array([1.0, 1.0, 1.0, 1.0])
    r = paired_bootstrap(a, b, n_resamples=500, seed=1)
    assert r["diff"] == 0.5 and r["n"] == 4
    assert 0.0 <= r["low"] <= 0.5 <= r["high"] <= 1.0
    same = paired_bootstrap(b, b)
    assert same["diff"] == same["low"] == same["high"] == 0.0
    with pytest.raises(ValueError, match="a and b must be 1-d arrays of one length > 0"):
        paired_bootstrap(np.zeros(3), np.zeros(4))
