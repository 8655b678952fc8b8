"""Options shared by every command that reads data, and how they turn into a Dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from recsys.cleaning import CleaningConfig
from recsys.config import load_config
from recsys.datasets import CLEANING, dataset_from_files, load_dataset
from recsys.errors import ConfigError
from recsys.io import parse_mapping
from recsys.schema import VALUE_KINDS, Dataset, EventWeights, parse_weights

_PATH = click.Path(path_type=Path)


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def data_options(func):
    """Add the data-source, mapping and cleaning options to a click command."""
    opts = [
        click.option("--dataset", help="A named dataset: default, movielens-100k, instacart, rees46."),
        click.option("--data-dir", type=_PATH, help="Folder of the named datasets (or $RECSYS_DATA_DIR)."),
        click.option("--events", type=_PATH, help="Events file (.csv, .tsv, .parquet, .jsonl)."),
        click.option("--items", type=_PATH, help="Catalog file: item_id plus text fields and optional price."),
        click.option("--map", "mapping", multiple=True, metavar="COL=FILE_COL",
                     help="Map an event column to the file's, e.g. --map user_id=customer_id (repeatable)."),
        click.option("--items-map", multiple=True, metavar="COL=FILE_COL", help="Same for the catalog file."),
        click.option("--event-type", help="One event type for every row when the log has no event column."),
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
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


DATA_KEYS = ("dataset", "data_dir", "events", "items", "mapping", "items_map", "event_type", "event_weight",
             "text_fields", "items_from_events", "timestamp_unit", "value_kind", "config_path", "burst_window",
             "bot_max_per_minute", "kcore_users", "kcore_items")


def pop_data_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs.pop(k) for k in DATA_KEYS}


def dataset_from_options(o: dict[str, Any]) -> tuple[Dataset, CleaningConfig, dict]:
    """Resolve CLI options (over a config file) into a dataset, cleaning rules and the config used."""
    cfg = load_config(o["config_path"])
    ev_cfg, it_cfg = cfg.get("events", {}), cfg.get("items", {})
    dataset = o["dataset"] or cfg.get("dataset")
    events = o["events"] or ev_cfg.get("path")
    if dataset and events:
        raise ConfigError("--dataset and --events: give one of them, not both")
    if o["items"] and not events:
        raise ConfigError("--items needs --events (the catalog goes with an events file)")
    if dataset is None and events is None:
        dataset = "default"
    weights = {**cfg.get("weights", {}), **parse_weights(o["event_weight"])}
    if dataset:
        ds = load_dataset(dataset, o["data_dir"] or cfg.get("data_dir"))
        if weights:
            ds.weights = EventWeights.from_dict({**ds.weights.to_dict(), **weights})
        base = CLEANING.get(ds.name, CleaningConfig())
    else:
        items = o["items"] or it_cfg.get("path")
        ds = dataset_from_files(
            events, items,
            mapping={**ev_cfg.get("map", {}), **parse_mapping(o["mapping"])},
            items_mapping={**it_cfg.get("map", {}), **parse_mapping(o["items_map"], "--items-map")},
            event_type=o["event_type"] or ev_cfg.get("event_type"),
            timestamp_unit=o["timestamp_unit"] or ev_cfg.get("timestamp_unit"),
            weights=weights,
            text_fields=_csv(o["text_fields"]) or it_cfg.get("text_fields"),
            items_from_events=_csv(o["items_from_events"]) or ev_cfg.get("items_from_events"),
            value_kind=o["value_kind"] or ev_cfg.get("value_kind"),
        )
        base = CleaningConfig()
    cleaning = {**base.to_dict(), **cfg.get("cleaning", {})}
    if o["burst_window"] is not None:
        cleaning["burst_window_s"] = o["burst_window"] or None
    if o["bot_max_per_minute"] is not None:
        cleaning["bot_max_per_minute"] = o["bot_max_per_minute"] or None
    for key in ("kcore_users", "kcore_items"):
        if o[key] is not None:
            cleaning[key] = o[key]
    try:
        clean_cfg = CleaningConfig(**cleaning)
    except TypeError as e:
        raise ConfigError(f"[cleaning] in the config: {e}; known keys: {', '.join(CleaningConfig().to_dict())}") from None
    used = {"dataset": ds.name, "cleaning": clean_cfg.to_dict(), "weights": ds.weights.to_dict(),
            "text_fields": list(ds.text_fields), "value_kind": ds.value_kind}
    return ds, clean_cfg, used
