"""Fusion weights chosen on validation targets."""

import numpy as np
import polars as pl

from recsys.eval.protocols import EvalTask
from recsys.pipeline.tune import tune_fusion
from recsys.retrieval.recommender import FusionOptions
from recsys.retrieval.sources import ALSSource, TwoTowerSource


class FakeRecommender:
    """Two sources for 4 users: the two-tower list never holds the target, ALS has it at rank 2."""

    def __init__(self):
        tt = np.array([[10, 11, 12, 13]] * 4)
        als = np.array([[20, u, 21, 22] for u in range(4)])
        self.lists = {"two_tower": (tt, -np.arange(4.0)[None].repeat(4, 0)), "als": (als, -np.arange(4.0)[None].repeat(4, 0))}
        self.sources = {"two_tower": TwoTowerSource, "als": ALSSource}  # their fusion grids
        self.fusion = FusionOptions()  # reciprocal-rank fusion, k = 60

    def stored_batch(self, users):
        return users

    def source_lists(self, users, include_seen):
        return {k: (v[0][users], v[1][users]) for k, v in self.lists.items()}


def task():
    history = pl.DataFrame({"user_idx": [0, 1], "item_idx": [5, 6]})
    return EvalTask("loo", np.arange(4), [np.array([u]) for u in range(4)], history, True, 4, 30)


def test_the_source_that_holds_the_targets_gets_the_largest_weight():
    out = tune_fusion(FakeRecommender(), task(), include_seen=False, k=2)
    # only at weight 2 does the target (ALS rank 2: 2/62) beat the two-tower's first item (1/61) into the top 2;
    # at weight 1 it ties with the two-tower's second (1/62) and loses to both firsts
    assert out["weights"] == {"als": 2.0} and out["users"] == 4
    assert out["valid_ndcg@2"] > 0 and out["default_ndcg@2"] == 0.0


def test_no_users():
    t = EvalTask("loo", np.zeros(0, np.int64), [], pl.DataFrame(), True, 4, 30)
    assert tune_fusion(FakeRecommender(), t, include_seen=False)["weights"] == {}
