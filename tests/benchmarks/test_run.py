"""The benchmark command runs end to end on a generic events + items pair."""

import json
import runpy
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_generic_pair(tmp_path, synthetic):
    pytest.importorskip("matplotlib")
    ds = synthetic.dataset
    # first touch of each item per user: the leave-one-out target is then a new item, never a seen one
    ds.events.unique(["user_id", "item_id"], keep="first", maintain_order=True).write_csv(tmp_path / "ev.csv")
    ds.items.write_csv(tmp_path / "items.csv")
    mod = runpy.run_path(str(REPO / "benchmarks" / "run.py"))
    mod["main"](["--events", str(tmp_path / "ev.csv"), "--items", str(tmp_path / "items.csv"), "--name", "shop",
                 "--protocol", "loo", "--only", "popularity", "cooccurrence", "--out", str(tmp_path / "res")])
    result = json.loads((tmp_path / "res" / "shop.json").read_text())
    assert set(result["peers"]) == {"popularity", "cooccurrence"}
    assert result["test_users"] == 300
    # the next item serves the need of the user's last items: co-occurrence beats popularity
    assert result["peers"]["cooccurrence"]["test"]["recall@20"] > result["peers"]["popularity"]["test"]["recall@20"]
    assert (tmp_path / "res" / "shop.md").read_text().startswith("### shop")
    assert (tmp_path / "res" / "shop_recall.png").stat().st_size > 1000
