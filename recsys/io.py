"""Readers for CSV, Parquet and JSON Lines into the data contract, with column mapping.

All work is columnar (polars); no Python loop touches rows. Every error names the file, the
column or row, and the fix.
"""

from __future__ import annotations

import codecs
import io
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import polars as pl

from .errors import ConfigError, DataError
from .retail import NA_VALUES
from .schema import EVENT_SCHEMA, REQUIRED_EVENT_COLUMNS, EventWeights
from .timestamps import parse_timestamps

log = logging.getLogger(__name__)

FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".inter": "tsv", ".item": "tsv", ".user": "tsv",  # RecBole atomic files
}


def parse_mapping(pairs: Iterable[str] | Mapping[str, str] | None, option: str = "--map") -> dict[str, str]:
    """``["user_id=customer_id"]`` -> ``{"user_id": "customer_id"}`` (contract name -> file column);
    a pair may hold several, comma-separated (``"order=purchase,pageview=view"``)."""
    if pairs is None:
        return {}
    if isinstance(pairs, Mapping):
        return {str(k): str(v) for k, v in pairs.items()}
    out = {}
    for pair in (p for given in pairs for p in given.split(",") if p.strip()):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            example = "RAW=TYPE, e.g. order=purchase" if option == "--event-map" else \
                "CONTRACT_COLUMN=FILE_COLUMN, e.g. user_id=customer_id"
            raise ConfigError(f"{option} {pair!r}: expected {example}")
        out[key.strip()] = value.strip()
    return out


def _check_file(path: Path) -> str:
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a file; give the file itself, e.g. {path}/events.csv")
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty; give a file with a header row and at least one row")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: unknown file type {path.suffix!r}; use .csv, .tsv, .parquet or .jsonl (JSON Lines)"
        )
    return fmt


