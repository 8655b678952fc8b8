"""The repeat source: TIFU-KNN scores of the user's own baskets blended with their neighbours'."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from recsys.errors import ConfigError
from recsys.retrieval.sources.repeat import RepeatConfig, RepeatSource
from recsys.schema import EventWeights
from recsys.sources import Batch, History, Space

D = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
SPACE = Space(n_users=3, n_items=4, weights=EventWeights())
# one basket each: user 0 bought items 0 and 1, user 1 items 0 and 2, user 2 item 3
EVENTS = pl.DataFrame({"user_idx": [0, 0, 1, 1, 2], "item_idx": [0, 1, 0, 2, 3], "event": ["purchase"] * 5,
                       "timestamp": [D] * 5})


def answer(src, rows=(0,), include_seen=True, allowed=None):
    batch = Batch(History(EVENTS, np.arange(3), SPACE), np.array(rows))
    ids, scores = src.candidates(batch, 4, include_seen, allowed)
    return ids[0][ids[0] >= 0].tolist(), scores[0][ids[0] >= 0].tolist()


def test_own_baskets_blend_with_the_nearest_user():
    src = RepeatSource(SPACE, RepeatConfig(n_neighbors=1, alpha=0.5, min_baskets=1)).fit(EVENTS, ("train",))
    # vectors: one basket, one group, weight 1 -> purchase weight 8 per item: v0 = [8, 8, 0, 0], v1 = [8, 0, 8, 0].
    # User 1 is user 0's nearest (cosine 1/2; user 2: 0): 0.5 · v0 + 0.5 · v1 = [8, 4, 4, 0]
    assert answer(src) == ([0, 1, 2], [8.0, 4.0, 4.0])
    assert answer(src, include_seen=False) == ([2], [4.0])
    assert answer(src, allowed=np.array([False, True, True, True])) == ([1, 2], [4.0, 4.0])
    assert src.fit_info.parts == ("train",) and src.fit_info.events == 5
    # by default a one-basket history gets its own items only: 0.5 · v0
    src = RepeatSource(SPACE, RepeatConfig(n_neighbors=1, alpha=0.5)).fit(EVENTS)
    assert answer(src) == ([0, 1], [4.0, 4.0])


def test_saved_and_loaded_it_answers_the_same(tmp_path):
    src = RepeatSource(SPACE, RepeatConfig(n_neighbors=1, alpha=0.5, min_baskets=1)).fit(EVENTS, ("train",))
    src.save(tmp_path)
    back = RepeatSource.load(tmp_path, SPACE)
    assert back.config == src.config and answer(back) == answer(src)
    # an artifact built before the source learnt has no folder: the user's own items alone
    ids, scores = answer(RepeatSource.load(None, SPACE))
    assert ids == [0, 1] and scores == pytest.approx([0.9 * 8, 0.9 * 8])


def test_forget_and_add_items():
    src = RepeatSource(SPACE, RepeatConfig(n_neighbors=1, alpha=0.5, min_baskets=1)).fit(EVENTS)
    assert src.forget(1)
    # user 1 has nothing left: users 1 and 2 tie at cosine 0, the smaller index wins, and adds nothing
    assert answer(src) == ([0, 1], [4.0, 4.0])
    assert src.add_items(2) and src.vectors.shape == (3, 6)


def test_bad_config_names_the_knob():
    with pytest.raises(ConfigError, match=r"repeat within_decay=0.0: give a value in \(0, 1\]"):
        RepeatConfig(within_decay=0.0)
