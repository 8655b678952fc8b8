"""Candidate fusion: reciprocal-rank fusion by hand, weights, de-duplication, provenance, padding."""

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.fusion import fuse

TT = (np.array([[10, 11, 12, -1], [20, 21, -1, -1]]), np.array([[0.9, 0.8, 0.7, -np.inf], [0.5, 0.4, -np.inf, -np.inf]]))
ALS = (np.array([[12, 13, 10], [-1, -1, -1]]), np.array([[3.0, 2.0, 1.0], [-np.inf] * 3]))


def test_rrf_by_hand_with_provenance():
    c = fuse({"two_tower": TT, "als": ALS}, n=5, k=60)
    # user 0: 10 -> 1/61 + 1/63; 12 -> 1/63 + 1/61; 11 -> 1/62; 13 -> 1/62. Ties: best rank in any source, then id.
    assert c.items[0].tolist() == [10, 12, 11, 13, -1]
    assert c.scores[0, :4] == pytest.approx([1 / 61 + 1 / 63, 1 / 63 + 1 / 61, 1 / 62, 1 / 62])
    assert np.isneginf(c.scores[0, 4])
    assert c.provenance(0, 0) == {"two_tower": {"rank": 1, "score": 0.9}, "als": {"rank": 3, "score": 1.0}}
    assert c.provenance(0, 3) == {"als": {"rank": 2, "score": 2.0}}
    # user 1: ALS proposed nothing
    assert c.items[1].tolist() == [20, 21, -1, -1, -1]
    assert c.provenance(1, 1) == {"two_tower": {"rank": 2, "score": 0.4}}
    assert c.ranks.shape == (2, 5, 2) and c.sources == ("two_tower", "als")


def test_weights_and_truncation():
    c = fuse({"two_tower": TT, "als": ALS}, n=2, k=0, weights={"als": 3.0})
    # k=0: 12 -> 1/3 + 3/1 = 3.333; 10 -> 1/1 + 3/3 = 2; 13 -> 3/2 = 1.5; 11 -> 1/2
    assert c.items[0].tolist() == [12, 10]
    assert c.scores[0].tolist() == pytest.approx([1 / 3 + 3, 2.0])


def test_score_method_min_max_scales_per_user():
    c = fuse({"two_tower": TT, "als": ALS}, n=4, method="score")
    # two-tower 0.9/0.8/0.7 -> 1/0.5/0; ALS 3/2/1 -> 1/0.5/0: 10 -> 1 + 0, 12 -> 0 + 1, 11 -> 0.5, 13 -> 0.5
    assert c.items[0].tolist() == [10, 12, 11, 13]
    assert c.scores[0].tolist() == pytest.approx([1.0, 1.0, 0.5, 0.5])


def test_empty_and_bad_input():
    empty = (np.full((1, 3), -1), np.full((1, 3), -np.inf))
    c = fuse({"a": empty}, n=2)
    assert c.items.tolist() == [[-1, -1]] and c.provenance(0, 0) == {}
    with pytest.raises(ConfigError, match=r"fusion weights name unknown sources \['bm25'\]; the sources are \['a'\]"):
        fuse({"a": empty}, weights={"bm25": 1.0})
    with pytest.raises(ConfigError, match="fusion method 'sum': use one of rrf, score"):
        fuse({"a": empty}, method="sum")
    with pytest.raises(ConfigError, match=r"fusion: source 'b' has ids \(2, 3\) and scores \(2, 3\); both must be \(1, n\)"):
        fuse({"a": empty, "b": (np.zeros((2, 3), int), np.zeros((2, 3)))})


def test_top_of_the_union_is_the_head_of_the_fused_list():
    """Fusion tuning ranks only each user's top k (a partial sort): the same items, in the same
    order, as the full fusion, ties and zero weights included."""
    from recsys.fusion import Union

    rng = np.random.default_rng(0)
    for _ in range(100):
        users, lists = int(rng.integers(1, 20)), {}
        for s in range(int(rng.integers(1, 4))):
            ids = np.stack([rng.permutation(40)[:30] for _ in range(users)])
            ids[rng.random(ids.shape) < 0.2] = -1
            lists[f"s{s}"] = (ids, rng.random(ids.shape).round(1))
        weights = {name: float(rng.choice([0.0, 0.5, 1.0, 2.0])) for name in lists}
        method, k = str(rng.choice(["rrf", "score"])), int(rng.integers(1, 12))
        full = fuse(lists, n=100, method=method, weights=weights).items[:, :k]
        assert np.array_equal(Union(lists, method).top(weights, k), full)
