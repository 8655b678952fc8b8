"""The dirt of real shop exports, on hand-made rows with exact counts, and planted in synthetic data."""

import json
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest
from click.testing import CliRunner

from recsys.catalog import item_text
from recsys.cleaning import CleaningConfig, clean_events
from recsys.cli.main import cli
from recsys.errors import ConfigError
from recsys.io import load_events
from recsys.schema import EVENT_SCHEMA
from recsys.synthetic import generate_synthetic, plant_dirt

from .conftest import write

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
OFF = dict(dedupe=False, burst_window_s=None, bot_max_per_minute=None, max_user_share=None)


def ev(rows):
    """rows: (user, item, hours after T0, order id, quantity)"""
    return pl.DataFrame({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                         "event": ["purchase"] * len(rows), "timestamp": [T0 + timedelta(hours=r[2]) for r in rows],
                         "session_id": [r[3] for r in rows], "value": [r[4] for r in rows], "price": [None] * len(rows)},
                        schema=EVENT_SCHEMA)


def rule(report, name):
    return next(r for r in report.rules if r["rule"] == name)


def test_missing_value_markers_of_each_form():
    users = ["u1", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "", "   ", None, "NAN?"]
    df = ev([(u, "a", k, "NA" if k == 0 else f"o{k}", 1.0) for k, u in enumerate(users)])
    out, rep = clean_events(df, CleaningConfig(**OFF))
    assert rule(rep, "missing_user_id")["removed"] == 10  # all but u1 and "NAN?", which is a name
    assert out["user_id"].to_list() == ["u1", "NAN?"] and out["session_id"].to_list() == [None, "o11"]
    assert [e["user_id"] for e in rule(rep, "missing_user_id")["examples"]] == ["NA", "N/A", "NaN"]
    out, rep = clean_events(df, CleaningConfig(**OFF, na_values=("NAN?",)))  # --na-values replaces the list
    assert out["user_id"].to_list() == ["u1", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]


def test_markers_in_a_numeric_column_are_missing_numbers(tmp_path):
    path = write(tmp_path / "ev.csv", "user_id,item_id,timestamp,qty\nNA,a,1700000000,2\nu2,b,1700000060,NA\n")
    events, _ = load_events(path, mapping={"value": "qty"}, event_type="purchase")
    assert events["user_id"].to_list() == ["NA", "u2"] and events["value"].to_list() == [2.0, None]


def test_a_cancellation_pair_dropped_or_taken_off_the_purchase():
    # u1 buys 5 of a in order 1, then cancels 2 in order C1; u2's cancellation matches no purchase
    df = ev([("u1", "a", 0, "1", 5.0), ("u1", "a", 2, "C1", -2.0), ("u1", "b", 1, "1", 1.0), ("u2", "c", 3, "C2", -1.0)])
    out, rep = clean_events(df, CleaningConfig(**OFF, cancelled_orders="C*"), value_kind="quantity")
    assert rule(rep, "returns")["removed"] == 2 and out["value"].to_list() == [5.0, 1.0]
    out, rep = clean_events(df, CleaningConfig(**OFF, returns="negative"), value_kind="quantity")
    r = rule(rep, "returns")
    assert (r["purchases_removed"], r["purchases_lowered"], r["unmatched"]) == (0, 1, 1)
    assert out.select("item_id", "value").rows() == [("a", 3.0), ("b", 1.0)]  # 5 - 2 of a left
    # an order id alone marks a cancellation when there is no quantity: one unit per row
    df = ev([("u1", "a", 0, "9", None), ("u1", "a", 1, "C9", None)])
    out, rep = clean_events(df, CleaningConfig(**OFF, cancelled_orders="C*", returns="negative"), value_kind="price")
    assert out.height == 0 and rule(rep, "returns")["purchases_removed"] == 1


def test_a_postage_line_is_dropped_and_a_manual_toothbrush_kept():
    df = ev([("u1", "POST", 0, "1", 1.0), ("u1", "22", 0, "1", 1.0), ("u2", "POST", 1, "2", 1.0),
             ("u2", "T1", 1, "2", 1.0), ("u3", "M", 2, "3", 1.0), ("u3", "G4", 2, "3", 1.0)])
    texts = pl.DataFrame({"item_id": ["POST", "22", "T1", "M", "G4"],
                          "text": ["POSTAGE", "Pink mug | kitchen", "Manual Toothbrush | oral hygiene", "Manual",
                                   "Dotcomgiftshop Gift Voucher £40.00"]})
    out, rep = clean_events(df, CleaningConfig(**OFF), texts=texts)
    r = rule(rep, "non_products")
    assert r["removed"] == 4 and r["items"] == ["G4", "M", "POST"] and r["flagged"] == ["T1"]
    assert rep.dropped_items == ["G4", "M", "POST"] and sorted(out["item_id"]) == ["22", "T1"]
    _, rep = clean_events(df, CleaningConfig(**OFF, drop_non_products=False), texts=texts)
    assert rule(rep, "non_products")["removed"] == 0 and rule(rep, "non_products")["flagged"] == ["G4", "M", "POST", "T1"]


