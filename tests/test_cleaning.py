"""Each cleaning rule on a dozen hand-made rows, with the expected counts."""

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from recsys.cleaning import CleaningConfig, clean_events
from recsys.errors import ConfigError
from recsys.schema import EVENT_SCHEMA

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def ev(rows):
    """rows: (user, item, event, seconds after T0 or None, value)"""
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "event": [r[2] for r in rows],
            "timestamp": [None if r[3] is None else T0 + timedelta(seconds=r[3]) for r in rows],
            "session_id": [None] * len(rows),
            "value": [r[4] if len(r) > 4 else None for r in rows],
            "price": [None] * len(rows),
        },
        schema=EVENT_SCHEMA,
    )


def removed(report, rule):
    return next(r for r in report.rules if r["rule"] == rule)["removed"]


OFF = dict(dedupe=False, burst_window_s=None, bot_max_per_minute=None, drop_nonpositive=False)


def test_missing_ids_and_bad_timestamps_counted_with_examples():
    df = ev([("u1", "a", "view", 0), (None, "a", "view", 1), ("u1", None, "view", 2),
             ("u2", "b", "view", None), ("u2", "b", None, 5), ("u3", "c", "cart", 9)])
    out, rep = clean_events(df, CleaningConfig(**OFF))
    assert out.height == 6 - 4
    assert [removed(rep, r) for r in ("missing_user_id", "missing_item_id", "missing_event", "bad_timestamp")] == [1, 1, 1, 1]
    bad_ts = next(r for r in rep.rules if r["rule"] == "bad_timestamp")
    assert bad_ts["examples"][0]["row"] == "4" and bad_ts["examples"][0]["user_id"] == "u2"


def test_exact_duplicates_keep_the_first():
    df = ev([("u1", "a", "view", 0), ("u1", "a", "view", 0), ("u1", "a", "view", 0),
             ("u1", "a", "cart", 0), ("u1", "a", "view", 0, 2.0)])
    out, rep = clean_events(df, CleaningConfig(**{**OFF, "dedupe": True}))
    assert removed(rep, "exact_duplicates") == 2  # the value differs on the last row: not a duplicate
    assert out.height == 3


def test_nonpositive_prices_only_for_prices():
    df = ev([("u1", "a", "purchase", 0, 10.0), ("u1", "b", "purchase", 1, 0.0),
             ("u1", "c", "purchase", 2, -5.0), ("u1", "d", "purchase", 3, None)])
    cfg = CleaningConfig(**{**OFF, "drop_nonpositive": True})
    out, rep = clean_events(df, cfg, value_kind="price")
    assert removed(rep, "nonpositive_price") == 2
    assert out["item_id"].to_list() == ["a", "d"]
    out, rep = clean_events(df, cfg, value_kind="rating")
    assert out.height == 4 and removed(rep, "nonpositive_price") == 0


def test_view_bursts_collapse_refreshes():
    # views of a by u1 at 0, 20, 50 (a refresh chain: each within 60 s of the previous), 200 (new)
    # a cart inside the window is kept; views of another item or by another user are kept
    df = ev([("u1", "a", "view", 0), ("u1", "a", "view", 20), ("u1", "a", "cart", 30), ("u1", "a", "view", 50),
             ("u1", "a", "view", 200), ("u1", "b", "view", 21), ("u2", "a", "view", 10)])
    out, rep = clean_events(df, CleaningConfig(**{**OFF, "burst_window_s": 60}))
    assert removed(rep, "view_bursts") == 2
    assert out.height == 7 - 2


def test_bots_by_events_per_minute():
    human = [("h", f"i{k}", "view", k * 30) for k in range(10)]  # 2 a minute
    bot = [("b", f"i{k}", "view", k * 0.5) for k in range(61)]  # 61 within 30 s
    steady = [("s", f"i{k}", "view", k * 1.0) for k in range(60)]  # exactly 60 in a minute: allowed
    out, rep = clean_events(ev(human + bot + steady), CleaningConfig(**{**OFF, "bot_max_per_minute": 60}))
    assert removed(rep, "bots") == 61
    assert set(out["user_id"].unique()) == {"h", "s"}


def test_kcore_is_iterated_until_stable():
    # u3's single event on c drops; then item c has only u1 -> below 2 -> dropped; then u1 has 2 left
    rows = [("u1", "a", "view", 0), ("u1", "b", "view", 1), ("u1", "c", "view", 2),
            ("u2", "a", "view", 3), ("u2", "b", "view", 4), ("u3", "c", "view", 5), ("u4", "d", "view", 6)]
    out, rep = clean_events(ev(rows), CleaningConfig(**{**OFF, "kcore_users": 2, "kcore_items": 2}))
    assert sorted(zip(out["user_id"], out["item_id"])) == [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b")]
    assert removed(rep, "kcore") == 3


def test_report_accounts_for_every_row():
    rows = [("u1", "a", "view", 0), ("u1", "a", "view", 0), ("u1", "a", "view", 5), (None, "a", "view", 1)]
    out, rep = clean_events(ev(rows))
    assert rep.rows_in == 4 and rep.rows_out == out.height == 1
    assert sum(r["removed"] for r in rep.rules) == 3
    for before, after in zip(rep.rules, rep.rules[1:]):
        assert before["rows_out"] == after["rows_in"]


def test_output_keeps_input_order():
    rows = [("u2", "b", "view", 100), ("u1", "a", "view", 0), ("u3", "c", "view", 50)]
    out, _ = clean_events(ev(rows))
    assert out["user_id"].to_list() == ["u2", "u1", "u3"]


def test_bad_cleaning_config():
    with pytest.raises(ConfigError, match=r"burst_window_s=-1: must be >= 0 \(or None to turn it off\)"):
        CleaningConfig(burst_window_s=-1)