def _first_bad_utf8(path: Path) -> tuple[int, int, int] | None:
    """(line, byte offset, byte) of the first invalid UTF-8 sequence, or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:
                pos = e.start
                return line + block[:pos].count(b"\n"), offset + pos, block[pos]
            line += block.count(b"\n")
            offset += len(block)
    return None


def _check_utf8(path: Path) -> None:
    bad = _first_bad_utf8(path)
    if bad is not None:
        line, offset, byte = bad
        raise DataError(f"{path}: not UTF-8 (byte 0x{byte:02x} at line {line}, offset {offset}); "
                        f"re-encode it, e.g. iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}")


def read_text(path: str | Path) -> str:
    """A text file as the table readers take it: UTF-8 with or without a byte-order mark, or UTF-16
    with one; anything else is a one-line :class:`DataError` with the place and the ``iconv`` fix."""
    path = Path(path)
    source = _utf8(path)
    if source is not path:
        return source.getvalue().decode("utf-8")
    _check_utf8(path)
    return path.read_text(encoding="utf-8")


ID_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "session_id")


def read_table(path: str | Path, text_columns: Iterable[str] = ()) -> pl.DataFrame:
    """Read a CSV/TSV, Parquet or JSON Lines file into a DataFrame of its raw columns.

    ``text_columns`` (ids, say) are read as text exactly as written: ``00042`` stays ``00042`` and an
    alphanumeric value after 10,000 numeric ones is read like the rest. In CSV/TSV every other column
    is typed from all its values (integer, float, boolean, else text), never from a sample, so a late
    odd value cannot fail the read. JSON Lines types each column from all its lines; Parquet keeps the
    file's own types.
    """
    path = Path(path)
    fmt = _check_file(path)
    text_columns = set(text_columns)
    source: Path | io.BytesIO = path
    if fmt in ("csv", "tsv", "jsonl"):
        source = _utf8(path)
    if fmt in ("csv", "tsv", "jsonl") and source is path:
        _check_utf8(path)
    try:
        if fmt in ("csv", "tsv"):
            df = pl.read_csv(source, separator=_separator(path, fmt), infer_schema=False)
        elif fmt == "parquet":
            df = pl.read_parquet(path)
        else:
            df = pl.read_ndjson(source, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot be read as {fmt.upper()}: {first}") from None
    if df.width == 0:
        raise DataError(f"{path}: file is empty; give a file with a header row and at least one row")
    if df.height == 0:
        raise DataError(f"{path}: has a header but no rows; give at least one row")
    # RecBole atomic files name columns "user_id:token"; keep the part before the colon.
    if any(":" in c for c in df.columns):
        short: dict[str, str] = {}
        for c in df.columns:
            name = c.split(":", 1)[0]
            if name in short:
                raise DataError(f"{path}: columns {short[name]!r} and {c!r} both read as {name!r} (a header "
                                "'name:type' is read up to its colon, as RecBole writes it); rename one of them")
            short[name] = c
        df = df.rename({c: name for name, c in short.items()})
    if fmt in ("csv", "tsv"):
        df = df.with_columns([_typed(df[c]) for c in df.columns if c not in text_columns])
    for c in text_columns & set(df.columns):
        if isinstance(df[c].dtype, (pl.Struct, pl.List, pl.Array, pl.Object)):
            row = int(df[c].is_not_null().arg_true()[0]) if df[c].is_not_null().any() else 0
            raise DataError(f"{path}: column {c!r} row {row + 1} holds a {df[c].dtype.base_type()}, not an id; ids "
                            "are single values (text or numbers)")
    return df


BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _utf8(path: Path) -> Path | io.BytesIO:
    """The file as UTF-8 without a byte-order mark: itself, or (a UTF-8 file with a BOM, or UTF-16, as
    Excel and Windows tools write) its text re-encoded in memory."""
    with open(path, "rb") as f:
        head = f.read(4096)
    for bom, encoding in BOMS:
        if head.startswith(bom):
            try:
                text = path.read_bytes().decode(encoding)
            except UnicodeDecodeError as e:
                raise DataError(f"{path}: starts as {encoding.upper()} but byte {e.start} is not; re-encode it, e.g. "
                                f"iconv -f {encoding.upper().replace('-SIG', '')} -t UTF-8 {path.name} > "
                                f"{path.stem}.utf8{path.suffix}") from None
            log.info("%s: read as %s", path, encoding)
            return io.BytesIO(text.encode("utf-8"))
    if head.count(b"\x00") * 4 > len(head):  # text whose every other byte is zero: UTF-16 without its mark
        order = "LE" if head[1:2] == b"\x00" else "BE"
        raise DataError(f"{path}: looks like UTF-16 without a byte-order mark; re-encode it, e.g. iconv -f UTF-16{order} "
                        f"-t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}")
    return path


def _separator(path: Path, fmt: str) -> str:
    """The delimiter of a CSV/TSV file, from its header line: a ``.csv`` whose header holds tabs (or
    semicolons) and no comma is read with those (a tab-separated export named ``.csv``)."""
    with open(path, "rb") as f:
        raw = f.read(1 << 16)
    for bom, encoding in BOMS:
        if raw.startswith(bom):
            raw = raw.decode(encoding, errors="replace").encode("utf-8")
            break
    header = raw.decode("utf-8", errors="replace").splitlines()[0] if raw else ""
    if fmt == "tsv" or ("," not in header and "\t" in header):
        sep = "\t"
    elif "," not in header and ";" in header:
        sep = ";"
    else:
        return ","
    if fmt != "tsv":
        log.info("%s: the header holds no comma: read as %s-separated", path, "tab" if sep == "\t" else "semicolon")
    return sep


def _typed(text: pl.Series) -> pl.Series:
    """A text column as integers, floats or booleans when every value that is not empty or a
    missing-value marker (``NA``, ``NaN``, ``NULL``, ...) is one, else as is.

    >>> [str(_typed(pl.Series(v)).dtype) for v in (["1", None], ["1", "2.5", "NA"], ["true", "False"], ["1", "1a"])]
    ['Int64', 'Float64', 'Boolean', 'String']
    """
    given = text.str.strip_chars()
    given = given.set((given == "") | given.is_in(list(NA_VALUES)), None)
    n = given.null_count()
    if n == text.len():
        return given
    for dtype in (pl.Int64, pl.Float64):
        cast = given.cast(dtype, strict=False)
        if cast.null_count() == n:
            return cast
    lower = given.str.to_lowercase()
    if lower.drop_nulls().is_in(["true", "false"]).all():
        return (lower == "true").alias(text.name)
    return text


def id_column(series: pl.Series) -> pl.Series:
    """Ids as strings, exactly as the file wrote them (surrounding blanks trimmed, empty = missing).

    Typed columns (Parquet, JSON numbers) become their plain decimal text; float-typed integers
    (``196.0``) become ``"196"``.

    >>> id_column(pl.Series(["00042", " 7 ", ""])).to_list(), id_column(pl.Series([196.0, None])).to_list()
    (['00042', '7', None], ['196', None])
    """
    if series.dtype.is_float():
        non_null = series.drop_nulls()
        if non_null.len() == 0 or (non_null == non_null.round(0)).all():
            series = series.cast(pl.Int64, strict=False)
    out = series.cast(pl.Utf8, strict=False).str.strip_chars()
    return out.set(out == "", None) if out.null_count() < out.len() else out


def _resolve(df: pl.DataFrame, mapping: Mapping[str, str], column: str) -> str | None:
    source = mapping.get(column, column)
    return source if source in df.columns else None


def events_from_frame(
    raw: pl.DataFrame,
    *,
    source: str,
    mapping: Mapping[str, str] | None = None,
    event_type: str | None = None,
    timestamp_unit: str | None = None,
    weights: EventWeights | None = None,
    event_map: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Map a raw table onto the event contract; check columns, timestamps and event types.

    ``event_map`` renames raw event names (lower-cased) to known types, e.g. ``{"order": "purchase"}``.
    """
    mapping = dict(mapping or {})
    weights = weights or EventWeights()
    event_map = {str(k).strip().lower(): str(v).strip() for k, v in (event_map or {}).items()}
    for raw_name, known in event_map.items():
        if known not in weights.names():
            raise ConfigError(f"--event-map {raw_name}={known}: {known!r} is not an event type; map onto one of "
                              f"{', '.join(weights.names())} (or declare it with --event-weight {known}=WEIGHT)")
    for key, col in mapping.items():
        if key not in EVENT_SCHEMA:
            raise ConfigError(f"--map {key}={col}: {key!r} is not an event column; use one of {', '.join(EVENT_SCHEMA)}; "
                              f"catalogue fields such as {key!r} come from the events file with --items-from-events {col}")
        if col not in raw.columns:
            raise DataError(f"{source}: --map {key}={col}: no column {col!r}; found: {', '.join(raw.columns)}")
    cols = {}
    for name in REQUIRED_EVENT_COLUMNS:
        src = _resolve(raw, mapping, name)
        if src is None and name == "event" and event_type is not None:
            continue
        if src is None:
            fix = f"map it with --map {name}=COLUMN"
            if name == "event":
                fix += f", or give one type for every row with --event-type {'purchase'}"
            raise DataError(f"{source}: missing column {name!r} (found: {', '.join(raw.columns)}); {fix}")
        cols[name] = src
    out = {
        "user_id": id_column(raw[cols["user_id"]]),
        "item_id": id_column(raw[cols["item_id"]]),
    }
    if "event" in cols:
        out["event"] = raw[cols["event"]].cast(pl.Utf8).str.strip_chars().str.to_lowercase()
        if event_map:
            out["event"] = out["event"].replace(event_map)
    else:
        if event_type not in weights.names():
            raise ConfigError(
                f"--event-type {event_type!r}: unknown event type; known: {', '.join(weights.names())}"
            )
        out["event"] = pl.repeat(event_type, raw.height, dtype=pl.Utf8, eager=True)
    ts_raw = raw[cols["timestamp"]]
    ts = parse_timestamps(ts_raw, timestamp_unit)
    _check_timestamps(ts_raw, ts, source, cols["timestamp"])
    out["timestamp"] = ts
    session = _resolve(raw, mapping, "session_id")
    out["session_id"] = (
        id_column(raw[session]) if session else pl.Series([None] * raw.height, dtype=pl.Utf8)
    )
    for name, what in (("value", "a price, quantity or rating"), ("price", "a unit price")):
        out[name] = _numbers(raw, _resolve(raw, mapping, name), source, what)
    events = pl.DataFrame({k: out[k].alias(k) for k in EVENT_SCHEMA})
    _check_event_types(events, weights, source, cols.get("event"))
    return events