def test_an_item_in_most_orders_is_flagged():
    rows = [(f"u{k}", f"i{k % 7}", k, f"o{k}", 1.0) for k in range(40)] + \
           [(f"u{k}", "bag", k, f"o{k}", 1.0) for k in range(0, 40, 2)]
    texts = pl.DataFrame({"item_id": ["bag"], "text": ["Paper bag"]})
    out, rep = clean_events(ev(rows), CleaningConfig(**OFF), texts=texts)
    assert rule(rep, "non_products")["flagged"] == ["bag"] and out.height == 60  # in half the orders: reported
    out, _ = clean_events(ev(rows), CleaningConfig(**OFF, drop_non_products=True), texts=texts)
    assert out.height == 40


def test_a_placeholder_user_is_reported_and_can_be_dropped():
    rows = [(f"u{k}", "a", k, None, 1.0) for k in range(60)] + [("guest", "b", k, None, 1.0) for k in range(40)]
    out, rep = clean_events(ev(rows), CleaningConfig(**{**OFF, "max_user_share": 0.05}))
    assert rule(rep, "suspicious_users")["flagged"] == ["guest"] and out.height == 100
    assert "Flagged by suspicious_users, kept: guest" in rep.verdict()
    out, rep = clean_events(ev(rows), CleaningConfig(**{**OFF, "max_user_share": 0.05, "drop_suspicious_users": True}))
    assert rule(rep, "suspicious_users")["removed"] == 40 and out.height == 60


def test_the_verdict_is_ok_only_when_nothing_was_removed_or_flagged():
    _, rep = clean_events(ev([("u1", "a", 0, "1", 1.0), ("u2", "b", 1, "2", 1.0)]), CleaningConfig(**OFF))
    assert rep.verdict() == "OK: the data meets the contract; no rule removed or flagged anything."
    _, rep = clean_events(ev([("u1", "a", 0, "1", 1.0), ("NA", "b", 1, "2", 1.0)]), CleaningConfig(**OFF))
    assert rep.verdict().startswith("Cleaned: 1 of 2 rows removed (50.0%): 1 rows by missing_user_id (empty, or a "
                                    "missing-value marker). To change this: map the user column with --map user_id=")


def test_planted_dirt_is_all_found():
    data, truth = plant_dirt(generate_synthetic(n_users=300, n_items=160, n_needs=8, seed=7))
    ds = data.dataset
    texts = ds.items.select("item_id", item_text(ds.items, ds.text_fields))
    _, rep = clean_events(ds.events, CleaningConfig(cancelled_orders="C*"), ds.value_kind, texts)
    for name in ("missing_user_id", "missing_item_id", "returns", "non_products", "nonpositive_price"):
        assert rule(rep, name)["removed"] == truth[name], name
    assert rule(rep, "suspicious_users")["flagged"] == [truth["placeholder"]]
    assert rep.dropped_items == ["POST"]


def test_validate_on_an_invoice_export_says_what_it_removed(tmp_path):
    rows = ["InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID"]
    for k in range(30):
        rows.append(f"5{k:05d},8512{k % 5}A,WHITE HEART {k % 5},2,2010-12-01 08:{k:02d}:00,2.55,{17850 + k % 6}")
    rows += ["C536379,85120A,WHITE HEART 0,-2,2010-12-01 09:00:00,2.55,17850",
             "536400,POST,POSTAGE,1,2010-12-01 09:10:00,18.00,17850",
             "536401,85121A,WHITE HEART 1,1,2010-12-01 09:20:00,2.55,NA",
             "536402,85122A,WHITE HEART 2,1,2010-12-01 09:30:00,0.00,17851"]
    path = write(tmp_path / "invoices.csv", "\n".join(rows) + "\n")
    args = ["data", "validate", "--events", str(path), "--map", "user_id=CustomerID", "--map", "item_id=StockCode",
            "--map", "timestamp=InvoiceDate", "--map", "session_id=InvoiceNo", "--map", "value=Quantity",
            "--map", "price=UnitPrice", "--value-kind", "quantity", "--event-type", "purchase",
            "--items-from-events", "Description", "--cancelled-orders", "C*", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    removed = {r["rule"]: r["removed"] for r in body["cleaning"] if r["removed"]}
    assert removed == {"missing_user_id": 1, "nonpositive_price": 1, "returns": 1, "non_products": 1}
    assert not body["ok"] and body["dropped_items"] == ["POST"] and body["rows_kept"] == 30
    wrong = CliRunner().invoke(cli, args[:-1] + ["--map", "title=Description"])
    assert wrong.exit_code == 2 and wrong.output == (
        "Error: --map title=Description: 'title' is not an event column; use one of user_id, item_id, event, "
        "timestamp, session_id, value, price; catalogue fields such as 'title' come from the events file with "
        "--items-from-events Description\n")


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"^--returns 'keep': use one of drop, negative$"):
        CleaningConfig(returns="keep")
    with pytest.raises(ConfigError, match=r"^max_user_share=5: give a share in \(0, 1\]"):
        CleaningConfig(max_user_share=5)
