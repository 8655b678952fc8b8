"""Train / validation / test splits that leak nothing from the held-out period into training.

- :func:`leave_one_out` — per user, sorted by time: the last event is the test target, the
  second-to-last the validation target (the field's standard protocol). Events of a user at the
  same time come in an order drawn from a hash of (user, item) (:func:`held_out_order`): ordered by
  id, the held-out events would be those with the largest ids, which in a catalogue numbered as it
  grew are the newest and least known items.
- :func:`temporal_split` — one global cut: every event at or after it is held out.
- :func:`last_basket` — per user, the last session (order) is the test basket, the one before it
  the validation basket (next-basket protocol for groceries).
- :func:`next_purchase` — per user, the last purchase is the test target and the one before it
  the validation target; everything the user did at or after a target's time is held out with it
  (next-purchase protocol for shop event logs: the views and carts before a purchase are history).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from .errors import ConfigError, DataError

HOLDOUTS = ("loo", "temporal", "last_basket", "next_purchase", "none")


@dataclass
class Split:
    """``train``, ``valid`` and ``test`` events; ``info`` says how they were cut."""

    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame
    info: dict

    def summary(self) -> dict:
        return {
            **self.info,
            "train_rows": self.train.height, "valid_rows": self.valid.height, "test_rows": self.test.height,
            "test_users": self.test["user_id"].n_unique() if self.test.height else 0,
        }


def chronological(events: pl.DataFrame) -> pl.DataFrame:
    """Events sorted per user by time, ties broken by item id (numerically where ids are ints)."""
    return (
        events.with_columns(pl.col("item_id").cast(pl.Int64, strict=False).alias("_inum"))
        .sort(["user_id", "timestamp", "_inum", "item_id"], nulls_last=True, maintain_order=True)
        .drop("_inum")
    )


def stable_hash(values: pl.Series) -> np.ndarray:
    """A uint64 per value: the first 8 bytes of BLAKE2b of its text, the same on every machine and
    with every polars version (``Series.hash`` is not); each distinct value is hashed once.

    >>> h = stable_hash(pl.Series(["a", "b", "a"]))
    >>> int(h[0]), bool(h[0] == h[2]), bool(h[0] != h[1])
    (3405396810240292928, True, True)
    """
    text = values.cast(pl.String)
    uniq = text.unique(maintain_order=True)
    codes = [int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little") for v in uniq.to_list()]
    return text.replace_strict(uniq, pl.Series(codes, dtype=pl.UInt64), return_dtype=pl.UInt64).to_numpy()


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every input bit moves every output bit (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def held_out_order(events: pl.DataFrame) -> pl.DataFrame:
    """:func:`chronological`, except that a user's events at the same time are ordered by a hash of
    (user, item), not by item id: which of them is held out does not follow the catalogue's
    numbering (the largest ids), and the same events always give the same order.
    """
    df = chronological(events)
    key = _mix(stable_hash(df["user_id"]) ^ _mix(stable_hash(df["item_id"])))
    return (df.with_columns(pl.Series("_tie", key, dtype=pl.UInt64))
            .sort(["user_id", "timestamp", "_tie"], nulls_last=True, maintain_order=True).drop("_tie"))


def leave_one_out(events: pl.DataFrame, min_events: int = 3) -> Split:
    """Last event per user -> test, second-to-last -> validation (events at the same time in
    :func:`held_out_order`); users with fewer than ``min_events`` events stay wholly in training."""
    if min_events < 3:
        raise ConfigError(f"min_events={min_events}: leave-one-out needs at least 3 (train, valid, test)")
    df = held_out_order(events).with_columns(
        (pl.len().over("user_id") - 1 - pl.int_range(pl.len()).over("user_id")).alias("_from_end"),
        (pl.len().over("user_id") >= min_events).alias("_eligible"),
    )
    test = df.filter(pl.col("_eligible") & (pl.col("_from_end") == 0))
    valid = df.filter(pl.col("_eligible") & (pl.col("_from_end") == 1))
    train = df.filter(~pl.col("_eligible") | (pl.col("_from_end") >= 2))
    drop = ["_from_end", "_eligible"]
    return Split(train.drop(drop), valid.drop(drop), test.drop(drop),
                 {"holdout": "loo", "min_events": min_events})


def temporal_split(
    events: pl.DataFrame,
    test_fraction: float = 0.1,
    valid_fraction: float = 0.1,
    test_cut: datetime | None = None,
    valid_cut: datetime | None = None,
) -> Split:
    """Global time cuts: train < valid_cut <= valid < test_cut <= test.

    By default the cuts are the time quantiles that leave ``test_fraction`` and
    ``valid_fraction`` of the events after them. Events exactly at a cut are held out, so no
    training event is at or after the earliest held-out time.
    """
    if not (0 < test_fraction < 1 and 0 <= valid_fraction < 1 and test_fraction + valid_fraction < 1):
        raise ConfigError(
            f"test_fraction={test_fraction}, valid_fraction={valid_fraction}: each in (0, 1), sum below 1"
        )
    ts = events["timestamp"]
    if test_cut is None:
        test_cut = ts.quantile(1 - test_fraction, interpolation="lower")
    if valid_cut is None:
        valid_cut = ts.quantile(1 - test_fraction - valid_fraction, interpolation="lower") if valid_fraction else test_cut
    if valid_cut > test_cut:
        raise ConfigError(f"valid_cut {valid_cut} is after test_cut {test_cut}; it must be at or before it")
    df = chronological(events)
    train = df.filter(pl.col("timestamp") < valid_cut)
    valid = df.filter((pl.col("timestamp") >= valid_cut) & (pl.col("timestamp") < test_cut))
    test = df.filter(pl.col("timestamp") >= test_cut)
    if train.height == 0:
        raise DataError("temporal split: no event before the validation cut; use a smaller held-out fraction")
    return Split(train, valid, test, {"holdout": "temporal", "valid_cut": str(valid_cut), "test_cut": str(test_cut)})


def last_basket(events: pl.DataFrame, min_baskets: int = 3) -> Split:
    """Per user, the last session (basket) -> test and the one before -> validation.

    Sessions are ordered by their first event. Every item of the held-out basket is a target,
    repeats included. Users with fewer than ``min_baskets`` sessions stay in training.
    """
    if events["session_id"].null_count() == events.height:
        raise DataError("last-basket split: the events have no session_id; map the order/basket column with "
                        "--map session_id=COLUMN or use --holdout loo/temporal")
    df = chronological(events)
    order = (
        df.filter(pl.col("session_id").is_not_null())
        .group_by(["user_id", "session_id"]).agg(pl.col("timestamp").min().alias("_start"))
        .sort(["user_id", "_start", "session_id"])
        .with_columns(
            (pl.len().over("user_id") - 1 - pl.int_range(pl.len()).over("user_id")).alias("_from_end"),
            (pl.len().over("user_id") >= min_baskets).alias("_eligible"),
        )
    )
    df = df.join(order.drop("_start"), on=["user_id", "session_id"], how="left")
    held = pl.col("_eligible").fill_null(False)
    test = df.filter(held & (pl.col("_from_end") == 0))
    valid = df.filter(held & (pl.col("_from_end") == 1))
    train = df.filter(~held | (pl.col("_from_end") >= 2))
    drop = ["_from_end", "_eligible"]
    return Split(train.drop(drop), valid.drop(drop), test.drop(drop),
                 {"holdout": "last_basket", "min_baskets": min_baskets})


def next_purchase(events: pl.DataFrame, purchase: str = "purchase") -> Split:
    """Per user, the last purchase (by time) -> test, the purchase before it -> validation.

    The test frame is every event of the user at or after the last purchase's time; the validation
    frame every event from the previous purchase's time up to (not including) the last one's; the
    targets are the purchases at a frame's first time (:func:`recsys.eval.protocols.task_from`
    picks them), so the test stage's history (training + validation) holds everything the user did
    before buying, and nothing at or after it. Items seen before may be targets. A user who bought
    at one time only is a test user without a validation target; users who never bought stay
    wholly in training.
    """
    df = chronological(events)
    times = (
        df.filter(pl.col("event") == purchase)
        .group_by("user_id").agg(pl.col("timestamp").unique().sort().alias("_t"))
        .select("user_id", pl.col("_t").list.get(-1).alias("_test_at"),
                pl.col("_t").list.get(-2, null_on_oob=True).alias("_valid_at"))
    )
    if times.height == 0:
        raise DataError(f"next-purchase split: no {purchase!r} event; map the buying event with --event-map "
                        "NAME=purchase, or use --holdout temporal or loo")
    df = df.join(times, on="user_id", how="left")
    test = df.filter(pl.col("timestamp") >= pl.col("_test_at"))
    valid = df.filter((pl.col("timestamp") >= pl.col("_valid_at")) & (pl.col("timestamp") < pl.col("_test_at")))
    train = df.filter((pl.col("timestamp") < pl.col("_valid_at").fill_null(pl.col("_test_at")))
                      | pl.col("_test_at").is_null())
    drop = ["_test_at", "_valid_at"]
    return Split(train.drop(drop), valid.drop(drop), test.drop(drop),
                 {"holdout": "next_purchase", "purchase_event": purchase})


def no_holdout(events: pl.DataFrame) -> Split:
    empty = events.clear()
    return Split(chronological(events), empty, empty, {"holdout": "none"})


def make_split(events: pl.DataFrame, holdout: str, **kwargs) -> Split:
    """Dispatch on ``holdout`` ("loo", "temporal", "last_basket", "next_purchase" or "none")."""
    if holdout == "loo":
        return leave_one_out(events, **kwargs)
    if holdout == "temporal":
        return temporal_split(events, **kwargs)
    if holdout == "last_basket":
        return last_basket(events, **kwargs)
    if holdout == "next_purchase":
        return next_purchase(events, **kwargs)
    if holdout == "none":
        return no_holdout(events)
    raise ConfigError(f"--holdout {holdout!r}: use one of {', '.join(HOLDOUTS)}")