def _numbers(raw: pl.DataFrame, column: str | None, source: str, what: str) -> pl.Series:
    """An optional numeric column (all null when absent); a value that is not a number is an error."""
    if column is None:
        return pl.Series([None] * raw.height, dtype=pl.Float64)
    values = raw[column].cast(pl.Float64, strict=False)
    bad = values.is_null() & raw[column].is_not_null()
    if raw[column].dtype == pl.Utf8:
        bad = bad & (raw[column].str.strip_chars() != "")
    if bad.any():
        row = int(bad.arg_true()[0])
        raise DataError(f"{source}: column {column!r} row {row + 1}: {raw[column][row]!r} is not a number; "
                        f"the column holds {what}")
    return values


def _check_timestamps(raw: pl.Series, parsed: pl.Series, source: str, column: str) -> None:
    given = raw.is_not_null()
    if raw.dtype == pl.Utf8:
        given = given & (raw.str.strip_chars() != "")
    failed = given & parsed.is_null()
    n_given = int(given.sum())
    if n_given and int(failed.sum()) * 2 > n_given:
        row = int(failed.arg_true()[0])
        raise DataError(
            f"{source}: column {column!r} is not a timestamp ({int(failed.sum())} of {n_given} values "
            f"unparseable or outside 1900-2200, e.g. row {row + 1}: {str(raw[row])[:40]!r}); use ISO-8601 "
            "(2024-05-01T12:00:00Z) or Unix seconds/milliseconds, or map another column with --map timestamp=COLUMN"
        )
    if failed.any():  # a few: cleaning drops those rows (bad_timestamp); its examples show the parsed value, None
        row = int(failed.arg_true()[0])
        log.warning("%s: %d of %d values of column %r are not timestamps, e.g. row %d: %r; cleaning drops those rows",
                    source, int(failed.sum()), n_given, column, row + 1, str(raw[row])[:40])


