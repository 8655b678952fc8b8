"""Readers and column mapping; timestamps as files give them (parsing: tests/test_timestamps.py)."""

import json
from datetime import datetime, timezone

import polars as pl
import pytest

from recsys.catalog import catalog_from_events, complete_catalog, item_text
from recsys.datasets import dataset_from_files
from recsys.errors import ConfigError, DataError
from recsys.io import load_events, load_items, parse_mapping
from recsys.timestamps import parse_timestamps

from .conftest import write

EVENTS_CSV = """customer_id,sku,action,ts,price
c1,10,view,2024-05-01T10:00:00Z,9.5
c1,10,purchase,2024-05-01T10:05:00Z,9.5
c2,11,cart,1714557600,3.0
"""


def _utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def test_csv_with_mapping(tmp_path):
    path = write(tmp_path / "ev.csv", EVENTS_CSV)
    events, raw = load_events(path, mapping=parse_mapping(
        ["user_id=customer_id", "item_id=sku", "event=action", "timestamp=ts", "value=price"]))
    assert events.columns == ["user_id", "item_id", "event", "timestamp", "session_id", "value", "price"]
    assert events["user_id"].to_list() == ["c1", "c1", "c2"]
    assert events["item_id"].to_list() == ["10", "10", "11"]
    assert events["timestamp"].to_list() == [_utc(2024, 5, 1, 10), _utc(2024, 5, 1, 10, 5), _utc(2024, 5, 1, 10)]
    assert events["value"].to_list() == [9.5, 9.5, 3.0]
    assert "sku" in raw.columns


def test_parquet_and_jsonl_read_the_same(tmp_path):
    rows = [{"user_id": "u1", "item_id": "a", "event": "view", "timestamp": 1714557600000},
            {"user_id": "u2", "item_id": "b", "event": "click", "timestamp": 1714557660000}]
    jl = tmp_path / "ev.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pq = tmp_path / "ev.parquet"
    pl.DataFrame(rows).write_parquet(pq)
    a, _ = load_events(jl)
    b, _ = load_events(pq)
    assert a.equals(b)
    # milliseconds detected from their magnitude
    assert a["timestamp"].to_list() == [_utc(2024, 5, 1, 10), _utc(2024, 5, 1, 10, 1)]


def test_one_event_type_for_every_row(tmp_path):
    path = write(tmp_path / "orders.csv", "user_id,item_id,timestamp\nu1,a,2024-01-01\n")
    events, _ = load_events(path, event_type="purchase")
    assert events["event"].to_list() == ["purchase"]


def test_float_typed_integer_ids(tmp_path):
    # text keeps what it says; a typed float column of whole numbers (Parquet) reads as their integers
    path = write(tmp_path / "ev.csv", "user_id,item_id,event,timestamp\n1.0,196.0,view,1\n2.0,14084.0,view,2\n")
    events, _ = load_events(path)
    assert events["user_id"].to_list() == ["1.0", "2.0"]
    assert events["item_id"].to_list() == ["196.0", "14084.0"]
    pl.read_csv(path).write_parquet(tmp_path / "ev.parquet")
    events, _ = load_events(tmp_path / "ev.parquet")
    assert events["user_id"].to_list() == ["1", "2"]
    assert events["item_id"].to_list() == ["196", "14084"]


def test_bad_mapping_option():
    with pytest.raises(ConfigError, match=r"--map 'user_id': expected CONTRACT_COLUMN=FILE_COLUMN, e.g. user_id=customer_id"):
        parse_mapping(["user_id"])


def test_catalog_text_function_and_id_only_items(tmp_path):
    items = write(tmp_path / "items.csv", "item_id,title,brand,price\na,Red Mug,Acme,3.5\nb,,missing,2\n")
    cat = load_items(items)
    assert item_text(cat, ["title", "brand"]).to_list() == ["Red Mug | Acme", ""]
    events = pl.DataFrame({"item_id": ["a", "c", "d", "c"]})
    full, n = complete_catalog(cat, events)
    assert n == 2
    assert full["item_id"].to_list() == ["a", "b", "c", "d"]


