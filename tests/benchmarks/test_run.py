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


def rows(**per_user):
    return {name: {"test": {"ndcg@10": sum(v) / len(v)}, "per_user": {"ndcg@10": v}} for name, v in per_user.items()}


def test_versus_best_peer_and_the_cold_slice():
    import numpy as np
    import polars as pl

    from recsys.eval.protocols import EvalTask

    mod = runpy.run_path(str(REPO / "benchmarks" / "run.py"))
    r = rows(**{"popularity": [0.0, 0.5, 0.5, 0.0], "recency": [0.5, 0.5, 0.5, 0.5],
                "engine/merged": [1.0, 0.5, 0.5, 0.0], "engine/reranked": [1.0, 1.0, 0.5, 0.5]})
    v = mod["versus_best_peer"](r)
    # the served list (reranked) against the best peer (recency): 0.75 / 0.5, and 0.75 - 0.5
    assert (v["engine"], v["peer"], v["ratio"], v["diff"], v["users"]) == ("engine/reranked", "recency", 1.5, 0.25, 4)
    assert v["diff_interval"][0] <= 0.25 <= v["diff_interval"][1] and v["ratio_interval"][0] <= 1.5
    # a reranker the artifact does not serve: the fused list is what users get
    assert mod["versus_best_peer"](r, reranker_served=False)["engine"] == "engine/merged"
    # users 0 and 2 have targets that had at most 5 events in the history (item 1: 6 events)
    history = pl.DataFrame({"user_idx": [0] * 6 + [1] * 2, "item_idx": [1] * 6 + [2, 3]})
    task = EvalTask("loo", np.arange(4), [np.array([0]), np.array([1]), np.array([2, 3]), np.array([1, 3])],
                    history, True, 4, 5)
    cold = mod["cold_slice"](task, r)
    assert cold["users"] == 2 and cold["ndcg@10"]["engine/reranked"] == (1.0 + 0.5) / 2
    assert cold["ndcg@10"]["popularity"] == (0.0 + 0.5) / 2
    # the new-item slice: every target absent from the history (items 0 and 2, 3 not touched: users 0 and 2)
    history = pl.DataFrame({"user_idx": [0, 1], "item_idx": [1, 1]})
    new = mod["cold_slice"](EvalTask("loo", np.arange(4), task.targets, history, True, 4, 5), r, 0)
    assert new["users"] == 2 and new["rule"] == "every target with <= 0 events in the history"
    assert new["ndcg@10"]["engine/merged"] == (1.0 + 0.5) / 2


def test_peer_lists_join_only_on_the_same_split(tmp_path):
    mod = runpy.run_path(str(REPO / "benchmarks" / "run.py"))
    sasrec = {"config": {"epochs": "13"}, "fit_seconds": 2304.0, "test": {"ndcg@10": 0.25}, "fingerprint": "abc",
              "per_user": {"ndcg@10": [0.5, 0.0], "recall@10": [1.0, 0.0], "recall@100": [1.0, 0.0]}}
    path = tmp_path / "recbole_shop.json"
    path.write_text(json.dumps({"dataset": "shop", "protocol": "loo", "models": {"SASRec": sasrec}}))
    got = mod["peer_list_rows"](path, "shop", "loo", "abc", 2)
    assert list(got) == ["recbole/SASRec"] and got["recbole/SASRec"]["per_user"]["ndcg@10"] == [0.5, 0.0]
    with pytest.raises(SystemExit, match=r"SASRec's lists were scored on other data or another split than this run; "
                                         r"score them again with `python benchmarks/recbole_peers.py --score-only`"):
        mod["peer_list_rows"](path, "shop", "loo", "other", 2)
    with pytest.raises(SystemExit, match=r"lists of shop \(loo\), not shop \(temporal\)"):
        mod["peer_list_rows"](path, "shop", "temporal", "abc", 2)
