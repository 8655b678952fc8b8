"""The reranker heads' AUCs in the funnel, on a hand-made task."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from recsys.eval.funnel import head_auc
from recsys.eval.protocols import EvalTask
from recsys.schema import EventWeights


def test_head_auc_by_hand():
    t = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    # user 0 viewed item 5 and bought item 7; user 1 bought item 2
    held = pl.DataFrame({"user_idx": [0, 0, 1], "item_idx": [5, 7, 2], "event": ["view", "purchase", "purchase"],
                         "timestamp": [t, t, t]})
    task = EvalTask("temporal", np.array([0, 1]), [np.array([5, 7]), np.array([2])], held, True, 2, 10, held=held)
    items = np.array([[7, 5, 1], [3, 2, -1]])
    click = np.array([[0.9, 0.8, 0.1], [0.7, 0.6, np.nan]])
    purchase = np.array([[0.9, 0.2, 0.3], [0.1, 0.8, np.nan]])
    h = head_auc(task, items, click, purchase, EventWeights(), None)
    assert (h["candidates"], h["touched"], h["bought"]) == (5, 3, 2)
    # click: touched {7: .9, 5: .8, 2: .6} vs not {1: .1, 3: .7}: pairs won .9>.1,.9>.7,.8>.1,.8>.7,.6>.1 = 5 of 6
    assert h["auc_click"] == pytest.approx(5 / 6, abs=1e-4)
    # purchase: bought {7: .9, 2: .8} vs {5: .2, 1: .3, 3: .1}: all 6 pairs won
    assert h["auc_purchase"] == 1.0
    # among the touched (7, 5, 2): bought {.9, .8} vs viewed {.2}: 2 of 2
    assert h["auc_purchase_among_touched"] == 1.0
