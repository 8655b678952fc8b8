"""The RecBole export keeps recsys's leave-one-out order: RecBole holds out the same events."""

import argparse
import runpy
from pathlib import Path

import polars as pl

from recsys.datasets import default_cleaning, load_dataset
from recsys.prepare import prepare

REPO = Path(__file__).resolve().parents[2]


def test_export_order_matches_the_split(tmp_path):
    mod = runpy.run_path(str(REPO / "benchmarks" / "recbole_peers.py"))
    mod["export"](argparse.Namespace(dataset="default", data_dir=None), tmp_path)
    inter = pl.read_csv(tmp_path / "data" / "default" / "default.inter", separator="\t",
                        schema_overrides={"user_id:token": pl.Utf8, "item_id:token": pl.Utf8})
    prep = prepare(load_dataset("default"), default_cleaning("default"), holdout="loo")
    assert inter.height == prep.events.height
    # RecBole's leave-one-out takes each user's last row by time: the same events as recsys's test split
    last = inter.sort("timestamp:float").group_by("user_id:token").agg(pl.col("item_id:token").last())
    want = dict(zip(prep.split.test["user_id"], prep.split.test["item_id"]))
    got = dict(zip(last["user_id:token"], last["item_id:token"]))
    assert got == want


def test_markdown_lists_models_best_first():
    mod = runpy.run_path(str(REPO / "benchmarks" / "recbole_peers.py"))
    result = {"recbole": "1.2.1", "dataset": "movielens-100k", "protocol": "loo", "date": "2026-12-02",
              "models": {"BERT4Rec": {"ndcg@10": 0.0786, "recall@10": 0.1485, "recall@100": 0.5832, "fit_seconds": 1620.4},
                         "SASRec": {"ndcg@10": 0.0947, "recall@10": 0.1835, "recall@100": 0.6098, "fit_seconds": 2304.0}}}
    assert mod["markdown"](result).splitlines()[2:] == [
        "| model | NDCG@10 | Recall@10 | Recall@100 | fit s |", "|---|---|---|---|---|",
        "| SASRec | 0.0947 | 0.1835 | 0.6098 | 2304 |", "| BERT4Rec | 0.0786 | 0.1485 | 0.5832 | 1620 |"]
