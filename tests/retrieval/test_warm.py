"""--warm-start: stable id maps, old weights as the starting point, fewer epochs to the same recall."""

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from recsys import layout
from recsys.artifacts import Artifact
from recsys.errors import ConfigError
from recsys.pipeline import BuildOptions, build
from recsys.prepare import load_prepared_tables
from recsys.retrieval.charngram import CharNgramEncoder
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig
from recsys.synthetic import generate_synthetic

TOWER = TowerConfig(dim=32, max_len=20, n_layers=1, dropout=0.1, id_dropout=0.5)


def _opts(**kw) -> BuildOptions:
    return BuildOptions(**{"holdout": "temporal", "tower": TOWER, "sources": {"als": None}, "show_progress": False,
                           "text_encoder": CharNgramEncoder(dim=16),
                           "train": TrainConfig(epochs=12, pretrain_epochs=1, patience=12, lr=3e-3), **kw})


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    """Day 1: the first half of the events, without the 40 items launched later.
    Day 2: the second half, with the whole catalogue."""
    d = generate_synthetic(n_users=1000, n_items=200, n_needs=6, sessions_per_user=12, seed=21).dataset
    cut = d.events["timestamp"].quantile(0.5, interpolation="lower")
    later = d.items["item_id"].sample(40, seed=0).implode()
    early = d.events.filter((pl.col("timestamp") < cut) & ~pl.col("item_id").is_in(later))
    late = d.events.filter(pl.col("timestamp") >= cut)
    day1 = replace(d, events=early, items=d.items.filter(~pl.col("item_id").is_in(later)))
    day2 = replace(d, events=late)
    folder = tmp_path_factory.mktemp("warm")
    build(day1, folder / "day1", opts=_opts())
    return day1, day2, folder


def _epochs_to(history: list[dict], target: float) -> int:
    return next((h["epoch"] for h in history if h["valid"] >= target), 10**6)


def test_warm_start_keeps_ids_and_needs_fewer_epochs(halves):
    day1, day2, folder = halves
    cold = build(day2, folder / "cold", opts=_opts())
    warm = build(day2, folder / "warm", opts=_opts(warm_start=folder / "day1"))
    old = load_prepared_tables(Artifact.open(folder / "day1"))
    new = load_prepared_tables(Artifact.open(folder / "warm"))
    # old ids keep their indices; ids first seen on day 2 come after them
    assert new["items"].ids[:len(old["items"])].tolist() == old["items"].ids.tolist()
    assert new["users"].ids[:len(old["users"])].tolist() == old["users"].ids.tolist()
    assert len(new["items"]) == 200 and len(old["items"]) == 160 and warm["warm_start"]["items"] == 160
    # the char-ngram space of day 1 is reused, not refitted
    a = Artifact.open(folder / "day1").load_array(layout.TEXT_VECTORS)
    b = Artifact.open(folder / "warm").load_array(layout.TEXT_VECTORS)
    assert np.allclose(b[:len(a)], a, atol=1e-6)
    assert warm["pretrain_loss"] == []  # no pre-training on top of trained towers
    target = 0.95 * cold["valid_recall@10"]
    cold_n, warm_n = _epochs_to(cold["history"], target), _epochs_to(warm["history"], target)
    print("cold", [round(h["valid"], 3) for h in cold["history"]], "warm", [round(h["valid"], 3) for h in warm["history"]])
    assert warm_n < cold_n, (warm_n, cold_n)


def test_warm_start_refuses_another_text_model(halves):
    _, day2, folder = halves
    with pytest.raises(ConfigError, match=r"--text-model other-model: the warm-start artifact .*day1 was trained on "
                                          r"char-ngram vectors; drop --text-model"):
        build(day2, folder / "x", opts=_opts(warm_start=folder / "day1", text_model="other-model"))
