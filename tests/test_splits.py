"""Splits: hand-made expectations, and proofs that nothing of the held-out period reaches training."""

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from recsys.errors import ConfigError, DataError
from recsys.eval.protocols import make_task
from recsys.idmap import IDMap
from recsys.schema import EVENT_SCHEMA
from recsys.splits import last_basket, leave_one_out, make_split, next_purchase, temporal_split

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def ev(rows):
    """rows: (user, item, seconds, session)"""
    return pl.DataFrame(
        {"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows], "event": ["view"] * len(rows),
         "timestamp": [T0 + timedelta(seconds=r[2]) for r in rows],
         "session_id": [r[3] if len(r) > 3 else None for r in rows], "value": [None] * len(rows),
         "price": [None] * len(rows)},
        schema=EVENT_SCHEMA,
    )


ROWS = [
    ("u1", "5", 30), ("u1", "3", 10), ("u1", "9", 20), ("u1", "10", 40),
    ("u2", "7", 5), ("u2", "2", 5),  # only two events: stays in training
    ("u3", "1", 1), ("u3", "12", 2), ("u3", "4", 2),  # tie at t=2: the (user, item) hash puts 12 before 4
]


def test_leave_one_out_by_hand():
    s = leave_one_out(ev(ROWS))
    assert sorted(zip(s.test["user_id"], s.test["item_id"])) == [("u1", "10"), ("u3", "4")]
    assert sorted(zip(s.valid["user_id"], s.valid["item_id"])) == [("u1", "5"), ("u3", "12")]
    assert s.train.filter(pl.col("user_id") == "u1")["item_id"].to_list() == ["3", "9"]
    assert s.train.filter(pl.col("user_id") == "u2").height == 2
    assert s.train.height + s.valid.height + s.test.height == len(ROWS)


def test_leave_one_out_holds_out_tied_events_whatever_their_ids():
    # 400 users rate item "1" first, then "2" and "999" in the same second: ordered by id, "999" was
    # every user's test target; by the (user, item) hash, about half of them
    rows = [(f"u{u}", item, t) for u in range(400) for item, t in (("1", 0), ("2", 5), ("999", 5))]
    s = leave_one_out(ev(rows))
    share = (s.test["item_id"] == "999").mean()
    assert 0.4 < share < 0.6 and set(s.valid["item_id"]) == {"2", "999"}
    # the same events in another row order give the same split
    again = leave_one_out(ev(rows[::-1]))
    assert again.test.sort("user_id").equals(s.test.sort("user_id"))


def test_leave_one_out_needs_three():
    with pytest.raises(ConfigError, match="min_events=2: leave-one-out needs at least 3"):
        leave_one_out(ev(ROWS), min_events=2)


def test_temporal_split_by_hand():
    s = temporal_split(ev(ROWS), test_cut=T0 + timedelta(seconds=20), valid_cut=T0 + timedelta(seconds=5))
    assert sorted(s.test["item_id"]) == ["10", "5", "9"]  # t >= 20
    assert sorted(s.valid["item_id"]) == ["2", "3", "7"]  # 5 <= t < 20
    assert sorted(s.train["item_id"]) == ["1", "12", "4"]  # t < 5


def test_last_basket_by_hand():
    rows = [("u1", "a", 1, "o1"), ("u1", "b", 2, "o1"), ("u1", "a", 10, "o2"), ("u1", "c", 20, "o3"),
            ("u1", "a", 21, "o3"), ("u2", "x", 1, "p1"), ("u2", "y", 5, "p2")]
    s = last_basket(ev(rows))
    assert sorted(s.test["item_id"]) == ["a", "c"]  # the whole last order, the repeat included
    assert s.valid["item_id"].to_list() == ["a"]
    assert s.train.filter(pl.col("user_id") == "u2").height == 2  # two baskets only: training
    with pytest.raises(DataError, match="last-basket split: the events have no session_id"):
        last_basket(ev(ROWS))


def _assert_no_leak_per_user(split):
    held = pl.concat([split.valid, split.test])
    last_train = split.train.group_by("user_id").agg(pl.col("timestamp").max().alias("t_train"))
    first_held = held.group_by("user_id").agg(pl.col("timestamp").min().alias("t_held"))
    joined = first_held.join(last_train, on="user_id", how="inner")
    assert (joined["t_train"] <= joined["t_held"]).all()


def test_loo_leaks_nothing_on_synthetic(synthetic):
    events = synthetic.dataset.events
    s = leave_one_out(events)
    _assert_no_leak_per_user(s)
    # one test and one validation event per user with 3+ events, and valid never after test
    n_users = events.group_by("user_id").len().filter(pl.col("len") >= 3).height
    assert s.test["user_id"].n_unique() == s.test.height == n_users == s.valid.height
    pair = s.valid.join(s.test, on="user_id", suffix="_test")
    assert (pair["timestamp"] <= pair["timestamp_test"]).all()
    assert s.train.height + s.valid.height + s.test.height == events.height


