"""Reranker training lists: nothing after the decision time enters the history side."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from recsys.rerank.data import build_lists, sample_cuts, strong_events
from recsys.rerank.features import FEATURES, candidate_features, context_text
from recsys.retrieval.build import BuildOptions, build
from recsys.retrieval.charngram import CharNgramEncoder
from recsys.retrieval.fusion import fuse
from recsys.retrieval.recommender import Recommender
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig
from recsys.schema import EventWeights
from recsys.synthetic import generate_synthetic


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    d = generate_synthetic(n_users=80, n_items=40, n_needs=4, seed=11)
    out = tmp_path_factory.mktemp("rr") / "art"
    build(d.dataset, out, opts=BuildOptions(holdout="temporal", tower=TowerConfig(dim=16, max_len=10, n_layers=1),
                                            train=TrainConfig(epochs=1, pretrain_epochs=0),
                                            text_encoder=CharNgramEncoder(dim=8), show_progress=False))
    return Recommender.load(out)


def test_lists_see_only_the_past_and_label_the_future(rec):
    cuts = sample_cuts(rec.history, per_user=2, seed=0)
    assert cuts.height > 0
    first_two = rec.history.group_by("user_idx").agg(pl.col("timestamp").unique().sort().head(2).max().alias("t2"))
    assert cuts.join(first_two, on="user_idx")["cut"].gt(cuts.join(first_two, on="user_idx")["t2"]).all()
    lists = build_lists(rec, cuts, include_seen=False, horizon=dt.timedelta(hours=1))
    p = rec.profiles_at(cuts["user_idx"].to_numpy(), cuts["cut"])
    # the history side: every event strictly before its row's cut
    joined = p.events.join(cuts.with_row_index("user_idx2").rename({"user_idx": "u"}).rename({"user_idx2": "user_idx"})
                           .with_columns(pl.col("user_idx").cast(pl.Int64)), on="user_idx")
    assert (joined["timestamp"] < joined["cut"]).all() and joined.height > 0
    for r in range(len(lists)):
        u, cut = int(cuts["user_idx"][r]), cuts["cut"][r]
        mine = rec.history.filter(pl.col("user_idx") == u).sort("timestamp", maintain_order=True)
        past = mine.filter(pl.col("timestamp") < cut)
        future = mine.filter((pl.col("timestamp") >= cut) & (pl.col("timestamp") <= cut + dt.timedelta(hours=1)))
        assert lists.contexts[r] == context_text([rec.titles[i] for i in past["item_idx"].tail(8)],
                                                 past["event"].tail(8).to_list(), 8)
        labelled = set(lists.items[r][lists.click[r] > 0].tolist())
        assert labelled == set(future["item_idx"].to_list()) & set(lists.items[r].tolist())
        bought = set(future.filter(pl.col("event") == "purchase")["item_idx"].to_list())
        assert set(lists.items[r][lists.purchase[r] > 0].tolist()) == bought & labelled
        # seen items are excluded from the candidates: seen means seen before the cut
        assert not set(past["item_idx"].to_list()) & set(lists.items[r][lists.items[r] >= 0].tolist())


def test_strong_labels_for_ratings():
    ev = pl.DataFrame({"event": ["rating", "rating", "view", "purchase"], "value": [4.0, 3.0, None, None]})
    w = EventWeights.from_dict({"rating": 1.0})
    assert ev.select(strong_events(ev, w, "rating")).to_series().to_list() == [True, False, False, True]


def test_feature_join_by_hand():
    tt = (np.array([[7, 3, -1]]), np.array([[0.9, 0.5, -np.inf]]))
    als = (np.array([[3, 9, -1]]), np.array([[2.0, 1.0, -np.inf]]))
    c = fuse({"two_tower": tt, "als": als}, n=3, k=0)  # 3: 1/2 + 1/1 = 1.5; 7: 1; 9: 0.5
    pop = np.zeros(10)
    pop[9] = np.e - 1
    f = candidate_features(c, pop, [np.array([9])])
    row = {name: f[0, 2, i] for i, name in enumerate(FEATURES)}  # item 9
    assert c.items[0].tolist() == [3, 7, 9]
    assert row["als_inv_rank"] == 0.5 and row["als_score"] == 1.0 and row["als_present"] == 1.0
    assert row["two_tower_present"] == 0.0 and row["two_tower_inv_rank"] == 0.0
    assert row["log_popularity"] == pytest.approx(1.0) and row["seen"] == 1.0 and row["fused"] == pytest.approx(0.5)
    first = {name: f[0, 0, i] for i, name in enumerate(FEATURES)}  # item 3
    assert first["two_tower_inv_rank"] == 0.5 and first["two_tower_score"] == 0.5 and first["fused"] == 1.5
