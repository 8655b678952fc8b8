"""The two-tower stage's shape from the data: the history the user tower reads and its windows."""

import numpy as np
import polars as pl
import pytest

from recsys.pipeline import build_options
from recsys.pipeline.two_tower import repeat_share, shape_for_data
from recsys.retrieval.sequences import predicted_positions
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig


def test_repeat_share_by_hand():
    # user 0: a, b, a, a (2 returns); user 1: a, c (none); user 2: b, b, b (2 returns): 4 of 9 events return
    events = pl.DataFrame({"user_idx": [0, 0, 0, 0, 1, 1, 2, 2, 2], "item_idx": [1, 2, 1, 1, 1, 3, 2, 2, 2]})
    assert repeat_share(events) == pytest.approx(4 / 9)
    assert repeat_share(events.head(0)) == 0.0


LONG = np.full(10, 101)  # ten users of 101 training events


def test_positions_an_epoch_predicts_by_hand():
    # 101 events: windows of 50 end at 101 and 51 (50 + 50); windows of 20 every 5 end at 101, 96, ..., 6:
    # the 17 ending at 21 or later predict 20 each, those ending at 16, 11, 6 predict 15, 10, 5
    assert predicted_positions(LONG, 50, 50) == 10 * (50 + 50)
    assert predicted_positions(LONG, 20, 5) == 10 * (17 * 20 + 15 + 10 + 5)
    assert predicted_positions(np.array([0, 1, 3]), 20, 5) == 2  # a user of 3 events: one window, 2 positions


def test_data_that_never_repeats_reads_a_short_history_in_overlapping_windows():
    tower, cfg, why = shape_for_data(TowerConfig(), TrainConfig(), 0.05, LONG)
    # 20 events, windows every 20 // 4 = 5, epochs 40 · 1,000 // 3,700 = 10: no more positions than before
    assert (tower.max_len, tower.dropout, cfg.window_stride, cfg.epochs) == (20, 0.4, 5, 10)
    assert why == {"repeat_share": 0.05, "rule": "repeat share < 0.1",
                   "shaped": ["max_len", "dropout", "window_stride", "epochs"]}


def test_short_histories_keep_most_of_their_epochs():
    # 11 events: 10 positions at 50 / 50, 10 + 5 at 20 / 5: 40 · 10 // 15 = 26 epochs, not a quarter of 40
    _, cfg, _ = shape_for_data(TowerConfig(), TrainConfig(), 0.0, np.full(5, 11))
    assert (cfg.window_stride, cfg.epochs) == (5, 26)


def test_data_that_repeats_keeps_the_long_default():
    tower, cfg, why = shape_for_data(TowerConfig(), TrainConfig(), 0.1, LONG)
    assert (tower, cfg) == (TowerConfig(), TrainConfig())
    assert why == {"repeat_share": 0.1, "rule": "repeat share >= 0.1", "shaped": []}


def test_what_the_user_set_is_kept():
    # named on the command line or in a config file, even at the default's value
    opts = build_options({"train": {"epochs": 40}, "tower": {"dropout": 0.5}}, None, tower={"max_len": None},
                         train={"window_stride": 10})
    assert opts.explicit == frozenset({"train.epochs", "train.window_stride", "tower.dropout"})
    tower, cfg, why = shape_for_data(opts.tower, opts.train, 0.0, LONG, opts.explicit)
    assert (tower.max_len, tower.dropout, cfg.window_stride, cfg.epochs) == (20, 0.5, 10, 40)
    assert why["shaped"] == ["max_len"]
    # set away from the default in Python, or fixed by a warm start's towers
    tower, cfg, _ = shape_for_data(TowerConfig(max_len=30), TrainConfig(epochs=12), 0.0, LONG)
    assert (tower.max_len, cfg.window_stride, cfg.epochs) == (30, 7, 12)
    tower, cfg, _ = shape_for_data(TowerConfig(), TrainConfig(), 0.0, LONG, keep_tower=True)
    # windows of 50 every 12 end at 101, 89, ..., 5: 5 · 50 + 40 + 28 + 16 + 4 = 338 positions; 40 · 100 // 338
    assert (tower.max_len, tower.dropout, cfg.window_stride, cfg.epochs) == (50, 0.5, 12, 11)


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
    assert summary["shape"]["repeat_share"] == 0.0
    assert summary["shape"]["shaped"] == ["max_len", "dropout", "window_stride"] and summary["shape"]["dropout"] == 0.4
    art = Artifact.open(tmp_path / "art")
    config = art.manifest["config"]
    assert (config["tower"]["max_len"], config["tower"]["dropout"], config["train"]["window_stride"],
            config["train"]["epochs"]) == (20, 0.4, 5, 2)
    assert art.load_json(layout.MODEL_CONFIG)["max_len"] == 20