def test_temporal_leaks_nothing_on_synthetic(synthetic):
    s = temporal_split(synthetic.dataset.events, test_fraction=0.2, valid_fraction=0.1)
    assert s.train["timestamp"].max() < s.valid["timestamp"].min()
    assert s.valid["timestamp"].max() < s.test["timestamp"].min()
    assert s.train.height + s.valid.height + s.test.height == synthetic.dataset.events.height
    assert 0.15 < s.test.height / synthetic.dataset.events.height < 0.25


def test_make_split_dispatch():
    assert make_split(ev(ROWS), "none").train.height == len(ROWS)
    with pytest.raises(ConfigError, match="--holdout 'later': use one of loo, temporal, last_basket, next_purchase, none"):
        make_split(ev(ROWS), "later")


def shop_log(rows):
    """rows: (user, item, event, seconds)"""
    frame = ev([(u, i, t) for u, i, _, t in rows])
    return frame.with_columns(pl.Series("event", [r[2] for r in rows], dtype=pl.Utf8))


FUNNEL = [
    ("u1", "a", "view", 1), ("u1", "a", "cart", 2), ("u1", "a", "purchase", 3),  # validation target: a
    ("u1", "b", "view", 4), ("u1", "c", "view", 5), ("u1", "c", "cart", 6),
    ("u1", "c", "purchase", 7), ("u1", "d", "view", 7), ("u1", "e", "view", 8),  # test target: c
    ("u2", "x", "view", 1), ("u2", "x", "purchase", 2),  # one purchase: a test target, no validation one
    ("u3", "p", "purchase", 1), ("u3", "q", "purchase", 1), ("u3", "r", "view", 2),  # nothing before it: not scored
    ("u4", "y", "view", 1), ("u4", "z", "cart", 2),  # never bought: training
]


def test_next_purchase_by_hand():
    s = next_purchase(shop_log(FUNNEL))
    held = [(u, i, e) for u, i, e in zip(s.test["user_id"], s.test["item_id"], s.test["event"])]
    assert held == [("u1", "c", "purchase"), ("u1", "d", "view"), ("u1", "e", "view"), ("u2", "x", "purchase"),
                    ("u3", "p", "purchase"), ("u3", "q", "purchase"), ("u3", "r", "view")]
    assert list(zip(s.valid["item_id"], s.valid["event"])) == [("a", "purchase"), ("b", "view"), ("c", "view"),
                                                               ("c", "cart")]
    assert list(zip(s.train["user_id"], s.train["item_id"])) == [("u1", "a"), ("u1", "a"), ("u2", "x"), ("u4", "y"),
                                                                 ("u4", "z")]
    assert s.train.height + s.valid.height + s.test.height == len(FUNNEL)
    log = shop_log(FUNNEL)
    users, items = IDMap.from_ids(log["user_id"]), IDMap.from_ids(log["item_id"])
    test = make_task("next_purchase", s, users, items, "test")
    valid = make_task("next_purchase", s, users, items, "valid")
    # the purchases, not the views at or after them; u3 has no history before buying and is not scored
    assert users.to_external(test.users).tolist() == ["u1", "u2"]
    assert [items.to_external(t).tolist() for t in test.targets] == [["c"], ["x"]]
    assert users.to_external(valid.users).tolist() == ["u1"] and items.to_external(valid.targets[0]).tolist() == ["a"]
    assert not test.exclude_seen  # c was viewed and carted before it was bought: it may be recommended
    assert sorted(test.history["item_id"]) == ["a", "a", "a", "b", "c", "c", "x", "y", "z"]
    with pytest.raises(DataError, match="next-purchase split: no 'purchase' event; map the buying event"):
        next_purchase(ev(ROWS))


def test_next_purchase_keeps_everything_at_or_after_the_target_out_of_the_history(synthetic):
    events = synthetic.dataset.events
    s = make_split(events, "next_purchase")
    users, items = IDMap.from_ids(events["user_id"]), IDMap.from_ids(events["item_id"])
    for stage in ("valid", "test"):
        task = make_task("next_purchase", s, users, items, stage)
        assert len(task.users) > 50
        target_at = task.held.group_by("user_idx").agg(pl.col("timestamp").min().alias("t"))
        late = task.history.join(target_at, on="user_idx").filter(pl.col("timestamp") >= pl.col("t"))
        assert late.height == 0
        assert set(task.held["event"]) == {"purchase"}
    assert s.train.height + s.valid.height + s.test.height == events.height
