"""The re-engagement source: the user's unbought interest times the item's conversion rate."""

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from recsys.engagement import conversion_rates, engagement_scores
from recsys.errors import ConfigError
from recsys.retrieval.sources.reengage import ReengageConfig, ReengageSource
from recsys.schema import EventWeights
from recsys.sources import Batch, History, Space

D = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
SPACE = Space(n_users=3, n_items=4, weights=EventWeights())
# user 0, session a (a day ago): views item 1 twice, buys item 0; session b (now): carts item 2, views item 3.
# users 1 and 2 teach the conversion rates: item 2 is bought by both its other users, item 3 by neither.
EVENTS = pl.DataFrame({
    "user_idx": [0, 0, 0, 0, 0, 1, 1, 2, 2, 2],
    "item_idx": [1, 1, 0, 2, 3, 2, 2, 2, 2, 3],
    "event": ["view", "view", "purchase", "cart", "view", "view", "purchase", "view", "purchase", "view"],
    "timestamp": [D - dt.timedelta(days=1)] * 3 + [D] * 2 + [D] * 5,
    "session_id": ["a", "a", "a", "b", "b", "c", "c", "d", "d", "d"],
})


def test_engagement_adds_repeated_views_and_decays_by_visit():
    m = engagement_scores(EVENTS, 3, 4, EventWeights(), decay=0.5).toarray()
    assert m[0].tolist() == [8 * 0.5, (1 + 1) * 0.5, 4.0, 1.0]
    # steps: after the views of item 1 the user turned to items 0, 2 and 3; after the purchase of 0, to 2 and 3
    m = engagement_scores(EVENTS, 3, 4, EventWeights(), decay=0.5, step_decay=0.5).toarray()
    assert m[0].tolist() == [8 * 0.5 * 0.25, (1 + 1) * 0.5 * 0.125, 4.0 * 0.5, 1.0]


def test_conversion_rate_by_hand():
    r = conversion_rates(EVENTS, 4, prior=2.0)
    # (user, item) pairs: u0: 0 (bought), 1, 2, 3; u1: 2 (bought); u2: 2 (bought), 3 -> 3 bought of 7;
    # 2 pseudo-buyers weigh as 2 / (3/7) users
    overall, users = 3 / 7, 2 / (3 / 7)
    assert r.tolist() == pytest.approx([(1 + 2) / (1 + users), (0 + 2) / (1 + users),
                                        (2 + 2) / (3 + users), (0 + 2) / (2 + users)])
    r = conversion_rates(EVENTS, 4, prior=2.0, unit="users")  # the rule before 2026-12-03: 2 pseudo-users
    assert r.tolist() == pytest.approx([(1 + 2 * overall) / (1 + 2), (0 + 2 * overall) / (1 + 2),
                                        (2 + 2 * overall) / (3 + 2), (0 + 2 * overall) / (2 + 2)])


def test_one_buyer_among_sixty_viewers_is_weak_evidence_however_rare_purchases_are():
    # user 0 views item 0, then item 1 (last); 60 others view both, ``buyers_of_0`` of them buy item 0 and
    # none item 1; 60 more view item 2, ``buyers_of_2`` of them buy it (how common purchases are)
    def log(buyers_of_0: int, buyers_of_2: int) -> pl.DataFrame:
        users = [0, 0] + [u for u in range(1, 61) for _ in (0, 1)] + list(range(61, 121))
        items = [0, 1] + [0, 1] * 60 + [2] * 60
        events = ["view", "view"] + [e for u in range(1, 61) for e in ("purchase" if u <= buyers_of_0 else "view", "view")]
        events += ["purchase"] * buyers_of_2 + ["view"] * (60 - buyers_of_2)
        return pl.DataFrame({"user_idx": users, "item_idx": items, "event": events,
                             "timestamp": [D + dt.timedelta(seconds=i) for i in range(len(users))]})
    space = Space(n_users=121, n_items=3, weights=EventWeights())

    def first(events, **config) -> int:
        src = ReengageSource(space, ReengageConfig(decay=1.0, step_decay=0.7, **config)).fit(events, ("train",))
        return int(src.candidates(Batch(History(events, np.arange(121), space), np.array([0])), 2, True)[0][0, 0])
    # item 0 scores 0.7 · (1 + 3) / (61 + s), the last view 1 · (0 + 3) / (61 + s): 2.8 < 3 whatever s is
    assert first(log(1, 0)) == 1 and first(log(1, 60)) == 1
    # twenty buyers of sixty are strong evidence: 0.7 · (20 + 3) > 3
    assert first(log(20, 60)) == 0
    # the old rule (20 pseudo-users) let the one buyer win where purchases are rare (1 in 182 pairs):
    # 0.7 · (1 + 20/182) / 81 > (0 + 20/182) / 81
    assert first(log(1, 0), prior=20.0, prior_unit="users") == 0


def test_reengage_config_errors_and_old_configs(tmp_path):
    with pytest.raises(ConfigError) as e:
        ReengageConfig(prior_unit="items")
    assert str(e.value) == "reengage prior_unit='items': give 'buyers' or 'users'"
    # an artifact built before prior_unit saved {decay, prior, purchase, step_decay}: its prior counted users
    (tmp_path / "config.json").write_text(json.dumps({"decay": 0.8, "prior": 20.0, "purchase": "purchase",
                                                      "step_decay": 0.7}))
    assert ReengageSource.saved_config(tmp_path) == ReengageConfig(prior=20.0, prior_unit="users")
    ReengageSource(SPACE).save_config(tmp_path)
    assert ReengageSource.saved_config(tmp_path) == ReengageConfig()


def answer(src, include_seen=True):
    ids, scores = src.candidates(Batch(History(EVENTS, np.arange(3), SPACE), np.array([0])), 4, include_seen)
    keep = ids[0] >= 0
    return ids[0][keep].tolist(), scores[0][keep].tolist()


def test_unbought_interest_ranked_by_conversion(tmp_path):
    src = ReengageSource(SPACE, ReengageConfig(decay=0.5, step_decay=0.5, prior=2.0)).fit(EVENTS, ("train",))
    r = conversion_rates(EVENTS, 4, prior=2.0)
    ids, scores = answer(src)
    # item 0 was bought: left out; item 2 (cart, now, one step back) 4 · 0.5 · r2; item 3 (the last view) 1 · r3;
    # item 1 (two views a visit and three steps ago) 2 · 0.5 · 0.125 · r1
    assert ids == [2, 3, 1]
    assert scores == pytest.approx([2 * r[2], 1.0 * r[3], 0.125 * r[1]])
    assert answer(src, include_seen=False) == ([], [])  # it proposes only the user's own items
    src.save(tmp_path)
    assert answer(ReengageSource.load(tmp_path, SPACE)) == answer(src)
    assert ReengageSource.load(None, SPACE) is None  # an artifact built without it
