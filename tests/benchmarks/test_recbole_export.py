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
