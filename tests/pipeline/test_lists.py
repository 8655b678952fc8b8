"""Reranker training lists: nothing from the decision point on enters the history side or the features."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from recsys.artifacts import Artifact
from recsys.eval.protocols import keeps_seen
from recsys.fusion import candidate_features, feature_names, fuse
from recsys.pipeline import BuildOptions, artifact_stage, build, stage_engine, stage_lists
from recsys.pipeline.lists import build_lists, sample_cuts, validation_cuts
from recsys.rerank.features import context_text
from recsys.retrieval.charngram import CharNgramEncoder
from recsys.retrieval.personal import popularity_as_of
from recsys.retrieval.recommender import Recommender
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig
from recsys.schema import EventWeights, strong_events
from recsys.synthetic import generate_synthetic

FEATURES = Recommender.feature_names()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = generate_synthetic(n_users=80, n_items=40, n_needs=4, seed=11)
    out = tmp_path_factory.mktemp("rr") / "art"
    build(d.dataset, out, opts=BuildOptions(holdout="temporal", tower=TowerConfig(dim=16, max_len=10, n_layers=1),
                                            train=TrainConfig(epochs=1, pretrain_epochs=0),
                                            text_encoder=CharNgramEncoder(dim=8), show_progress=False))
    return out


@pytest.fixture(scope="module")
def rec(built):
    return Recommender.load(built)


def _label_check(rec, cuts, lists, include_seen=False, horizon=dt.timedelta(hours=1)):
    for r in range(len(lists)):
        u, n, cut = int(cuts["user_idx"][r]), int(cuts["n_before"][r]), cuts["cut"][r]
        mine = rec.history.filter(pl.col("user_idx") == u)  # time order, ties in the splits' order
        past, rest = mine.head(n), mine.slice(n)
        future = rest.filter(pl.col("timestamp") <= cut + horizon)
        assert rest["timestamp"][0] == cut and (past["timestamp"] <= cut).all()
        assert lists.contexts[r] == context_text([rec.titles[i] for i in past["item_idx"].tail(8)],
                                                 past["event"].tail(8).to_list(), 8)
        labelled = set(lists.items[r][lists.click[r] > 0].tolist())
        assert labelled == set(future["item_idx"].to_list()) & set(lists.items[r].tolist())
        bought = set(future.filter(pl.col("event") == "purchase")["item_idx"].to_list())
        assert set(lists.items[r][lists.purchase[r] > 0].tolist()) == bought & labelled
        # seen items are excluded from the candidates: seen means seen before the decision point
        if not include_seen:
            assert not set(past["item_idx"].to_list()) & set(lists.items[r][lists.items[r] >= 0].tolist())
        # popularity as it stood then: only other events strictly before the cut count
        before = rec.history.filter(pl.col("timestamp") < cut)
        pop = popularity_as_of(before, rec.weights, lists.items[r:r + 1], np.array([cut], dtype=object))[0]
        valid = lists.items[r] >= 0
        assert np.allclose(lists.features[r, valid, FEATURES.index("log_popularity")], np.log1p(pop[valid]), atol=1e-5)


def test_lists_see_only_the_past_and_label_the_future(rec):
    cuts = sample_cuts(rec.history, per_user=2, seed=0)
    assert cuts.height > 0 and (cuts["n_before"] >= 2).all()
    lists = build_lists(rec, cuts, include_seen=False, horizon=dt.timedelta(hours=1))
    assert int((lists.click.sum(1) > 0).sum()) > 0
    _label_check(rec, cuts, lists)


def test_events_sharing_a_second_fall_where_the_split_puts_them(rec):
    """Rating data often has several events in one second: the decision point splits them by
    position, as leave-one-out does, so an event the history holds is never also a label."""
    h = rec.history
    counts = h.group_by("user_idx").len().filter(pl.col("len") >= 4)
    u = int(counts["user_idx"].min())
    mine = h.filter(pl.col("user_idx") == u)
    ts = mine["timestamp"].to_list()
    tied = ts[:-1] + [ts[-2]]  # the last event shares the second-to-last one's time
    rec.set_history(pl.concat([h.filter(pl.col("user_idx") != u), mine.with_columns(pl.Series("timestamp", tied).cast(mine["timestamp"].dtype))])
                    .drop("user_idx", "item_idx"))
    try:
        cuts = pl.DataFrame({"user_idx": [u], "n_before": [mine.height - 1], "cut": [tied[-1]]})
        lists = build_lists(rec, cuts, include_seen=True, horizon=dt.timedelta(hours=1))
        p = rec.prefix_batch(np.array([u]), np.array([mine.height - 1]))
        assert p.history.events.height == mine.height - 1 and p.history.events["item_idx"][-1] == mine["item_idx"][-2]
        assert set(lists.items[0][lists.click[0] > 0].tolist()) <= {int(mine["item_idx"][-1])}
        _label_check(rec, cuts, lists, include_seen=True)
    finally:
        rec.set_history(h.drop("user_idx", "item_idx"))


def test_validation_cuts_sit_just_before_the_validation_events(rec):
    h = rec.history
    last = h.group_by("user_id").agg(pl.col("timestamp").max())
    valid = h.join(last, on=["user_id", "timestamp"]).drop("user_idx", "item_idx")
    cuts = validation_cuts(rec, valid)
    per_user = h.group_by("user_idx").len()
    n_valid = valid.group_by("user_id").len().rename({"len": "v"})
    expect = per_user.join(h.select("user_idx", "user_id").unique(), on="user_idx").join(n_valid, on="user_id")
    got = cuts.join(expect, on="user_idx")
    assert got.height == valid["user_id"].n_unique()
    assert (got["n_before"] == got["len"] - got["v"]).all()


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
    names = feature_names(["two_tower", "als"])
    f = candidate_features(c, ["two_tower", "als"], pop, [np.array([9])])
    row = {name: f[0, 2, i] for i, name in enumerate(names)}  # item 9
    assert c.items[0].tolist() == [3, 7, 9]
    assert row["als_inv_rank"] == 0.5 and row["als_score"] == 1.0 and row["als_present"] == 1.0
    assert row["two_tower_present"] == 0.0 and row["two_tower_inv_rank"] == 0.0
    assert row["log_popularity"] == pytest.approx(1.0) and row["seen"] == 1.0 and row["fused"] == pytest.approx(0.5)
    first = {name: f[0, 0, i] for i, name in enumerate(names)}  # item 3
    assert first["two_tower_inv_rank"] == 0.5 and first["two_tower_score"] == 0.5 and first["fused"] == 1.5


def test_validation_lists_count_only_the_training_events(rec):
    """Validation lists read transitions and popularity of the training events only, as the
    validation stage's engine serves them: the user's own step from their last training item to
    the validation item (the label) is not counted, nor is any validation event's popularity."""
    from recsys.cooccurrence import recent_items, scores_of, transitions
    from recsys.retrieval.personal import popularity_scores

    h = rec.history
    last = h.group_by("user_idx").agg(pl.col("timestamp").max())
    valid = h.join(last, on=["user_idx", "timestamp"])
    train = h.join(valid.select("user_idx", "timestamp"), on=["user_idx", "timestamp"], how="anti")
    keep = h.drop("user_idx", "item_idx")
    try:
        rec.count_from(train.drop("user_idx", "item_idx"))
        cuts = validation_cuts(rec, valid.drop("user_idx", "item_idx"))
        lists = build_lists(rec, cuts, include_seen=True, popularity_as_of_cut=False)  # the last event is often seen
        trans = transitions(train, rec.n_items)
        col = FEATURES.index("cooc_score")
        served = np.log1p(popularity_scores(train, rec.n_items, rec.weights))
        with_valid = np.log1p(popularity_scores(h, rec.n_items, rec.weights))
        ok = lists.items >= 0
        got = lists.features[..., FEATURES.index("log_popularity")][ok]
        assert np.allclose(got, served[lists.items[ok]], atol=1e-5)
        assert not np.allclose(got, with_valid[lists.items[ok]], atol=1e-5)  # the validation events would change it
        leaked = 0
        for r in range(len(lists)):
            u = int(lists.users[r])
            past = train.filter(pl.col("user_idx") == u)
            expect = scores_of(trans, [recent_items(past).get(u, [])], lists.items[r:r + 1])[0]
            ok = lists.items[r] >= 0
            assert np.allclose(lists.features[r, ok, col], np.log1p(100 * expect[ok]), atol=1e-5)
            with_labels = scores_of(transitions(h, rec.n_items), [recent_items(past).get(u, [])], lists.items[r:r + 1])[0]
            leaked += int((with_labels[lists.click[r] > 0] > expect[lists.click[r] > 0]).any())
        assert int((lists.click.sum(1) > 0).sum()) > 0, "no list holds its label"
        assert leaked > 0  # counting the validation events would have raised some labels' scores
    finally:
        rec.set_history(keep)


def test_a_stages_lists_hold_the_features_its_engine_serves(built):
    """What the reranker learns from is what it is served: a stage's lists (whose history holds the
    targets, to label them) carry the very candidates and features the stage's engine serves."""
    art = Artifact.open(built)
    stage = artifact_stage(art, "test")
    seen = keeps_seen(stage.protocol)
    lists = stage_lists(stage_engine(art, stage), stage, seen)
    serving = stage_engine(art, stage)  # history: the stage's, no target in it
    batch = serving.stored_batch(lists.users)
    c = serving.candidates(batch, seen)
    assert len(lists) > 0 and np.array_equal(c.items, lists.items)
    ok = c.items >= 0
    assert np.allclose(serving.features(batch, c)[ok], lists.features[ok], atol=1e-6)
