"""Timestamps in every form a file gives them (:mod:`recsys.timestamps`)."""

from datetime import datetime, timezone

import polars as pl
import pytest

from recsys.errors import ConfigError
from recsys.timestamps import parse_timestamps


def _utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "value, unit, expected",
    [
        ("2019-10-01 00:00:00 UTC", None, _utc(2019, 10, 1)),
        ("2019-10-01T02:00:00+02:00", None, _utc(2019, 10, 1)),
        ("2019-10-01T00:00:00.250Z", None, _utc(2019, 10, 1, 0, 0, 0, 250000)),
        ("2019-10-01", None, _utc(2019, 10, 1)),
        ("1569888000", None, _utc(2019, 10, 1)),
        ("1569888000000", None, _utc(2019, 10, 1)),
        ("1569888000", "s", _utc(2019, 10, 1)),
        ("1569888000000", "ms", _utc(2019, 10, 1)),
    ],
)
def test_timestamp_forms(value, unit, expected):
    assert parse_timestamps(pl.Series([value]), unit).to_list() == [expected]


def test_numeric_timestamps_and_garbage_become_null():
    out = parse_timestamps(pl.Series(["2019-10-01", "soon", None]))
    assert out.to_list() == [_utc(2019, 10, 1), None, None]
    assert parse_timestamps(pl.Series([1569888000, 1569888060])).to_list() == [_utc(2019, 10, 1), _utc(2019, 10, 1, 0, 1)]


def test_unknown_unit_names_the_choices():
    with pytest.raises(ConfigError, match=r"^timestamp unit 'us': use 's' \(Unix seconds\) or 'ms' \(milliseconds\)$"):
        parse_timestamps(pl.Series([1569888000]), "us")


def test_typed_datetimes_are_moved_to_utc():
    naive = pl.Series([datetime(2019, 10, 1, 2)])
    zoned = naive.dt.replace_time_zone("Europe/Berlin")  # 02:00 in Berlin (summer time) is 00:00 UTC
    assert parse_timestamps(naive).to_list() == [_utc(2019, 10, 1, 2)]
    assert parse_timestamps(zoned).to_list() == [_utc(2019, 10, 1)]
