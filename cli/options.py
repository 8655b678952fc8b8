"""Options shared by every command that reads data, mapped onto :class:`recsys.inputs.DataOptions`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from recsys.datasets import DATASETS
from recsys.inputs import DataOptions
from recsys.schema import VALUE_KINDS

_PATH = click.Path(path_type=Path)
THREADS = click.option("--threads", type=click.IntRange(1, 4096), default=None,
                       help="CPU threads for torch, BLAS, faiss and ALS (default: $RECSYS_THREADS, else the CPUs "
                            "this process may use: its affinity and container quota).")


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def data_options(func):
    """Add the data-source, mapping and cleaning options to a click command."""
    opts = [
        click.option("--dataset", help=f"A named dataset: {', '.join(DATASETS)}."),
        click.option("--data-dir", type=_PATH, help="Folder of the named datasets (or $RECSYS_DATA_DIR)."),
        click.option("--events", type=_PATH, help="Events file (.csv, .tsv, .parquet, .jsonl)."),
        click.option("--items", type=_PATH, help="Catalog file: item_id plus text fields and optional price."),
        click.option("--map", "mapping", multiple=True, metavar="COL=FILE_COL",
                     help="Map an event column to the file's, e.g. --map user_id=customer_id (repeatable)."),
        click.option("--items-map", multiple=True, metavar="COL=FILE_COL", help="Same for the catalog file."),
        click.option("--event-type", help="One event type for every row when the log has no event column."),
        click.option("--event-map", multiple=True, metavar="RAW=TYPE,...",
                     help="Map the log's event names onto the known types, e.g. order=purchase,pageview=view,"
                          "addtocart=cart."),
        click.option("--event-weight", multiple=True, metavar="EVENT=W",
                     help="Override or declare an event type's weight, e.g. --event-weight like=3."),
        click.option("--text-fields", help="Catalog columns that make the item text, in order (comma-separated)."),
        click.option("--items-from-events", help="Build the catalog from these columns of the events file."),
        click.option("--timestamp-unit", type=click.Choice(["s", "ms"]), help="Unit of numeric timestamps."),
        click.option("--value-kind", type=click.Choice(VALUE_KINDS), help="What the value column holds."),
        click.option("--config", "config_path", type=_PATH, help="A .toml or .json config file."),
        click.option("--burst-window", type=float, help="Seconds within which a repeated view is dropped (0 = off)."),
        click.option("--bot-max-per-minute", type=int, help="Events per minute above which a user is a bot (0 = off)."),
        click.option("--kcore-users", type=int, help="Keep users with at least this many events."),
        click.option("--kcore-items", type=int, help="Keep items with at least this many events."),
        click.option("--na-values", metavar="A,B,...",
                     help="Texts that mean a missing id (default: NA, N/A, NaN, nan, null, NULL, None, #N/A, ...)."),
        click.option("--cancelled-orders", metavar="PATTERN",
                     help="Order ids (session_id) that are cancellations, e.g. 'C*'; with quantities <= 0, they are returns."),
        click.option("--returns", type=click.Choice(["drop", "negative"]),
                     help="Drop returns (default), or take them off the purchases they return."),
        click.option("--non-product-pattern", metavar="REGEX",
                     help="Words of fee and adjustment lines (default: postage, shipping, delivery, fee, charge, "
                          "manual, adjustment, voucher, gift card, discount); '' turns the rule off."),
        click.option("--drop-non-products/--keep-non-products", default=None,
                     help="Drop every flagged non-product line, or none (default: those whose title names a fee)."),
        click.option("--max-user-share", type=float,
                     help="A user with more than this share of all events is reported as suspicious (default 0.05)."),
        click.option("--drop-suspicious-users", is_flag=True, default=None,
                     help="Drop the suspicious users (default: report them only)."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


DATA_KEYS = ("dataset", "data_dir", "events", "items", "mapping", "items_map", "event_type", "event_map", "event_weight",
             "text_fields", "items_from_events", "timestamp_unit", "value_kind", "config_path", "burst_window",
             "bot_max_per_minute", "kcore_users", "kcore_items", "na_values", "cancelled_orders", "returns",
             "non_product_pattern", "drop_non_products", "max_user_share", "drop_suspicious_users")


def pop_data_options(kwargs: dict[str, Any]) -> DataOptions:
    """The data options of a command's keyword arguments (removed from them), as :class:`DataOptions`."""
    o = {k: kwargs.pop(k) for k in DATA_KEYS}
    cleaning = {}
    if o["burst_window"] is not None:
        cleaning["burst_window_s"] = o["burst_window"] or None
    if o["bot_max_per_minute"] is not None:
        cleaning["bot_max_per_minute"] = o["bot_max_per_minute"] or None
    for key in ("kcore_users", "kcore_items", "cancelled_orders", "returns", "drop_non_products", "max_user_share",
                "drop_suspicious_users"):
        if o[key] is not None:
            cleaning[key] = o[key]
    if o["na_values"] is not None:
        cleaning["na_values"] = tuple(v.strip() for v in o["na_values"].split(",") if v.strip())
    if o["non_product_pattern"] is not None:
        cleaning["non_product_pattern"] = o["non_product_pattern"] or None
    return DataOptions(
        dataset=o["dataset"], data_dir=o["data_dir"], events=o["events"], items=o["items"],
        mapping=tuple(o["mapping"]), items_map=tuple(o["items_map"]), event_type=o["event_type"],
        event_map=tuple(o["event_map"]),
        event_weight=tuple(o["event_weight"]), text_fields=_csv(o["text_fields"]),
        items_from_events=_csv(o["items_from_events"]), timestamp_unit=o["timestamp_unit"],
        value_kind=o["value_kind"], config_path=o["config_path"], cleaning=cleaning)
