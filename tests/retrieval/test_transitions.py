"""The transitions source: what followed the user's last items in everyone's histories."""

import numpy as np
import polars as pl
import pytest

from recsys.errors import ConfigError
from recsys.retrieval.sources.transitions import TransitionsConfig, TransitionsSource
from recsys.schema import EventWeights
from recsys.sources import Batch, History, Space

SPACE = Space(n_users=3, n_items=5, weights=EventWeights())
# users 0 and 1 went 0 -> 1 -> 2; user 2 went 3 -> 1 and is asked what comes next
EVENTS = pl.DataFrame({"user_idx": [0, 0, 0, 1, 1, 1, 2, 2], "item_idx": [0, 1, 2, 0, 1, 2, 3, 1],
                       "event": ["view"] * 8, "timestamp": [1, 2, 3, 1, 2, 3, 1, 2]})


def answer(src, include_seen=False, allowed=None):
    ids, scores = src.candidates(Batch(History(EVENTS, np.arange(3), SPACE), np.array([2])), 5, include_seen, allowed)
    keep = ids[0] >= 0
    return ids[0][keep].tolist(), scores[0][keep].tolist()


def test_followers_of_the_last_items_by_hand(tmp_path):
    src = TransitionsSource(SPACE, TransitionsConfig(window=2, last_n=2, decay=0.5)).fit(EVENTS, ("train",))
    # T[1, 2] = 2 (step 1, users 0 and 1); T[3, 1] = 1; T[0, 1] = 2, T[0, 2] = 2 · 1/2.
    # User 2's last items: 1 (age 0), 3 (age 1): item 2 scores 1 · T[1, 2] = 2; item 1, 0.5 · T[3, 1], is seen
    assert answer(src) == ([2], [2.0])
    assert answer(src, include_seen=True) == ([2, 1], [2.0, 0.5])
    assert answer(src, allowed=np.array([True, True, False, True, True])) == ([], [])
    src.save(tmp_path)
    assert answer(TransitionsSource.load(tmp_path, SPACE)) == answer(src)
    assert src.add_items(2) and src.matrix.shape == (7, 7)


def test_bad_config_names_the_knob():
    with pytest.raises(ConfigError, match="transitions window=0"):
        TransitionsConfig(window=0)
