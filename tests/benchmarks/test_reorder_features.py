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
