"""The two-tower stage's shape from the data: the history the user tower reads and its windows."""

import polars as pl
import pytest

from recsys.pipeline import build_options
from recsys.pipeline.two_tower import repeat_share, shape_for_data
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig


def test_repeat_share_by_hand():
    # user 0: a, b, a, a (2 returns); user 1: a, c (none); user 2: b, b, b (2 returns): 4 of 9 events return
    events = pl.DataFrame({"user_idx": [0, 0, 0, 0, 1, 1, 2, 2, 2], "item_idx": [1, 2, 1, 1, 1, 3, 2, 2, 2]})
    assert repeat_share(events) == pytest.approx(4 / 9)
    assert repeat_share(events.head(0)) == 0.0


def test_data_that_never_repeats_reads_a_short_history_in_overlapping_windows():
    tower, cfg, why = shape_for_data(TowerConfig(), TrainConfig(), share=0.05)
    # 20 events, windows every 20 // 4 = 5, epochs 40 · 5 / 20 = 10: as many positions as 40 epochs of 20
    assert (tower.max_len, cfg.window_stride, cfg.epochs) == (20, 5, 10)
    assert why == {"repeat_share": 0.05, "rule": "repeat share < 0.1", "shaped": ["max_len", "window_stride", "epochs"]}


def test_data_that_repeats_keeps_the_long_default():
    tower, cfg, why = shape_for_data(TowerConfig(), TrainConfig(), share=0.1)
    assert (tower, cfg) == (TowerConfig(), TrainConfig())
    assert why == {"repeat_share": 0.1, "rule": "repeat share >= 0.1", "shaped": []}


def test_what_the_user_set_is_kept():
    # named on the command line or in a config file, even at the default's value
    opts = build_options({"train": {"epochs": 40}}, None, tower={"max_len": None}, train={"window_stride": 10})
    assert opts.explicit == frozenset({"train.epochs", "train.window_stride"})
    tower, cfg, why = shape_for_data(opts.tower, opts.train, 0.0, opts.explicit)
    assert (tower.max_len, cfg.window_stride, cfg.epochs) == (20, 10, 40) and why["shaped"] == ["max_len"]
    # set away from the default in Python, or fixed by a warm start's towers
    tower, cfg, _ = shape_for_data(TowerConfig(max_len=30), TrainConfig(epochs=12), 0.0)
    assert (tower.max_len, cfg.window_stride, cfg.epochs) == (30, 7, 12)
    tower, cfg, _ = shape_for_data(TowerConfig(), TrainConfig(), 0.0, keep_max_len=True)
    assert (tower.max_len, cfg.window_stride, cfg.epochs) == (50, 12, 10)


def test_a_build_on_data_that_never_repeats_records_the_shape_it_chose(tmp_path):
    from recsys import layout
    from recsys.artifacts import Artifact
    from recsys.pipeline import BuildOptions, build
    from recsys.retrieval.charngram import CharNgramEncoder
    from recsys.synthetic import generate_synthetic

    d = generate_synthetic(n_users=200, n_items=120, n_needs=4, seed=1)
    d.dataset.events = d.dataset.events.unique(["user_id", "item_id"], keep="first", maintain_order=True)
    opts = BuildOptions(holdout="loo", tower=TowerConfig(dim=16, n_layers=1), show_progress=False,
                        train=TrainConfig(epochs=2, pretrain_epochs=0), text_encoder=CharNgramEncoder(dim=16))
    summary = build(d.dataset, tmp_path / "art", opts=opts)
    assert summary["shape"]["repeat_share"] == 0.0 and summary["shape"]["shaped"] == ["max_len", "window_stride"]
    art = Artifact.open(tmp_path / "art")
    config = art.manifest["config"]
    assert (config["tower"]["max_len"], config["train"]["window_stride"], config["train"]["epochs"]) == (20, 5, 2)
    assert art.load_json(layout.MODEL_CONFIG)["max_len"] == 20
