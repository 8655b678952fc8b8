"""The reorder source: the user's own items ranked by a model of when items are bought again."""

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from recsys.errors import ConfigError
from recsys.retrieval.sources.reorder import ReorderConfig, ReorderSource
from recsys.schema import EventWeights
from recsys.sources import Batch, History, Space

D = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)


def shop(n_users=30, n_baskets=6):
    """Every user buys staple item 0 in every basket and one new item per basket (items 1...): a
    staple always comes back, a one-off never does."""
    rows = []
    for u in range(n_users):
        for b in range(n_baskets):
            t = D + dt.timedelta(days=7 * b)
            rows += [(u, 0, t, f"{u}-{b}"), (u, 1 + b, t + dt.timedelta(minutes=1), f"{u}-{b}")]
    return pl.DataFrame(rows, schema=["user_idx", "item_idx", "timestamp", "session_id"], orient="row").with_columns(
        pl.lit("purchase").alias("event"))


def answer(src, events, space, include_seen=True, allowed=None):
    batch = Batch(History(events, np.arange(space.n_users), space), np.array([0]))
    ids, scores = src.candidates(batch, 10, include_seen, allowed)
    return ids[0][ids[0] >= 0].tolist(), scores[0][ids[0] >= 0].tolist()


def test_it_learns_that_the_staple_comes_back():
    ev = shop()
    space = Space(n_users=30, n_items=8, weights=EventWeights())
    src = ReorderSource(space).fit(ev, ("train",))
    assert src.fit_info.parts == ("train",) and src.fit_info.events == ev.height
    ids, scores = answer(src, ev, space)
    # the staple first, far ahead of the one-offs, which never came back
    assert ids[0] == 0 and scores[0] > 0.9 and max(scores[1:]) < 0.1
    assert sorted(ids) == [0, 1, 2, 3, 4, 5, 6]  # the user's own items only
    assert answer(src, ev, space, include_seen=False) == ([], [])
    allowed = np.ones(8, dtype=bool)
    allowed[0] = False
    assert 0 not in answer(src, ev, space, allowed=allowed)[0]


def test_before_it_learns_it_ranks_by_baskets_decayed_by_age():
    ev = shop(n_users=1, n_baskets=3)
    space = Space(n_users=1, n_items=8, weights=EventWeights())
    src = ReorderSource(space, ReorderConfig(min_history=5)).fit(ev)  # no user has 5 baskets before a cut
    assert src.model is None
    # item 0 in baskets of age 0, 1, 2: 1 + 0.7 + 0.49; item 3 in the newest basket: 1; 2: 0.7; 1: 0.49
    ids, scores = answer(src, ev, space)
    assert ids == [0, 3, 2, 1] and scores == pytest.approx([1 + 0.7 + 0.49, 1.0, 0.7, 0.49])


def test_saved_and_loaded_it_answers_the_same(tmp_path):
    ev = shop()
    space = Space(n_users=30, n_items=8, weights=EventWeights())
    src = ReorderSource(space).fit(ev)
    src.save(tmp_path)
    back = ReorderSource.load(tmp_path, space)
    assert back.config == src.config and answer(back, ev, space) == answer(src, ev, space)
    assert ReorderSource.load(None, space) is None  # an artifact built without it has none
    assert back.add_items(2) and back.popularity.shape == (10,)


def test_bad_config_names_the_knob():
    with pytest.raises(ConfigError, match=r"reorder max_back=0, min_history=2, l2=1.0, max_rows=1000000: give max_back ≥ 1"):
        ReorderConfig(max_back=0)
    with pytest.raises(ConfigError, match=r"^reorder model='forest', rounds=300, leaves=15: give model 'trees' or "
                                          r"'logistic', rounds ≥ 1 and leaves ≥ 2$"):
        ReorderConfig(model="forest")


def test_it_stores_every_users_rate_of_buying_an_item_and_its_group_again():
    ev = shop()  # 30 users, 6 baskets: item 0 in each, item 1 + b in basket b alone
    groups = np.array([0, 1, 1, 1, 1, 1, 1, 1])  # the staple on its own shelf
    space = Space(n_users=30, n_items=8, weights=EventWeights(), item_groups=groups)
    src = ReorderSource(space).fit(ev)
    # followed by a basket: item 0 five times a user (always again), items 1 … 5 once each (never again)
    prior = 150 / (150 + 150)
    shelf = [(150 + 5 * prior) / (150 + 5), (0 + 5 * prior) / (150 + 5)]
    assert src.rates[:, 1].tolist() == pytest.approx([shelf[0]] + [shelf[1]] * 7)
    assert src.rates[:, 0].tolist() == pytest.approx([(150 + 5 * shelf[0]) / (150 + 5)]
                                                     + [(0 + 5 * shelf[1]) / (30 + 5)] * 5 + [shelf[1]] * 2)
    assert src.model.prior == prior
    assert src.add_items(1) and src.rates[-1].tolist() == [prior, prior]  # a new item: every item's rate