def _check_event_types(events: pl.DataFrame, weights: EventWeights, source: str, column: str | None) -> None:
    known = weights.names()
    unknown = events.select(
        pl.col("event").is_not_null() & ~pl.col("event").is_in(known)
    ).to_series()
    if unknown.any():
        row = int(unknown.arg_true()[0])
        name = events["event"][row]
        raise DataError(
            f"{source}: unknown event type {name!r} in column {column or 'event'!r} (row {row + 1}); "
            f"known: {', '.join(known)}; map it to one with --event-map {name}=purchase (or view, click, cart), "
            f"or declare it with --event-weight {name}=WEIGHT"
        )


def load_events(
    path: str | Path,
    *,
    mapping: Mapping[str, str] | None = None,
    event_type: str | None = None,
    timestamp_unit: str | None = None,
    weights: EventWeights | None = None,
    event_map: Mapping[str, str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read an events file; returns ``(events, raw)`` (raw keeps the file's other columns)."""
    mapping = dict(mapping or {})
    raw = read_table(path, text_columns=[mapping.get(c, c) for c in ID_COLUMNS])
    events = events_from_frame(
        raw, source=str(path), mapping=mapping, event_type=event_type,
        timestamp_unit=timestamp_unit, weights=weights, event_map=event_map,
    )
    return events, raw


def load_items(path: str | Path, *, mapping: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Read a catalog file: ``item_id`` plus the file's other columns (text fields, price)."""
    mapping = dict(mapping or {})
    src = mapping.get("item_id", "item_id")
    raw = read_table(path, text_columns=[src])
    if src not in raw.columns:
        raise DataError(
            f"{path}: missing column 'item_id' (found: {', '.join(raw.columns)}); map it with --items-map item_id=COLUMN"
        )
    renames = {v: k for k, v in mapping.items() if v in raw.columns and v != k}
    items = raw.rename(renames).with_columns(id_column(raw[src]).alias("item_id"))
    if "price" in items.columns:
        items = items.with_columns(pl.col("price").cast(pl.Float64, strict=False))
    return items.filter(pl.col("item_id").is_not_null()).unique("item_id", keep="first", maintain_order=True)
