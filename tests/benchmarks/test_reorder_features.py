"""The request-time features of benchmarks/reorder_features.py, worked out by hand."""

import runpy
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[2]


def test_time_features_by_hand():
    mod = runpy.run_path(str(REPO / "benchmarks" / "reorder_features.py"))
    # one user, baskets on days 0, 4 and 8 (ages 2, 1, 0): item 5 in the first and the last, item 6 in the middle
    rows = pl.DataFrame({"user_idx": [0, 0, 0], "item_idx": [5, 6, 5], "_age": [2, 1, 0], "_n": [3] * 3,
                         "_day": [0.0, 4.0, 8.0]})
    f = pl.DataFrame({"user_idx": [0, 0], "item_idx": [6, 5]})
    got = mod["time_features"](f, rows, pl.DataFrame({"user_idx": [0], "_now": [10.0]}))
    # rows in (user, item) order: item 5, then item 6
    # item 5: now - last basket = 10 - 8; now - its last = 10 - 8; over its interval (8 - 0) / (2 - 1); user: (8 - 0) / (3 - 1)
    # item 6: bought once on day 4, so its interval is the floor of 1 day
    assert np.allclose(got, [[10 - 8, 10 - 8, (10 - 8) / 8, 8 / 2], [10 - 8, 10 - 4, (10 - 4) / 1, 8 / 2]])


def test_own_then_new_by_hand():
    mod = runpy.run_path(str(REPO / "benchmarks" / "reorder_features.py"))
    rows = mod["own_then_new"]([4, 5], [8, 9, 7], 3)
    # k own items first, then the new ones in the fused list's order; k = 0 … 3 (only 2 own items exist)
    assert rows.tolist() == [[8, 9, 7], [4, 8, 9], [4, 5, 8], [4, 5, 8]]
    # a short list pads with -1 and, with too few new items, tops up with the remaining own ones
    assert mod["own_then_new"]([4, 5, 6], [], 4).tolist() == [[4, 5, 6, -1]] * 5
    assert mod["own_then_new"]([4, 5, 6], [9], 3).tolist() == [[9, 4, 5], [4, 9, 5], [4, 5, 9], [4, 5, 6]]
