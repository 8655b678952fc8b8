"""Protocols: who is scored on what, with which history; seen items excluded or not."""

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from recsys.errors import ConfigError
from recsys.eval.baselines import (
    TIFUKNN,
    ImplicitPeer,
    ItemCooccurrence,
    PersonalFrequency,
    Popularity,
    Recency,
)
from recsys.eval.protocols import make_task, rank, score_rankings
from recsys.idmap import IDMap
from recsys.schema import EVENT_SCHEMA
from recsys.splits import last_basket, leave_one_out, temporal_split

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def ev(rows):
    """rows: (user, item, minute, session)"""
    return pl.DataFrame(
        {"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows], "event": ["purchase"] * len(rows),
         "timestamp": [T0 + timedelta(minutes=r[2]) for r in rows], "session_id": [r[3] for r in rows],
         "value": [None] * len(rows), "price": [None] * len(rows)}, schema=EVENT_SCHEMA)


ROWS = [
    # u1 buys a, b in o1; a, c in o2; a, d in o3 (last basket: a repeat and a new item)
    ("u1", "a", 0, "o1"), ("u1", "b", 1, "o1"), ("u1", "a", 10, "o2"), ("u1", "c", 11, "o2"),
    ("u1", "a", 20, "o3"), ("u1", "d", 21, "o3"),
    ("u2", "b", 0, "p1"), ("u2", "c", 5, "p2"), ("u2", "d", 9, "p3"),
    ("u3", "e", 0, "q1"),
]


def maps(events):
    return IDMap.from_ids(events["user_id"], "user"), IDMap.from_ids(events["item_id"], "item")


def test_loo_task_and_seen_exclusion():
    events = ev(ROWS)
    users, items = maps(events)
    task = make_task("loo", leave_one_out(events), users, items, "test")
    assert task.users.tolist() == [0, 1]  # u3 has one event: never held out
    assert [items.to_external(t).tolist() for t in task.targets] == [["d"], ["d"]]
    # u1's history (train + valid) holds a, b, c: excluded from its ranking
    ranked = rank(task, Popularity().fit(task).scores, k=5)
    assert items.to_external(ranked[0]).tolist()[:2] == ["e", "d"]  # e: 1 user, d: none in history
    assert not set(items.to_external(ranked[0])) & {"a", "b", "c"}
    # validation stage: history is training only, targets are the second-to-last events
    vtask = make_task("loo", leave_one_out(events), users, items, "valid")
    assert [items.to_external(t).tolist() for t in vtask.targets] == [["a"], ["c"]]


def test_last_basket_keeps_repeats():
    events = ev(ROWS)
    users, items = maps(events)
    task = make_task("last_basket", last_basket(events), users, items, "test")
    assert task.users.tolist() == [0, 1]
    assert items.to_external(task.targets[0]).tolist() == ["a", "d"]
    assert not task.exclude_seen
    ranked = rank(task, PersonalFrequency().fit(task).scores, k=2)
    # u1 bought a twice before the last basket: it ranks first and is a hit
    assert items.to_external(ranked[0]).tolist()[0] == "a"
    means, per = score_rankings(task, ranked, ks=(2,))
    assert per["hit@2"][0] == 1.0


def test_the_request_time_is_when_the_target_happens():
    events = ev(ROWS)
    users, items = maps(events)
    task = make_task("last_basket", last_basket(events), users, items, "test")
    # u1's last basket starts at minute 20, u2's at minute 9
    assert task.request_times().tolist() == [(T0 + timedelta(minutes=20)).timestamp(), (T0 + timedelta(minutes=9)).timestamp()]
    task.held = None
    assert np.isnan(task.request_times()).all()


