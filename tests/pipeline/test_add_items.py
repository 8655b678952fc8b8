"""add-items on a Chinese catalogue with the char-ngram encoder: new items are retrieved by text."""

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from recsys import layout
from recsys.artifacts import Artifact
from recsys.errors import DataError
from recsys.pipeline import BuildOptions, add_items, build
from recsys.retrieval.charngram import CharNgramEncoder
from recsys.retrieval.recommender import Recommender
from recsys.retrieval.sequences import build_sequences
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig
from recsys.synthetic import generate_synthetic


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A Chinese-titled shop built without 32 of its 160 items, which arrive later."""
    # no future sessions of latent needs: here the next purchase follows the history's needs
    d = generate_synthetic(n_users=400, n_items=160, n_needs=8, seed=5, language="zh", future_sessions=0)
    later = d.dataset.items["item_id"].sample(32, seed=1)
    ds = replace(d.dataset, events=d.dataset.events.filter(~pl.col("item_id").is_in(later.implode())),
                 items=d.dataset.items.filter(~pl.col("item_id").is_in(later.implode())))
    out = tmp_path_factory.mktemp("zh") / "shop"
    build(ds, out, opts=BuildOptions(
        holdout="temporal", tower=TowerConfig(dim=32, max_len=20, n_layers=1, dropout=0.1, id_dropout=0.5),
        train=TrainConfig(epochs=40, pretrain_epochs=1, patience=40), text_encoder=CharNgramEncoder(dim=32),
        show_progress=False))
    new_items = d.dataset.items.filter(pl.col("item_id").is_in(later.implode()))
    return d, out, new_items


def test_new_items_are_added_without_training(shop):
    d, out, new_items = shop
    before = Artifact.open(out)
    old_ids = before.load_table(layout.ITEMS)["id"].to_list()
    weights = before.manifest["files"][layout.MODEL_WEIGHTS]["sha256"]
    result = add_items(out, new_items)
    assert result == {"artifact": str(out), "rows": 32, "added": 32, "already_present": 0, "items": 160}
    after = Artifact.open(out)  # checksums verified
    ids = after.load_table(layout.ITEMS)["id"].to_list()
    assert ids[:128] == old_ids and set(ids[128:]) == set(new_items["item_id"])
    r = Recommender(after)
    als = r.sources["als"].model
    assert r.index.ntotal == 160 and als.item_factors.shape[0] == 160
    assert not als.item_factors[128:].any()  # ALS knows nothing of them until the next build
    assert after.manifest["added_items"][0]["count"] == 32
    assert after.manifest["files"][layout.MODEL_WEIGHTS]["sha256"] != weights  # the ID table grew by 32 rows
    # a second run adds nothing and leaves the artifact as it was
    again = add_items(out, new_items)
    assert again["added"] == 0 and again["already_present"] == 32
    assert Artifact.open(out).manifest["files"] == after.manifest["files"]


def test_new_items_reach_their_eventual_buyers(shop):
    """Text-only retrieval of the new items for the users who go on to buy them (Chinese titles)."""
    d, out, new_items = shop
    if Artifact.open(out).load_table(layout.ITEMS).height == 128:
        add_items(out, new_items)
    r = Recommender.load(out)
    buys = d.dataset.events.filter(pl.col("item_id").is_in(new_items["item_id"].implode()) & (pl.col("event") == "purchase"))
    pairs = buys.unique(["user_id", "item_id"]).sort("user_id", "item_id")
    pairs = pairs.filter(pl.col("user_id").is_in(pl.Series(r.users.ids.tolist()).implode()))
    users, items = r.users.to_internal(pairs["user_id"]), r.items.to_internal(pairs["item_id"])
    ids, _ = r.index.search(r.model.user_vectors(r.seq, users), 30)
    hit = float(np.mean([i in set(row) for i, row in zip(items, ids)]))
    print("new-item hit@30", hit, "random", 30 / 160, "pairs", len(items))
    assert len(items) > 50 and hit > 2 * 30 / 160, hit  # measured: 0.665 vs 0.1875


def test_a_new_item_matching_recent_history_is_retrieved(shop):
    """A shopper whose recent purchases are all gardening items is shown the new gardening item."""
    _, out, _ = shop
    r = Recommender.load(out)
    garden = r.catalog.filter(pl.col("category") == "园艺")
    recent = garden["item_id"][:6].to_list()
    twin = pl.DataFrame({"item_id": ["new-garden"], "title": ["佳乐 种子 花盆 新款"], "category": ["园艺"],
                         "brand": ["佳乐"]})
    add_items(out, twin)
    r = Recommender.load(out)
    events = pl.DataFrame({"user_idx": [0] * 6, "item_idx": r.items.to_internal(recent), "event": ["purchase"] * 6,
                           "timestamp": pl.datetime_range(pl.datetime(2024, 3, 1), pl.datetime(2024, 3, 6), "1d",
                                                          eager=True)})
    vec = r.model.user_vectors(build_sequences(events, 1, r.weights, r.model.cfg.n_gap_buckets), np.array([0]))
    ids, _ = r.index.search(vec, 26)
    top20 = [i for i in r.items.to_external(ids[0]).tolist() if i not in recent][:20]
    print("rank of the new item", top20.index("new-garden") if "new-garden" in top20 else None)
    assert "new-garden" in top20 and len(r.items) > 150  # 20 of 155 candidates


def test_items_without_text_are_refused(shop):
    _, out, _ = shop
    with pytest.raises(DataError, match=r"^new.csv: missing column\(s\) 'category', 'brand'; the artifact's item text "
                                        r"is made of title, category, brand: add those columns"):
        add_items(out, pl.DataFrame({"item_id": ["blank"], "title": ["x"]}), source="new.csv")
    blank = pl.DataFrame({"item_id": ["blank"], "title": [""], "category": [None], "brand": [""]})
    with pytest.raises(DataError, match=r"^new.csv: none of the new items has any text in the fields title, category"):
        add_items(out, blank, source="new.csv")


def test_an_artifact_built_without_item_text_refuses_new_items(tmp_path):
    d = generate_synthetic(n_users=60, n_items=30, n_needs=3, seed=2)
    ds = replace(d.dataset, items=d.dataset.items.select("item_id"), text_fields=())  # events alone, no catalogue
    build(ds, tmp_path / "art", opts=BuildOptions(
        holdout="temporal", tower=TowerConfig(dim=8, max_len=10, n_layers=1), text_encoder=CharNgramEncoder(dim=8),
        train=TrainConfig(epochs=1, pretrain_epochs=0), show_progress=False))
    with pytest.raises(DataError) as e:
        add_items(tmp_path / "art", pl.DataFrame({"item_id": ["new"], "title": ["a new thing"]}), source="new.csv")
    assert str(e.value) == ("new.csv: the artifact was built without item text (no catalogue fields), and a new item "
                            "is placed by its text alone; rebuild it with a catalogue (--items FILE, or "
                            "--items-from-events COLUMNS), then add items")
