"""Repeat features and the bought-again model (recsys.reorder), worked out by hand."""

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from recsys.errors import ConfigError
from recsys.reorder import (
    FEATURES,
    HISTORY_FEATURES,
    TIME_FEATURES,
    TREE_FEATURES,
    RepeatModel,
    RepeatTrees,
    basket_rows,
    repeat_features,
    training_rows,
)

D = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)


def events():
    # user 0: basket a on day 0 holds items 5 and 6, b on day 4 item 5, c on day 8 items 5 and 7
    return pl.DataFrame({
        "user_idx": [0, 0, 0, 0, 0],
        "item_idx": [5, 6, 5, 5, 7],
        "timestamp": [D, D, D + dt.timedelta(days=4), D + dt.timedelta(days=8), D + dt.timedelta(days=8, minutes=1)],
        "session_id": ["a", "a", "b", "c", "c"],
    })


def test_features_by_hand():
    f = repeat_features(basket_rows(events()), np.array([0, 0, 0, 0, 0, 3, 1, 1]))
    assert f["item_idx"].to_list() == [5, 6, 7]
    got = {c: f[c].to_list() for c in FEATURES}
    assert got["baskets"] == [3, 1, 1] and got["history"] == [3, 3, 3]
    assert got["share"] == pytest.approx([3 / 3, 1 / 3, 1 / 3])
    assert got["since"] == [0, 2, 0] and got["first"] == [2, 2, 0]
    assert got["share_since_first"] == pytest.approx([3 / 3, 1 / 3, 1 / 1])
    assert got["gap"] == pytest.approx([(2 - 0) / 2, 0.0, 0.0])
    assert got["since_over_gap"] == pytest.approx([0 / 1, 2 / 0.5, 0 / 0.5])
    assert got["days_since"] == pytest.approx([0.0, 8.0, 0.0])
    assert got["decay_9"] == pytest.approx([1 + 0.9 + 0.81, 0.81, 1.0])
    assert got["decay_7"] == pytest.approx([1 + 0.7 + 0.49, 0.49, 1.0])
    assert got["decay_5"] == pytest.approx([1 + 0.5 + 0.25, 0.25, 1.0])
    assert got["in_3"] == [3, 1, 1] and got["in_10"] == [3, 1, 1]
    assert got["log_popularity"] == pytest.approx([np.log(4), np.log(2), np.log(2)])


def test_training_rows_cut_before_each_of_the_last_baskets():
    x, y = training_rows(basket_rows(events()), np.zeros(8), max_back=3, min_history=1)
    # cut before c: history a, b holds 5 and 6, and c holds 5; cut before b: history a, b holds 5;
    # a cut before a would keep no basket
    assert y.tolist() == [1.0, 0.0, 1.0, 0.0]
    col = {c: i for i, c in enumerate(FEATURES)}
    assert x[:, col["history"]].tolist() == [2, 2, 1, 1]
    assert x[:, col["baskets"]].tolist() == [2, 1, 1, 1]  # nothing from c leaks into the first cut
    assert x[:, col["since"]].tolist() == [0, 1, 0, 0]
    assert training_rows(basket_rows(events()), np.zeros(8), max_back=3, min_history=3)[0].shape == (0, len(TREE_FEATURES))


def test_a_training_cut_reads_every_users_rates_from_before_it():
    x, _ = training_rows(basket_rows(events()), np.zeros(8), max_back=3, min_history=1)
    col = {c: i for i, c in enumerate(TREE_FEATURES)}
    # cut before c: a (5, 6) is followed by b (5): 5 again, 6 not, every item 1 / 2, shrunk with 5 baskets;
    # cut before b: a is followed by nothing before the cut, so no rate (0)
    assert x[:, col["item_next_rate"]].tolist() == pytest.approx([(1 + 5 * 0.5) / 6, (0 + 5 * 0.5) / 6, 0, 0])
    assert x[:, col["group_next_rate"]].tolist() == pytest.approx([0.5, 0.5, 0, 0])


def test_trees_learn_which_signal_predicts_a_repeat_and_save_as_text(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(2000, len(TREE_FEATURES)))
    y = (x[:, TREE_FEATURES.index("group_next_rate")] > 0.5).astype(float)
    m = RepeatTrees.fit(x, y, prior=0.25, rounds=50)
    p = m.predict(x)
    assert ((p > 0.5) == (y == 1)).mean() > 0.99 and p[y == 1].mean() > 0.9 and p[y == 0].mean() < 0.1
    m.save(tmp_path / "t.json")
    back = RepeatTrees.load(tmp_path / "t.json")
    assert back.prior == 0.25 and np.array_equal(back.predict(x), p) and back.predict(x[:0]).shape == (0,)
    assert RepeatTrees.fit(x, np.zeros(2000), prior=0.0) is None  # one class: nothing to learn
    d = json.loads((tmp_path / "t.json").read_text())
    (tmp_path / "old.json").write_text(json.dumps({**d, "features": ["baskets"]}))
    with pytest.raises(ConfigError, match=r"old.json: a repeat model of features \['baskets'\], not \['baskets', 'share'"):
        RepeatTrees.load(tmp_path / "old.json")


