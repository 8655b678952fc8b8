"""Fusion weights chosen on validation targets."""

import numpy as np
import polars as pl
import pytest

from recsys.eval.protocols import EvalTask
from recsys.pipeline import BuildOptions, build, load
from recsys.pipeline.tune import tune_fusion
from recsys.retrieval.charngram import CharNgramEncoder
from recsys.retrieval.recommender import FusionOptions
from recsys.retrieval.sources import ALSSource, TwoTowerSource
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig
from recsys.synthetic import generate_synthetic


class FakeRecommender:
    """Two sources for 4 users: the two-tower list never holds the target, ALS has it at rank 2."""

    def __init__(self):
        tt = np.array([[10, 11, 12, 13]] * 4)
        als = np.array([[20, u, 21, 22] for u in range(4)])
        self.lists = {"two_tower": (tt, -np.arange(4.0)[None].repeat(4, 0)), "als": (als, -np.arange(4.0)[None].repeat(4, 0))}
        self.sources = {"two_tower": TwoTowerSource, "als": ALSSource}  # their fusion grids
        self.fusion = FusionOptions()  # reciprocal-rank fusion, k = 60

    def stored_batch(self, users, at=None):
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


class EarnedALS(ALSSource):
    must_earn = True


def test_a_source_that_must_earn_its_place_needs_an_interval_above_zero():
    rec = FakeRecommender()
    rec.sources = {"two_tower": TwoTowerSource, "als": EarnedALS}
    out = tune_fusion(rec, task(), include_seen=False, k=2)
    assert out["weights"] == {"als": 2.0} and out["evidence"]["als"]["kept"]  # all four users gain
    # forty users, the target in ALS's list for one of them only: the mean rises, the interval holds 0
    rec.lists = {k: (np.repeat(v[0][:1], 40, 0), np.repeat(v[1][:1], 40, 0)) for k, v in rec.lists.items()}
    rec.lists["als"][0][1:, 1] = 23
    t = EvalTask("loo", np.arange(40), [np.array([0])] * 40, task().history, True, 40, 30)
    out = tune_fusion(rec, t, include_seen=False, k=2)
    e = out["evidence"]["als"]
    assert out["weights"] == {"als": 0.0} and not e["kept"] and e["diff"] > 0 and e["interval"][0] <= 0
    assert out["valid_ndcg@2"] == 0.0


def test_no_users():
    t = EvalTask("loo", np.zeros(0, np.int64), [], pl.DataFrame(), True, 4, 30)
    assert tune_fusion(FakeRecommender(), t, include_seen=False)["weights"] == {}


def _shop(kind: str):
    """Synthetic events made into a shop where nobody meets an item twice ("never_repeat": each
    user's first event per item only) or one where everybody rebuys ("repeat_heavy": each user's
    three first items bought again, in turn, every day for two weeks)."""
    d = generate_synthetic(n_users=150, n_items=60, n_needs=4, seed=5)
    ev = d.dataset.events
    if kind == "never_repeat":
        d.dataset.events = ev.unique(["user_id", "item_id"], keep="first", maintain_order=True)
        return d.dataset
    first = ev.sort("timestamp").unique(["user_id", "item_id"], keep="first", maintain_order=True)
    staples = first.group_by("user_id", maintain_order=True).head(3)
    end = ev["timestamp"].max()
    rounds = [staples.with_columns(pl.lit("purchase").alias("event"),
                                   (pl.lit(end) + pl.duration(days=day + 1, seconds=pl.int_range(pl.len()).over("user_id")))
                                   .alias("timestamp")) for day in range(14)]
    d.dataset.events = pl.concat([ev, *rounds], how="vertical_relaxed")
    return d.dataset


@pytest.mark.parametrize("kind, kept", [("never_repeat", False), ("repeat_heavy", True)])
def test_the_build_keeps_seen_items_only_where_they_are_bought_again(kind, kept, tmp_path, monkeypatch):
    monkeypatch.setattr("recsys.pipeline.tune.FEW_USERS", 1000)  # so the build flags its 150-user validation stage
    summary = build(_shop(kind), tmp_path / kind, opts=BuildOptions(
        holdout="loo", tower=TowerConfig(dim=16, max_len=20, n_layers=1), text_encoder=CharNgramEncoder(dim=16),
        train=TrainConfig(epochs=2, pretrain_epochs=0), show_progress=False))
    decision = summary["fusion"]["serve_seen"]
    assert decision["include_seen"] is kept, decision
    n = summary["fusion"]["validation_users"]
    assert 0 < n < 1000 and summary["fusion"]["warning"].startswith(
        f"the validation stage holds {n} users with a target (fewer than 1000): fusion's weights")
    rec = load(tmp_path / kind)
    assert rec.serves_seen is kept
    user = rec.users.ids[0]
    seen = set(rec.items.to_external(rec.seen(0)))
    got = {i["item_id"] for i in rec.explain_one(user, k=20)["items"]}
    assert bool(got & seen) is kept  # the default follows the decision
    assert not {i["item_id"] for i in rec.explain_one(user, k=20, include_seen=False)["items"]} & seen


def test_the_serving_mode_needs_evidence():
    from recsys.pipeline.tune import serving_mode

    tie = serving_mode({"per_user": np.array([0.5, 0.0, 1.0])}, {"per_user": np.array([0.5, 0.0, 1.0])})
    assert tie["include_seen"] is False and tie["diff"] == 0.0 and tie["interval"] == [0.0, 0.0]
    better = serving_mode({"per_user": np.zeros(40)}, {"per_user": np.full(40, 0.25)})
    assert better["include_seen"] is True and better["diff"] == 0.25
    assert better["reason"] == "keeping the user's own items raised validation NDCG@10 (+0.2500 [+0.2500, +0.2500], 40 users)"
    assert serving_mode({"per_user": None}, {"per_user": None})["include_seen"] is False


def test_a_small_validation_stage_is_flagged():
    from recsys.pipeline.tune import evidence_warning

    assert evidence_warning(19) == (
        "the validation stage holds 19 users with a target (fewer than 100): fusion's weights, the sources that earn "
        "their place and the serving mode rest on little evidence; a longer history (more users with a target in the "
        "validation period) makes them firmer")
    assert evidence_warning(99) is not None and evidence_warning(100) is None and evidence_warning(5, few=5) is None
