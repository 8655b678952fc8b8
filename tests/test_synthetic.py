"""The synthetic generator: seeded, with the hidden answer it promises."""

import polars as pl

from recsys.splits import leave_one_out
from recsys.synthetic import generate_synthetic


def test_same_seed_same_data():
    a = generate_synthetic(n_users=50, n_items=64, seed=5)
    b = generate_synthetic(n_users=50, n_items=64, seed=5)
    c = generate_synthetic(n_users=50, n_items=64, seed=6)
    assert a.dataset.events.equals(b.dataset.events) and a.dataset.items.equals(b.dataset.items)
    assert not a.dataset.events.equals(c.dataset.events)


def test_funnel_order_and_text(synthetic):
    ev = synthetic.dataset.events
    assert set(ev["event"].unique()) == {"view", "click", "cart", "purchase"}
    counts = dict(ev.group_by("event").len().iter_rows())
    assert counts["view"] > counts["click"] > counts["cart"] > counts["purchase"] > 0
    # each purchase follows a cart, a click and a view of the same item in the same session
    bought = ev.filter(pl.col("event") == "purchase").select("session_id", "item_id", "timestamp")
    earlier = ev.join(bought, on=["session_id", "item_id"], suffix="_buy").filter(pl.col("timestamp") < pl.col("timestamp_buy"))
    per = earlier.group_by(["session_id", "item_id", "timestamp_buy"]).agg(pl.col("event").unique().sort())
    assert per.height == bought.height
    assert all(set(e) >= {"view", "click", "cart"} for e in per["event"].to_list())
    # item text comes from the need's vocabulary
    items = synthetic.dataset.items.join(synthetic.items, on="item_id")
    assert (items["category"] == items["need"]).all()


def test_future_purchases_come_from_the_latent_need(synthetic):
    ev = synthetic.dataset.events.join(synthetic.items.select("item_id", "need"), on="item_id")
    ev = ev.join(synthetic.users.select("user_id", "latent_need"), on="user_id")
    test = leave_one_out(ev).test  # the last event: a purchase of the future session
    assert (test["event"] == "purchase").all()
    assert (test["need"] == test["latent_need"]).all()
    # in the past (before the final two sessions), the latent need is only viewed, and rarely
    last_sessions = ev.group_by("user_id").agg(pl.col("session_id").unique(maintain_order=True).tail(2))
    past = ev.join(last_sessions.explode("session_id"), on=["user_id", "session_id"], how="anti")
    latent_past = past.filter(pl.col("need") == pl.col("latent_need"))
    assert (latent_past["event"] == "view").all()
    assert latent_past.height < 0.15 * past.filter(pl.col("event") == "view").height


def test_cold_items_only_in_the_future():
    d = generate_synthetic(n_users=200, n_items=80, n_needs=4, cold_item_fraction=0.25, seed=2)
    cold = d.items.filter(pl.col("cold"))["item_id"]
    assert cold.len() == 20
    ev = d.dataset.events
    last_two = ev.group_by("user_id").agg(pl.col("session_id").unique(maintain_order=True).tail(2)).explode("session_id")
    past = ev.join(last_two, on=["user_id", "session_id"], how="anti")
    assert not past["item_id"].is_in(cold.implode()).any()
    assert ev["item_id"].is_in(cold.implode()).any()


def test_planted_funnel_buys_a_carted_item_or_an_unseen_one():
    d = generate_synthetic(n_users=300, n_items=160, n_needs=4, funnel=5, unseen_purchase=0.2, seed=2)
    ev = d.dataset.events.sort("user_id", "timestamp")
    last_session = ev.group_by("user_id").agg(pl.col("session_id").last()).rename({"session_id": "s"})
    final = ev.join(last_session, on="user_id").filter(pl.col("session_id") == pl.col("s"))
    bought = final.filter(pl.col("event") == "purchase")
    assert bought.height == 300  # one purchase closes every final session
    carted = final.filter(pl.col("event") == "cart").select("user_id", "item_id").unique()
    viewed = final.filter(pl.col("event") == "view").select("user_id", "item_id").unique()
    assert final.filter(pl.col("event") == "view").group_by("user_id").len()["len"].to_list() == [5] * 300
    from_cart = bought.join(carted, on=["user_id", "item_id"], how="semi").height
    never_viewed = bought.join(viewed, on=["user_id", "item_id"], how="anti").height
    assert from_cart + never_viewed == 300 and 0.1 < never_viewed / 300 < 0.3  # 0.2 asked for
