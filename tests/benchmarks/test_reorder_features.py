"""benchmarks/reorder_features.py's own-then-new lists, worked out by hand (its time features are the
library's: tests/test_reorder.py)."""

import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_own_then_new_by_hand():
    mod = runpy.run_path(str(REPO / "benchmarks" / "reorder_features.py"))
    rows = mod["own_then_new"]([4, 5], [8, 9, 7], 3)
    # k own items first, then the new ones in the fused list's order; k = 0 … 3 (only 2 own items exist)
    assert rows.tolist() == [[8, 9, 7], [4, 8, 9], [4, 5, 8], [4, 5, 8]]
    # a short list pads with -1 and, with too few new items, tops up with the remaining own ones
    assert mod["own_then_new"]([4, 5, 6], [], 4).tolist() == [[4, 5, 6, -1]] * 5
    assert mod["own_then_new"]([4, 5, 6], [9], 3).tolist() == [[9, 4, 5], [4, 9, 5], [4, 5, 9], [4, 5, 6]]


def test_the_left_out_inputs_by_hand():
    import datetime as dt

    import polars as pl

    mod = runpy.run_path(str(REPO / "benchmarks" / "reorder_features.py"))
    # user 0's baskets, newest first: age 0 {5, 6}, age 1 {5}, age 2 {6, 7}
    before = pl.DataFrame({"user_idx": [0] * 5, "item_idx": [5, 6, 5, 6, 7], "_age": [0, 0, 1, 2, 2]})
    f = pl.DataFrame({"user_idx": [0, 0, 0], "item_idx": [5, 6, 7], "since": [0, 0, 2], "decay_7": [1.7, 1.49, 0.49],
                      "share": [2 / 3, 2 / 3, 1 / 3]})
    assert mod["last10_features"](f, before)[:, :3].tolist() == [[1, 1, 0], [1, 0, 1], [0, 0, 1]]
    style = mod["style_features"](f, before)
    # basket 0 holds 5 (in basket 1) and 6 (not): 1/2 from the previous basket; basket 1 holds 5 (not in basket 2): 0;
    # bought before at all: basket 0's 5 and 6 both (1), basket 1's 5 not (0); the oldest basket is not judged
    assert style[0, :2].tolist() == [(1 / 2 + 0) / 2, (1 + 0) / 2]
    assert style[:, 2].tolist() == [0.25, 0.25, 0.0]  # "in the last basket" times the first share
    t = [dt.datetime(2020, 1, 1, 10, 0, s) for s in (0, 1, 2)]
    events = pl.DataFrame({"user_idx": [0] * 3, "_v": [1] * 3, "item_idx": [6, 5, 7], "timestamp": t, "_age": [0] * 3})
    place = mod["place_features"](f, events)
    assert place[:, 0].tolist() == [0.5, 0.0, 1.0]  # 6 added first, then 5, then 7


def test_listwise_fit_ranks_within_each_list():
    import numpy as np

    mod = runpy.run_path(str(REPO / "benchmarks" / "reorder_features.py"))
    # two lists (a user at two cuts); within each the bought item has the larger feature 0, but list 2's
    # items all read higher than list 1's: a pointwise model is pulled by that, a listwise one only ranks within
    x = np.array([[1.0, 0.0], [0.0, 0.0], [0.5, 0.0], [11.0, 1.0], [10.0, 1.0], [10.5, 1.0]])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    groups = np.array([7, 7, 7, 3, 3, 3])
    scores = mod["listwise_scores"](x, y, groups, x, l2=0.01)
    assert scores[0] > scores[2] > scores[1] and scores[3] > scores[5] > scores[4]
    # lists with nothing bought, or everything, teach nothing and are left out of the loss
    x2, y2, g2 = np.vstack([x, [[5.0, 0.0], [6.0, 0.0], [2.0, 0.0]]]), np.r_[y, 0.0, 0.0, 1.0], np.r_[groups, 9, 9, 4]
    again = mod["listwise_scores"](x2, y2, g2, x, l2=0.01)
    assert np.isfinite(again).all() and np.argsort(again).tolist() == np.argsort(scores).tolist()


def test_aisle_inputs_by_hand():
    import numpy as np
    import polars as pl

    mod = runpy.run_path(str(REPO / "benchmarks" / "reorder_features.py"))
    # user 0's baskets, newest first: age 0 {5}, age 1 {6, 7}, age 2 {5}; items 5 and 6 on aisle 1, item 7 on aisle 2
    before = pl.DataFrame({"user_idx": [0] * 4, "item_idx": [5, 6, 7, 5], "_age": [0, 1, 1, 2], "_n": [3] * 4})
    f = pl.DataFrame({"user_idx": [0, 0, 0], "item_idx": [5, 6, 7], "baskets": [2, 1, 1], "since": [0, 1, 1]})
    aisle = pl.DataFrame({"item_idx": [5, 6, 7], "_g": [1, 1, 2]})
    got = mod["aisle_features"](f, before, aisle)
    # aisle 1: baskets of ages 0, 1, 2 (newest 0, all 3 of 3, decayed 1 + 0.7 + 0.49, products 5 and 6, mean gap 1)
    # aisle 2: the basket of age 1 alone (newest 1, 1 of 3, decayed 0.7, one product, gap 0 read as 0.5)
    want = [[0, 3 / 3, 2 / 3, 0 - 0, 1 + 0.7 + 0.49, 2, 0 / 1],
            [0, 3 / 3, 1 / 3, 1 - 0, 1 + 0.7 + 0.49, 2, 0 / 1],  # item 6: another product (5) bought there since
            [1, 1 / 3, 1 / 1, 1 - 1, 0.7, 1, 1 / 0.5]]
    assert np.allclose(got, want)