def test_the_model_learns_which_signal_predicts_a_repeat():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5, size=(4000, len(FEATURES)))
    since = x[:, FEATURES.index("since")]
    y = (rng.uniform(size=4000) < 1 / (1 + np.exp(2 * (since - 2.5)))).astype(float)  # recent items come back
    m = RepeatModel.fit(x, y)
    probe = np.full((3, len(FEATURES)), 2.5)
    probe[:, FEATURES.index("since")] = [0.0, 2.5, 5.0]
    p = m.predict(probe)
    assert p[0] > 0.8 and p[2] < 0.2 and abs(p[1] - 0.5) < 0.1
    again = RepeatModel.fit(x, y)
    assert np.array_equal(again.coef, m.coef)  # Newton's method from zero: the same weights every time
    assert RepeatModel.fit(x, np.zeros(4000)) is None  # one class: nothing to learn


def test_saved_model_answers_the_same_and_checks_its_features(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(200, len(FEATURES)))
    m = RepeatModel.fit(x, (x[:, 0] > 0.5).astype(float))
    m.save(tmp_path / "m.json")
    assert np.array_equal(RepeatModel.load(tmp_path / "m.json").predict(x), m.predict(x))
    d = m.to_dict()
    d["features"] = ["baskets"]
    (tmp_path / "old.json").write_text(json.dumps(d))
    with pytest.raises(ConfigError, match=r"old.json: a repeat model of features \['baskets'\], not \['baskets', 'share'"):
        RepeatModel.load(tmp_path / "old.json")


def test_training_rows_stop_at_max_rows_with_whole_users():
    # three users with user 0's history; each cut gives 2 rows a user (items 5 and 6)
    ev = pl.concat([events().with_columns(pl.lit(u).alias("user_idx")) for u in range(3)])
    rows = basket_rows(ev)
    x, y = training_rows(rows, np.zeros(8), max_back=3, min_history=1)
    assert len(y) == 3 * 2 + 3 * 2  # two cuts, three users, two items each
    x, y = training_rows(rows, np.zeros(8), max_back=3, min_history=1, max_rows=9)
    # the first cut (6 rows) fits; of the second only one whole user (2 rows) fits in the 3 left
    assert len(y) == 8 and y.tolist() == [1.0, 0.0] * 4
    x, y = training_rows(rows, np.zeros(8), max_back=3, min_history=1, max_rows=6)
    assert len(y) == 6  # the bound met exactly: no older cut


def day(t: dt.datetime) -> float:
    return t.timestamp() / 86400.0


def test_time_features_at_the_request_by_hand():
    # baskets on days 0, 4, 8: the user's mean interval is 4 days; item 5 (days 0, 4, 8) every 4 days,
    # item 6 (day 0) once (its interval counts as 1 day), item 7 (day 8) once
    now = pl.DataFrame({"user_idx": [0], "_now": [day(D) + 10.0]})
    f = repeat_features(basket_rows(events()), np.zeros(8), now)
    got = {c: f[c].to_list() for c in TIME_FEATURES}
    assert got["now_gap"] == pytest.approx([2.0, 2.0, 2.0])
    assert got["item_now"] == pytest.approx([10 - 8, 10 - 0, 10 - 8], abs=1e-3)  # item 7 came a minute after day 8
    assert got["item_now_over_gap"] == pytest.approx([2 / 4, 10 / 1, 2 / 1], abs=1e-3)
    assert got["user_gap_days"] == pytest.approx([4.0, 4.0, 4.0])
    # no request time: the user returns after their usual interval, 4 days after the newest basket
    usual = repeat_features(basket_rows(events()), np.zeros(8))
    assert usual["now_gap"].to_list() == pytest.approx([4.0] * 3)
    assert usual["item_now"].to_list() == pytest.approx([4, 12, 4], abs=1e-3)


def test_a_training_cut_is_asked_at_the_time_of_the_basket_that_follows():
    x, _ = training_rows(basket_rows(events()), np.zeros(8), max_back=3, min_history=1)
    col = {c: i for i, c in enumerate(FEATURES)}
    # cut before c (day 8): history a (day 0), b (day 4); cut before b (day 4): history a (day 0)
    assert x[:, col["now_gap"]].tolist() == pytest.approx([8 - 4, 8 - 4, 4 - 0, 4 - 0])
    assert x[:, col["item_now"]].tolist() == pytest.approx([8 - 4, 8 - 0, 4 - 0, 4 - 0])


def test_a_model_saved_before_the_time_features_still_loads(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(200, len(HISTORY_FEATURES)))
    m = RepeatModel.fit(x, (x[:, 0] > 0.5).astype(float), features=HISTORY_FEATURES)
    m.save(tmp_path / "m.json")
    back = RepeatModel.load(tmp_path / "m.json")
    assert back.features == HISTORY_FEATURES and np.array_equal(back.predict(x), m.predict(x))