def test_temporal_task_targets_every_later_item_of_known_users():
    events = ev(ROWS)
    users, items = maps(events)
    split = temporal_split(events, test_cut=T0 + timedelta(minutes=9), valid_cut=T0 + timedelta(minutes=5))
    task = make_task("temporal", split, users, items, "test")
    # held out at >= 9 min: u1 (a, c at 10-11; a, d at 20-21) and u2 (d at 9)
    assert [users.to_external([u])[0] for u in task.users] == ["u1", "u2"]
    assert items.to_external(task.targets[0]).tolist() == ["a", "c", "d"]


def test_bad_protocol():
    events = ev(ROWS)
    users, items = maps(events)
    with pytest.raises(ConfigError, match="protocol 'random': use one of loo, temporal, last_basket"):
        make_task("random", leave_one_out(events), users, items)


def test_cooccurrence_follows_sequences():
    # everyone goes x -> y; a user whose last item is x gets y first
    rows = [(f"u{i}", it, m, None) for i in range(5) for m, it in enumerate(["x", "y", "z"])]
    rows += [("t", "z", 0, None), ("t", "x", 1, None), ("t", "q", 2, None)]
    events = ev(rows)
    users, items = maps(events)
    split = leave_one_out(events)
    task = make_task("loo", split, users, items, "test")  # history: u_i x, y; t: z, x
    peer = ItemCooccurrence(window=1, last_n=1).fit(task)
    t = users.index("t")
    scores = peer.scores(np.array([t]))[0]
    assert items.to_external([int(np.argmax(scores))])[0] == "y"


def test_tifu_knn_prefers_own_recent_items():
    events = ev(ROWS)
    users, items = maps(events)
    task = make_task("last_basket", last_basket(events), users, items, "test")
    peer = TIFUKNN(group_size=2, n_neighbors=1, alpha=0.9).fit(task)
    s = peer.scores(np.array([0]))[0]
    # u1's history baskets: {a, b}, {a, c}; a appears in both -> highest
    assert items.to_external([int(np.argmax(s))])[0] == "a"


def test_tifu_knn_scores_by_hand():
    events = ev(ROWS)
    users, items = maps(events)
    task = make_task("last_basket", last_basket(events), users, items, "test")
    peer = TIFUKNN(group_size=2, within_decay=0.5, group_decay=0.5, n_neighbors=1, alpha=0.5).fit(task)
    s = dict(zip(items.to_external(np.arange(len(items))), peer.scores(np.array([users.index("u1")]))[0]))
    # u1's history: o1 {a, b} (age 1), o2 {a, c} (age 0), one group of two: v = a 0.5/2 + 1/2, b 0.5/2, c 1/2.
    # u2's history (p1 {b}, p2 {c}) is u1's nearest (u3 shares nothing): b 0.5/2, c 1/2.
    assert s["a"] == pytest.approx(0.5 * 0.75)
    assert s["b"] == pytest.approx(0.5 * 0.25 + 0.5 * 0.25)
    assert s["c"] == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    assert s["d"] == s["e"] == 0.0


def test_recency_puts_the_last_touched_first():
    events = ev(ROWS)
    users, items = maps(events)
    task = make_task("last_basket", last_basket(events), users, items, "test")
    s = Recency().fit(task).scores(np.array([users.index("u1")]))[0]
    ranked = items.to_external(np.argsort(-s)[:3])
    assert list(ranked) == ["c", "a", "b"]  # c and a at minute 10-11 (c later), b at minute 1


def test_bpr_peer_repeats_itself():
    # 300 users' random purchases: enough rows that lock-free updates from two threads collide (they gave
    # other factors run to run); the peer fits on one thread, so the same seed gives the same scores
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", m, None) for u in range(300) for m, i in enumerate(rng.choice(400, 20, replace=False))]
    events = ev(rows)
    users, items = maps(events)
    task = make_task("loo", leave_one_out(events), users, items, "test")
    first, again = (ImplicitPeer("bpr", factors=16, iterations=10).fit(task).scores(np.arange(50)) for _ in range(2))
    assert np.array_equal(first, again)
