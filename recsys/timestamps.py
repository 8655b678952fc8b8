"""Timestamps as users' files give them: ISO-8601 text (with or without a zone), Unix seconds or
milliseconds, or typed dates, read into ``datetime[ms, UTC]``. A value that cannot be read, or lies
outside 1900–2200, becomes null; cleaning counts and reports it.
"""

from __future__ import annotations

import polars as pl

from .errors import ConfigError

_TZ_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f%:z",
               "%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%d %H:%M%z")
_NAIVE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d",
                  "%Y/%m/%d %H:%M:%S", "%Y/%m/%d")
_ZONE_SUFFIX = r"\s*(UTC|GMT|Z)$"
_MS_THRESHOLD = 1e11  # a Unix time above this is in milliseconds (1e11 s is the year 5138)
MIN_MS, MAX_MS = -2_208_988_800_000, 7_258_118_400_000  # 1900-01-01 and 2200-01-01: times a shop's events can have


def parse_timestamps(series: pl.Series, unit: str | None = None) -> pl.Series:
    """Parse ISO-8601 strings or Unix seconds/milliseconds into ``datetime[ms, UTC]``.

    Unparseable values become null (cleaning counts and reports them). ``unit`` ("s" or "ms")
    forces the unit of numeric times; by default values above 1e11 are read as milliseconds.

    >>> parse_timestamps(pl.Series(["2019-10-01 00:00:00 UTC", "1569888001", "x"])).dt.epoch("s").to_list()
    [1569888000, 1569888001, None]
    """
    if unit not in (None, "s", "ms"):
        raise ConfigError(f"timestamp unit {unit!r}: use 's' (Unix seconds) or 'ms' (milliseconds)")
    dtype = series.dtype
    if isinstance(dtype, pl.Datetime):
        out = series.dt.replace_time_zone("UTC") if dtype.time_zone is None else series.dt.convert_time_zone("UTC")
        return out.dt.cast_time_unit("ms")
    if isinstance(dtype, pl.Date):
        return series.cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")
    if dtype.is_numeric():
        numbers = series.cast(pl.Float64)
    else:
        text = series.cast(pl.Utf8).str.strip_chars()
        numbers = text.cast(pl.Float64, strict=False)
        if numbers.null_count() > text.null_count():  # some values are not numbers: read them as dates
            head = text.drop_nulls().head(1000)
            norm = text.str.replace(_ZONE_SUFFIX, "+0000") if head.str.contains(_ZONE_SUFFIX).any() else text
            dates = _parse_dates(norm)
            epoch = _epoch_ms(numbers.set(dates.is_not_null(), None), unit)
            return pl.select(pl.coalesce([dates, epoch])).to_series().alias(series.name)
    return _epoch_ms(numbers, unit).alias(series.name)


def _strptime(text: pl.Series, fmt: str) -> pl.Series:
    if fmt in _TZ_FORMATS:
        return text.str.strptime(pl.Datetime("ms", "UTC"), fmt, strict=False)
    return text.str.strptime(pl.Datetime("ms"), fmt, strict=False).dt.replace_time_zone("UTC")


def _parse_dates(text: pl.Series, sample: int = 10_000) -> pl.Series:
    """Try the formats that parse most of a sample first; later ones only on rows still unparsed."""
    head = text.drop_nulls().head(sample)
    formats = _TZ_FORMATS + _NAIVE_FORMATS
    ranked = sorted(formats, key=lambda f: -int(_strptime(head, f).is_not_null().sum()))
    dates = _strptime(text, ranked[0])
    for fmt in ranked[1:]:
        todo = (dates.is_null() & text.is_not_null()).arg_true()
        if todo.len() == 0:
            break
        dates = dates.scatter(todo, _strptime(text.gather(todo), fmt))
    return dates


def _epoch_ms(numbers: pl.Series, unit: str | None) -> pl.Series:
    if unit is None:
        size = numbers.drop_nulls().abs()
        median = size.filter(size <= MAX_MS).median()  # out-of-range values (1e30, inf) say nothing of the unit
        unit = "ms" if median is not None and median > _MS_THRESHOLD else "s"
    scale = 1.0 if unit == "ms" else 1000.0
    ms = (numbers * scale).round(0)
    ms = ms.set(ms.is_nan() | ms.is_infinite() | (ms < MIN_MS) | (ms > MAX_MS), None)  # unreadable: the rule reports it
    return ms.cast(pl.Int64).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")