def test_the_logistic_model_and_an_artifact_built_before_the_trees(tmp_path):
    ev = shop()
    space = Space(n_users=30, n_items=8, weights=EventWeights())
    src = ReorderSource(space, ReorderConfig(model="logistic")).fit(ev)
    ids, scores = answer(src, ev, space)
    assert ids[0] == 0 and scores[0] > 0.9 and max(scores[1:]) < 0.1
    src.save(tmp_path)
    (tmp_path / "repeat_rates.npy").unlink()  # as saved before the trees, with no model in its config
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in config.items()
                                                      if k not in ("model", "rounds", "leaves")}))
    back = ReorderSource.load(tmp_path, space)
    assert back.config.model == "logistic" and answer(back, ev, space) == (ids, scores)


def test_the_same_events_in_another_order_give_the_same_scores_to_the_bit():
    ev = shop()
    space = Space(n_users=30, n_items=8, weights=EventWeights())
    a = ReorderSource(space).fit(ev)
    b = ReorderSource(space).fit(ev.sample(fraction=1.0, shuffle=True, seed=3))
    assert a.model.model == b.model.model
    rows = np.arange(30)
    assert (a.score_rows(Batch(History(ev, rows, space), rows)) != b.score_rows(Batch(History(ev.reverse(), rows, space), rows))).nnz == 0


def monthly_shop(n_users=120, seed=0):
    """Baskets 2 to 12 days apart (drawn), 12 to 20 of them a user: item 0 in every one, item 1
    (flour) in a basket 21 days or more after the user last had it, and a one-off item in each
    (items 2...). Only the time says when the flour is due."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        t, flour = D + dt.timedelta(days=int(rng.integers(0, 30))), None
        for b in range(int(rng.integers(12, 21))):
            s = f"{u}-{b}"
            rows += [(u, 0, t, s), (u, 2 + b, t + dt.timedelta(minutes=2), s)]
            if flour is None or t - flour >= dt.timedelta(days=21):
                rows.append((u, 1, t + dt.timedelta(minutes=1), s))
                flour = t
            t += dt.timedelta(days=int(rng.integers(2, 13)))
    return pl.DataFrame(rows, schema=["user_idx", "item_idx", "timestamp", "session_id"], orient="row").with_columns(
        pl.lit("purchase").alias("event"))


@pytest.mark.parametrize("model", ["trees", "logistic"])
def test_the_request_time_says_when_an_item_is_due_again(model):
    ev = monthly_shop()
    space = Space(n_users=120, n_items=22, weights=EventWeights())
    src = ReorderSource(space, ReorderConfig(model=model)).fit(ev)
    mine = ev.filter(pl.col("user_idx") == 0)
    last = mine.filter(pl.col("item_idx") == 0)["timestamp"].max()  # the newest basket's start
    bought = mine.filter(pl.col("item_idx") == 1)["timestamp"].max() - dt.timedelta(minutes=1)  # the flour's basket
    history = History(ev, np.arange(120), space)

    def flour(*at):  # the flour's score for user 0, one row per request time
        times = [np.nan if t is None else t.timestamp() for t in at]
        m = src.score_rows(Batch(history, np.zeros(len(at), dtype=np.int64), np.array(times)))
        return m[:, 1].toarray().ravel()

    since = (last - bought).days
    assert since < 21  # user 0's newest basket came before the flour was due
    early = flour(*[last + dt.timedelta(days=d) for d in range(2, 21 - since)])  # still less than 21 days
    due = flour(*[last + dt.timedelta(days=d) for d in range(22 - since, 13)])
    assert early.size and due.size and early.max() < 0.5 < due.min()
    before = flour(*[last - dt.timedelta(days=d) for d in (0, 1, 5)])
    assert np.all(before == before[0])  # a time before the newest basket counts as that basket's
    if model == "logistic":  # smooth: the longer since the flour, the likelier it is due
        assert np.all(np.diff(np.concatenate([early, due])) > 0)
    gap = (last - mine["timestamp"].min()).total_seconds() / (mine["session_id"].n_unique() - 1)
    # not given: user 0 returns after their mean interval
    assert flour(None)[0] == pytest.approx(flour(last + dt.timedelta(seconds=gap))[0], abs=1e-9)
    with pytest.raises(ValueError, match=r"Batch at: 2 request times for 1 rows; give one per row"):
        Batch(history, np.array([0]), np.array([0.0, 1.0]))