def test_catalog_from_events_columns(tmp_path):
    path = write(tmp_path / "ev.csv", "user_id,item_id,event,timestamp,brand,price\n"
                 "u1,a,view,1,Acme,4\nu2,a,view,2,,6\nu1,b,view,3,Zeta,1\n")
    ds = dataset_from_files(path, items_from_events=["brand", "price"])
    cat = ds.items.sort("item_id")
    assert cat["item_id"].to_list() == ["a", "b"]
    assert cat["brand"].to_list() == ["Acme", "Zeta"]
    assert cat["price"].to_list() == [5.0, 1.0]  # median of the positive prices
    assert ds.text_fields == ("brand",)
    raw = pl.read_csv(path)
    with pytest.raises(DataError, match=r"--items-from-events column\(s\) 'colour' not found"):
        catalog_from_events(raw, "item_id", ["colour"], str(path))


def test_unicode_text_survives(tmp_path):
    items = write(tmp_path / "items.csv", "item_id,title\n1,华为 Mate 60 Pro 智能手机 5G 黑色 📱\n2,Ｆｕｌｌwidth Café\n")
    text = item_text(load_items(items), ["title"]).to_list()
    assert text == ["华为 Mate 60 Pro 智能手机 5G 黑色 📱", "Fullwidth Café"]


def test_timestamps_outside_1900_to_2200_become_null_and_are_reported(tmp_path, caplog):
    from recsys.cleaning import CleaningConfig, clean_events

    out = parse_timestamps(pl.Series([1e30, -1e308, 1569888000.0]))
    assert out.to_list() == [None, None, _utc(2019, 10, 1)]
    path = write(tmp_path / "ev.csv", "user_id,item_id,event,timestamp\n" + "u1,c,view,1569888000\n" * 3
                 + "u1,a,view,1e30\nu1,d,view,-inf\n")
    with caplog.at_level("WARNING", logger="recsys.io"):
        events, _ = load_events(path)
    # the unreadable text itself, which cleaning's examples cannot show (they hold the parsed value)
    assert caplog.messages == [f"{path}: 2 of 5 values of column 'timestamp' are not timestamps, e.g. row 4: '1e+30'; "
                               "cleaning drops those rows"]
    _, report = clean_events(events, CleaningConfig())
    rule = next(r for r in report.rules if r["rule"] == "bad_timestamp")
    assert rule["removed"] == 2 and "outside 1900-2200" in rule["note"]
    write(path, "user_id,item_id,event,timestamp\nu1,a,view,1e30\nu1,b,view,1e30\nu1,c,view,1569888000\n")
    with pytest.raises(DataError, match=r"column 'timestamp' is not a timestamp \(2 of 3 values unparseable or "
                                        r"outside 1900-2200, e.g. row 1: '1e\+30'\)"):
        load_events(path)


CSV = "user_id,item_id,event,timestamp\nü1,☕ mug,view,1569888000\n"


@pytest.mark.parametrize("encoding, prefix", [("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"),
                                               ("utf-16-be", b"\xfe\xff")])
def test_byte_order_marked_files_are_read(tmp_path, encoding, prefix):
    path = tmp_path / "ev.csv"
    path.write_bytes(prefix + CSV.encode(encoding))
    events, _ = load_events(path)
    assert events["user_id"].to_list() == ["ü1"] and events["item_id"].to_list() == ["☕ mug"]


def test_utf16_without_a_mark_says_how_to_convert(tmp_path):
    path = tmp_path / "ev.csv"
    path.write_bytes(CSV.encode("utf-16-le"))
    with pytest.raises(DataError) as e:
        load_events(path)
    assert str(e.value) == (f"{path}: looks like UTF-16 without a byte-order mark; re-encode it, e.g. "
                            "iconv -f UTF-16LE -t UTF-8 ev.csv > ev.utf8.csv")


def test_recbole_headers_that_collide_name_both_columns(tmp_path):
    path = write(tmp_path / "ev.csv", "user_id:token,user_id,item_id:token\nu1,u2,7\n")
    with pytest.raises(DataError) as e:
        load_events(path)
    assert str(e.value) == (f"{path}: columns 'user_id:token' and 'user_id' both read as 'user_id' (a header "
                            "'name:type' is read up to its colon, as RecBole writes it); rename one of them")
