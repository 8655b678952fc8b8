"""The catalog: one row per item, and the one function that builds the text each model sees."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np
import polars as pl

from .errors import DataError
from .io import id_column

TEXT_SEPARATOR = " | "
_NULL_WORDS = ("", "nan", "none", "null", "missing", "unknown", "n/a")
# the catalogue columns that group items into shelves, the first one present is read
GROUP_COLUMNS = ("category", "category_code", "aisle", "department")


def normalize_text(text: str) -> str:
    """NFKC-normalise (look-alike Unicode to plain forms), drop control chars, squeeze spaces.

    >>> normalize_text("Ｃaffè\\u200b  Latte\\t")
    'Caffè Latte'
    """
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in "\t\n")
    return " ".join(text.split())


def _field_expr(name: str) -> pl.Expr:
    col = pl.col(name).cast(pl.Utf8).str.strip_chars()
    return pl.when(col.str.to_lowercase().is_in(_NULL_WORDS)).then(None).otherwise(col)


def item_text(items: pl.DataFrame, fields: Sequence[str], sep: str = TEXT_SEPARATOR) -> pl.Series:
    """The item text: the named fields, in order, non-empty ones joined by ``sep``, normalised.

    Empty values and placeholders ("missing", "nan", "unknown", ...) are left out; an item with
    no text gets ``""`` (it stays usable as an ID-only item). Dotted or underscored taxonomy codes
    (``electronics.smartphone``) read as words.

    >>> df = pl.DataFrame({"item_id": ["1", "2"], "title": ["Toy Story", None],
    ...                    "category": ["animation.kids", "missing"]})
    >>> item_text(df, ["title", "category"]).to_list()
    ['Toy Story | animation kids', '']
    """
    missing = [f for f in fields if f not in items.columns]
    if missing:
        raise DataError(
            f"catalog: text field(s) {', '.join(map(repr, missing))} not found (columns: "
            f"{', '.join(items.columns)}); name existing columns with --text-fields"
        )
    if not fields:
        return pl.Series("text", [""] * items.height, dtype=pl.Utf8)
    parts = []
    for f in fields:
        expr = _field_expr(f)
        if f in ("category", "category_code") or f.endswith("_code"):
            expr = expr.str.replace_all(r"[._/]+", " ")
        parts.append(expr)
    joined = items.select(pl.concat_str(parts, separator=sep, ignore_nulls=True).fill_null("").alias("text"))
    return joined.to_series().map_elements(normalize_text, return_dtype=pl.Utf8).alias("text")


def item_groups(catalog: pl.DataFrame, item_ids: Sequence[str]) -> np.ndarray | None:
    """Each item's group: the rank of its value, among the sorted values, in the catalogue's first
    :data:`GROUP_COLUMNS` column (an empty or placeholder value, or an item not in the catalogue: -1),
    for the items ``item_ids`` in that order; None where the catalogue has none of those columns.

    >>> cat = pl.DataFrame({"item_id": ["a", "b", "c", "d"], "aisle": ["tea", "fruit", "missing", "tea"],
    ...                     "department": ["x", "y", "z", "x"]})
    >>> item_groups(cat, ["d", "c", "b", "e", "a"]).tolist()  # aisle before department; fruit 0, tea 1
    [1, -1, 0, -1, 1]
    """
    column = next((c for c in GROUP_COLUMNS if c in catalog.columns), None)
    if column is None:
        return None
    values = catalog.select(pl.col("item_id").cast(pl.Utf8), _field_expr(column).alias("_g")).unique("item_id", keep="first")
    codes = values.with_columns(pl.col("_g").rank("dense").cast(pl.Int64) - 1)
    order = pl.DataFrame({"item_id": [str(i) for i in item_ids]})
    return (order.join(codes, on="item_id", how="left", maintain_order="left")["_g"].fill_null(-1)
            .to_numpy().astype(np.int64))


def catalog_from_events(raw: pl.DataFrame, item_column: str, fields: Sequence[str], source: str) -> pl.DataFrame:
    """A catalog taken from columns of the events file itself (last non-empty value per item)."""
    missing = [f for f in fields if f not in raw.columns]
    if missing:
        raise DataError(
            f"{source}: --items-from-events column(s) {', '.join(map(repr, missing))} not found "
            f"(columns: {', '.join(raw.columns)})"
        )
    df = raw.select([id_column(raw[item_column]).alias("item_id"), *[pl.col(f) for f in fields if f != item_column]])
    agg = [pl.col(f).drop_nulls().last().alias(f) for f in df.columns if f != "item_id"]
    if "price" in df.columns:
        agg = [a for a in agg if a.meta.output_name() != "price"]
        agg.append(pl.col("price").cast(pl.Float64, strict=False).filter(pl.col("price") > 0).median().alias("price"))
    return df.filter(pl.col("item_id").is_not_null()).group_by("item_id", maintain_order=True).agg(agg)


def complete_catalog(items: pl.DataFrame, events: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Add ID-only rows for items that appear in events but not in the catalog.

    Returns the completed catalog and how many items were ID-only.
    """
    known = items.select("item_id")
    extra = events.select("item_id").unique().join(known, on="item_id", how="anti").sort("item_id")
    if extra.height == 0:
        return items, 0
    return pl.concat([items, extra], how="diagonal_relaxed"), extra.height
