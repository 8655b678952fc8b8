"""Ingest -> clean -> id maps -> split: the data half of every build, and its artifact files."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import polars as pl

from . import layout
from .artifacts import Artifact, ArtifactWriter, frame_fingerprint
from .catalog import item_text
from .cleaning import CleaningConfig, CleaningReport, clean_events
from .datasets import with_id_only_items
from .defaults import DEFAULT_HOLDOUT
from .errors import DataError
from .idmap import IDMap
from .schema import Dataset, EventWeights
from .splits import Split, make_split

log = logging.getLogger(__name__)


class NoEventSurvives(DataError):
    """Cleaning removed every event; ``report`` says which rules did."""

    def __init__(self, report: CleaningReport, message: str) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Prepared:
    """A cleaned dataset with its id maps, item texts and held-out split."""

    dataset: Dataset
    events: pl.DataFrame
    report: CleaningReport
    users: IDMap
    items: IDMap
    catalog: pl.DataFrame  # one row per item of ``items``, in index order, with ``text``
    split: Split
    id_only_items: int

    def fingerprint(self) -> str:
        return frame_fingerprint(self.events)

    def data_manifest(self) -> dict:
        return {
            "name": self.dataset.name, "fingerprint": self.fingerprint(), "sources": self.dataset.sources,
            "citation": self.dataset.citation, "text_fields": list(self.dataset.text_fields),
            "value_kind": self.dataset.value_kind,
            # a list of pairs, not an object: the order defines the event codes models are trained on
            "weights": [list(pair) for pair in self.dataset.weights.weights],
            "rows_in": self.report.rows_in, "rows_kept": self.events.height,
            "users": len(self.users), "items": len(self.items), "id_only_items": self.id_only_items,
            "split": self.split.summary(),
        }


def prepare(dataset: Dataset, cleaning: CleaningConfig | None = None, holdout: str = DEFAULT_HOLDOUT,
            split_args: dict | None = None, base: tuple[IDMap, IDMap, pl.DataFrame] | None = None) -> Prepared:
    """Clean the events, build id maps over kept events and the catalog, and split.

    ``base`` (users, items, catalog of an earlier build) keeps those ids at their old indices and
    appends new ones; old items absent from this catalogue keep their old catalogue rows.
    """
    texts = dataset.items.with_columns(item_text(dataset.items, dataset.text_fields))
    events, report = clean_events(dataset.events, cleaning, dataset.value_kind, texts.select("item_id", "text"))
    if events.height == 0:
        where = next(iter(dataset.sources), f"dataset {dataset.name!r}")  # the events file, where there is one
        rules = "; ".join(f"{r['removed']:,} by {r['rule']}" for r in report.rules if r["removed"])
        raise NoEventSurvives(report, f"{where}: no event survives cleaning (of {report.rows_in:,} rows: {rules}); "
                                      "see the cleaning report (`recsys data validate`) and relax the rule that removed them")
    texts = texts.filter(~pl.col("item_id").is_in(pl.Series(report.dropped_items, dtype=pl.Utf8).implode()))
    # the catalogue, plus ID-only rows for the kept events' items it lacks
    ds, n_id_only = with_id_only_items(replace(dataset, events=events, items=texts))
    texts = ds.items.with_columns(pl.col("text").fill_null(""))
    users = IDMap.from_ids(events["user_id"], kind="user")
    items = IDMap.from_ids(ds.items["item_id"], kind="item")
    if base is not None:
        users, items = base[0].extend(users.ids), base[1].extend(items.ids)
        gone = base[2].filter(~pl.col("item_id").is_in(texts["item_id"].implode()))
        texts = pl.concat([texts, gone], how="diagonal_relaxed")
    order = pl.DataFrame({"item_id": items.ids.tolist()}, schema={"item_id": pl.Utf8})
    catalog = order.join(texts, on="item_id", how="left", maintain_order="left")
    split = make_split(events, holdout, **(split_args or {}))
    return Prepared(ds, events, report, users, items, catalog, split, n_id_only)


def stats(prepared: Prepared) -> dict:
    """Headline numbers of a prepared dataset (what ``recsys data stats`` prints)."""
    ev = prepared.events
    per_user = ev.group_by("user_id").len()["len"]
    per_item = ev.group_by("item_id").len()["len"]
    n_users, n_items = len(prepared.users), ev["item_id"].n_unique()
    return {
        "dataset": prepared.dataset.name,
        "events": ev.height,
        "users": n_users,
        "items_with_events": n_items,
        "catalog_items": len(prepared.items),
        "id_only_items": prepared.id_only_items,
        "items_without_text": int((prepared.catalog["text"].fill_null("") == "").sum()),
        "events_by_type": dict(sorted(ev.group_by("event").len().iter_rows())),
        "first_event": str(ev["timestamp"].min()),
        "last_event": str(ev["timestamp"].max()),
        "density": round(ev.select(pl.struct("user_id", "item_id").n_unique()).item() / (n_users * n_items), 6),
        "events_per_user": {"median": float(per_user.median()), "max": int(per_user.max())},
        "events_per_item": {"median": float(per_item.median()), "max": int(per_item.max())},
        "sessions": int(ev["session_id"].n_unique() - (1 if ev["session_id"].null_count() else 0)),
    }


def save_prepared(writer: ArtifactWriter, prepared: Prepared) -> None:
    """Write id maps, catalog texts, the cleaned events and the split into an artifact."""
    prepared.users.save(writer.path(layout.USERS))
    prepared.items.save(writer.path(layout.ITEMS))
    writer.save_table(layout.CATALOG, prepared.catalog)
    for name in layout.SPLIT_PARTS:
        writer.save_table(layout.split_table(name), getattr(prepared.split, name))
    writer.manifest["data"] = prepared.data_manifest()
    writer.manifest["cleaning"] = prepared.report.to_dict()


def load_prepared_tables(art: Artifact) -> dict:
    """The data half of an artifact: id maps, catalog and split tables, and the event weights."""
    return {
        "users": IDMap.load(art.file(layout.USERS), kind="user"),
        "items": IDMap.load(art.file(layout.ITEMS), kind="item"),
        "catalog": art.load_table(layout.CATALOG),
        **{part: art.load_table(layout.split_table(part)) for part in layout.SPLIT_PARTS},
        "value_kind": art.manifest["data"].get("value_kind"),
        "weights": EventWeights(tuple((str(name), float(w)) for name, w in art.manifest["data"]["weights"])),
    }
