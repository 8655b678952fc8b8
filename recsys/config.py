"""Config files (JSON or TOML) whose keys mirror the CLI's long options.

Example ``shop.toml``::

    [events]
    path = "events.csv"
    map = { user_id = "customer_id", item_id = "sku" }
    event_map = { order = "purchase", pageview = "view", addtocart = "cart" }
    timestamp_unit = "ms"

    [items]
    path = "products.parquet"
    text_fields = ["title", "brand"]

    [weights]
    like = 3

    [cleaning]             # recsys.cleaning.CleaningConfig fields
    burst_window_s = 30
    kcore_users = 2
    cancelled_orders = "C*"

    [tower]            # build-index: recsys.retrieval.towers.TowerConfig fields
    max_len = 20

    [train]            # build-index: recsys.retrieval.train.TrainConfig fields
    window_stride = 5
    epochs = 12

Options given on the command line win over the file.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

SECTIONS = {"dataset", "data_dir", "events", "items", "weights", "cleaning", "split", "seed", "train", "tower", "index"}


def load_config(path: str | Path | None) -> dict[str, Any]:
    """Read a JSON (``.json``) or TOML (``.toml``) config file; an unknown top-level key is an error."""
    if path is None:
        return {}
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--config {path}: is a folder, expected a .toml or .json file")
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    text = path.read_text(encoding="utf-8", errors="strict")
    if path.suffix.lower() == ".json":
        try:
            cfg = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    elif path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        try:
            cfg = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML: {e}") from None
    else:
        raise ConfigError(f"--config {path}: unknown config type {path.suffix!r}; use .toml or .json")
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: the top level must be a table/object")
    unknown = sorted(set(cfg) - SECTIONS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(SECTIONS))}")
    return cfg


def dataclass_section(cfg: dict[str, Any], section: str, cls: type, path: str | Path | None) -> dict[str, Any]:
    """The keys of ``[section]`` checked against the fields of dataclass ``cls``: an unknown key,
    or a value of the wrong type, is a one-line error naming the file, section and key; a null
    (JSON's ``null``) leaves the setting at its default, as if the key were absent.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     epochs: int = 3
    >>> dataclass_section({"train": {"epochs": 5}}, "train", C, "a.toml")
    {'epochs': 5}
    >>> dataclass_section({"train": {"epochs": None}}, "train", C, "a.json")
    {}
    """
    part = cfg.get(section, {})
    if not isinstance(part, dict):
        raise ConfigError(f"{path}: [{section}] must be a table/object of settings")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(part) - set(known))
    if unknown:
        raise ConfigError(f"{path}: [{section}] unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for key, value in part.items():
        default = known[key].default
        if default is not MISSING and default is not None and value is not None:
            want = float if isinstance(default, float) else type(default)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) if want is float else \
                isinstance(value, want) and not (want is int and isinstance(value, bool))
            if not ok:
                raise ConfigError(f"{path}: [{section}] {key} = {value!r}: expected {want.__name__} (default {default!r})")
    return {key: value for key, value in part.items() if value is not None}


def check_range(section: str, values: dict[str, Any], rules: dict[str, tuple[Any, str]],
                flags: dict[str, str] | None = None) -> None:
    """A one-line :class:`ConfigError` for the first setting of ``[section]`` outside its range:
    ``rules`` maps each key to ``(test, what to give)``; ``flags``: the command-line option of a key.

    >>> check_range("tower", {"dim": 0}, {"dim": (lambda v: v >= 1, "an integer of at least 1")}, {"dim": "--dim"})
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: [tower] dim = 0: give an integer of at least 1 (--dim, or dim in a config file's [tower])
    """
    for key, (test, want) in rules.items():
        value = values[key]
        try:
            ok = bool(test(value))
        except TypeError:  # a value of another type (None, text) where a number belongs
            ok = False
        if not ok:
            where = f"{flags[key]}, or {key} in a config file's [{section}]" if flags and key in flags else \
                f"{key} in a config file's [{section}]"
            raise ConfigError(f"[{section}] {key} = {value!r}: give {want} ({where})")
