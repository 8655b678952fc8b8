"""Where the data comes from: a named dataset or a shop's own files, their mapping and cleaning rules.

:class:`DataOptions` holds what the command line (or a config file) says about the input;
:func:`resolve_data` turns it into a :class:`~recsys.schema.Dataset`, the cleaning rules and a
record of what was used. Options given directly win over the config file's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cleaning import CleaningConfig
from .config import load_config
from .datasets import dataset_from_files, default_cleaning, default_holdout, load_dataset
from .defaults import DEFAULT_DATASET
from .errors import ConfigError
from .io import parse_mapping
from .schema import Dataset, EventWeights, parse_weights


@dataclass
class DataOptions:
    """The input: a named ``dataset`` (under ``data_dir``) or ``events`` (+ ``items``) files.

    ``mapping`` / ``items_map``: ``CONTRACT=FILE_COLUMN`` pairs; ``event_map``: ``RAW=TYPE`` pairs (raw
    event names onto known types); ``event_weight``: ``EVENT=W`` pairs;
    ``text_fields`` / ``items_from_events``: column names; ``cleaning``: CleaningConfig fields to
    override (``burst_window_s``, ``bot_max_per_minute``, ``kcore_users``, ``kcore_items``);
    ``config_path``: a TOML/JSON file with the same settings (see :mod:`recsys.config`).
    """

    dataset: str | None = None
    data_dir: Path | None = None
    events: Path | None = None
    items: Path | None = None
    mapping: tuple[str, ...] = ()
    items_map: tuple[str, ...] = ()
    event_type: str | None = None
    event_map: tuple[str, ...] = ()
    event_weight: tuple[str, ...] = ()
    text_fields: list[str] | None = None
    items_from_events: list[str] | None = None
    timestamp_unit: str | None = None
    value_kind: str | None = None
    config_path: Path | None = None
    cleaning: dict[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        """The config file's content ({} without one)."""
        return load_config(self.config_path)


def resolve_data(o: DataOptions) -> tuple[Dataset, CleaningConfig, dict]:
    """The dataset, its cleaning rules and the config used (recorded in the artifact's manifest; its
    ``default_holdout`` is the split the data is evaluated on unless one is given)."""
    cfg = o.config()
    ev_cfg, it_cfg = cfg.get("events", {}), cfg.get("items", {})
    dataset = o.dataset or cfg.get("dataset")
    events = o.events or ev_cfg.get("path")
    if dataset and events:
        raise ConfigError("--dataset and --events: give one of them, not both")
    if o.items and not events:
        raise ConfigError("--items needs --events (the catalog goes with an events file)")
    if dataset is None and events is None:
        dataset = DEFAULT_DATASET
    weights = {**cfg.get("weights", {}), **parse_weights(o.event_weight)}
    if dataset:
        ds = load_dataset(dataset, o.data_dir or cfg.get("data_dir"))
        if weights:
            ds.weights = EventWeights.from_dict({**ds.weights.to_dict(), **weights})
    else:
        ds = dataset_from_files(
            events, o.items or it_cfg.get("path"),
            mapping={**ev_cfg.get("map", {}), **parse_mapping(o.mapping)},
            items_mapping={**it_cfg.get("map", {}), **parse_mapping(o.items_map, "--items-map")},
            event_type=o.event_type or ev_cfg.get("event_type"),
            event_map={**ev_cfg.get("event_map", {}), **parse_mapping(o.event_map, "--event-map")},
            timestamp_unit=o.timestamp_unit or ev_cfg.get("timestamp_unit"),
            weights=weights,
            text_fields=o.text_fields or it_cfg.get("text_fields"),
            items_from_events=o.items_from_events or ev_cfg.get("items_from_events"),
            value_kind=o.value_kind or ev_cfg.get("value_kind"),
        )
    rules = {**default_cleaning(ds.name if dataset else None).to_dict(), **cfg.get("cleaning", {}), **o.cleaning}
    try:
        cleaning = CleaningConfig(**rules)
    except TypeError as e:
        raise ConfigError(f"[cleaning] in the config: {e}; known keys: {', '.join(CleaningConfig().to_dict())}") from None
    used = {"dataset": ds.name, "cleaning": cleaning.to_dict(), "weights": ds.weights.to_dict(),
            "text_fields": list(ds.text_fields), "value_kind": ds.value_kind,
            "default_holdout": default_holdout(ds.name if dataset else None)}
    return ds, cleaning, used
