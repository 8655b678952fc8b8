"""Adapters on the real data (skipped when ../shared/data is absent) and the embedded default."""

import polars as pl
import pytest

from recsys.cleaning import clean_events
from recsys.datasets import default_cleaning, load_dataset
from recsys.prepare import prepare, stats
from recsys.splits import last_basket, leave_one_out


def test_embedded_default_is_movielens_100k():
    ds = load_dataset("default")
    assert (ds.events.height, ds.events["user_id"].n_unique(), ds.events["item_id"].n_unique()) == (100000, 943, 1682)
    assert ds.events["event"].unique().to_list() == ["rating"]
    assert sorted(ds.events["value"].unique().to_list()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert "Harper" in ds.citation
    prepared = prepare(ds, default_cleaning("default"))
    assert prepared.catalog.filter(pl.col("item_id") == "1")["text"].item() == "Toy Story | 1995 | Animation Children's Comedy"


def test_movielens_matches_embedded(shared_data):
    real, emb = load_dataset("ml-100k", shared_data), load_dataset("default")
    assert real.events.equals(emb.events)
    assert real.items.equals(emb.items)


def test_movielens_loo_protocol(shared_data):
    split = leave_one_out(load_dataset("movielens-100k", shared_data).events)
    assert split.test.height == split.valid.height == 943
    assert split.train.height == 100000 - 2 * 943


def test_instacart_adapter(shared_data):
    ds = load_dataset("instacart", shared_data)
    assert ds.events.height == 150000
    assert ds.events["user_id"].n_unique() == 593
    assert ds.events["item_id"].n_unique() == 14190
    assert ds.events["session_id"].n_unique() == 15183
    assert ds.items.height == 49688
    # order: order number, then add-to-cart position; time strictly increases across a user's orders
    u1 = ds.events.filter(pl.col("user_id") == "1")
    assert u1["timestamp"].is_sorted()
    assert u1["item_id"][:3].to_list() == ["196", "14084", "12427"]
    prepared = prepare(ds, default_cleaning("instacart"), holdout="last_basket")
    assert prepared.split.test["user_id"].n_unique() == 593
    assert prepared.catalog.filter(pl.col("item_id") == "1")["text"].item() == "Chocolate Sandwich Cookies | cookies cakes | snacks"
    # the department literally named "missing" does not enter the text
    assert not prepared.catalog["text"].str.contains(r"\| missing$").any()
    basket = last_basket(ds.events)
    assert round(basket.test.height / 593, 1) == 10.9  # mean last-basket size, as published


def test_rees46_adapter_and_cleaning(shared_data):
    ds = load_dataset("rees46", shared_data)
    assert ds.events.height == 17435
    assert ds.events.group_by("event").len().sort("event").rows() == [("cart", 165), ("purchase", 214), ("view", 17056)]
    out, rep = clean_events(ds.events, default_cleaning("rees46"), ds.value_kind)
    counts = {r["rule"]: r["removed"] for r in rep.rules}
    assert counts["exact_duplicates"] == 5 and counts["nonpositive_price"] == 19 and counts["view_bursts"] == 3188
    assert out.height == 17435 - sum(counts.values())
    prepared = prepare(ds, default_cleaning("rees46"), holdout="temporal")
    s = stats(prepared)
    assert s["users"] == prepared.events["user_id"].n_unique()
    text = prepared.catalog.filter(pl.col("item_id") == "1307067")["text"].item()
    assert text == "computers notebook | lenovo"


@pytest.mark.parametrize("name", ["movielens-100k", "instacart", "rees46"])
def test_env_variable_finds_data(shared_data, monkeypatch, name):
    monkeypatch.setenv("RECSYS_DATA_DIR", str(shared_data))
    assert load_dataset(name).events.height > 0
