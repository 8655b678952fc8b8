"""The data contract: the columns of events and catalog, and the event-type weights.

Events (one row per user action)::

    user_id     str                      required
    item_id     str                      required
    event       str                      required (a known event type)
    timestamp   datetime[ms, UTC]        required
    session_id  str | null               optional
    value       float | null             optional (price, quantity or rating: see ``value_kind``)
    price       float | null             optional (a unit price, beside a quantity in ``value``)

Catalog (one row per item): ``item_id`` plus any text fields and an optional ``price``.

Event-type weights are the single place every stage reads how strong an action is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import polars as pl

from .errors import ConfigError

EVENT_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "event", "timestamp", "session_id", "value", "price")
REQUIRED_EVENT_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "event", "timestamp")
OPTIONAL_EVENT_COLUMNS: tuple[str, ...] = ("session_id", "value", "price")
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Utf8(),
    "item_id": pl.Utf8(),
    "event": pl.Utf8(),
    "timestamp": pl.Datetime("ms", "UTC"),
    "session_id": pl.Utf8(),
    "value": pl.Float64(),
    "price": pl.Float64(),
}
VALUE_KINDS: tuple[str, ...] = ("price", "quantity", "rating")

DEFAULT_WEIGHTS: dict[str, float] = {"view": 1.0, "click": 2.0, "cart": 4.0, "purchase": 8.0}


@dataclass(frozen=True)
class EventWeights:
    """Weight of each event type (defaults: view 1, click 2, cart 4, purchase 8).

    >>> w = EventWeights.from_dict({"rating": 1.0})
    >>> w.weight("purchase"), w.weight("rating"), w.names()
    (8.0, 1.0, ('view', 'click', 'cart', 'purchase', 'rating'))
    """

    weights: tuple[tuple[str, float], ...] = tuple(DEFAULT_WEIGHTS.items())

    @classmethod
    def from_dict(cls, extra: Mapping[str, float] | None = None, *, defaults: bool = True) -> EventWeights:
        """Default weights, overridden and extended by ``extra``."""
        merged = dict(DEFAULT_WEIGHTS) if defaults else {}
        for name, value in (extra or {}).items():
            name = str(name).strip()
            if not name:
                raise ConfigError("event weight: empty event name; write it as NAME=WEIGHT, e.g. like=3")
            try:
                weight = float(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"event weight for {name!r}: {value!r} is not a number; write it as {name}=3"
                ) from None
            if not weight > 0:
                raise ConfigError(f"event weight for {name!r}: {weight} must be > 0")
            merged[name] = weight
        return cls(tuple(merged.items()))

    def to_dict(self) -> dict[str, float]:
        return dict(self.weights)

    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.weights)

    def weight(self, event: str) -> float:
        for name, value in self.weights:
            if name == event:
                return value
        raise ConfigError(f"unknown event type {event!r}; known: {', '.join(self.names())}")

    def expr(self, column: str = "event") -> pl.Expr:
        """A polars expression mapping an event column to its weight (float)."""
        return pl.col(column).replace_strict(self.to_dict(), default=None, return_dtype=pl.Float64)


def parse_weights(pairs: Iterable[str]) -> dict[str, float]:
    """Parse ``["like=3", "share=5"]`` into a dict (values checked by :class:`EventWeights`)."""
    out: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--event-weight {pair!r}: expected NAME=WEIGHT, e.g. like=3")
        out[name.strip()] = value.strip()  # type: ignore[assignment]
    return out


@dataclass
class Dataset:
    """Events and catalog under the data contract, with what later stages need to read them.

    ``text_fields`` are the catalog columns the item text is built from (in order);
    ``value_kind`` says what the events' ``value`` column holds ("price", "quantity", "rating")
    or None. ``sources`` maps each input file to its sha256.
    """

    name: str
    events: pl.DataFrame
    items: pl.DataFrame
    text_fields: tuple[str, ...] = ()
    weights: EventWeights = field(default_factory=EventWeights)
    value_kind: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    citation: str | None = None

    def __post_init__(self) -> None:
        if self.value_kind is not None and self.value_kind not in VALUE_KINDS:
            raise ConfigError(
                f"value_kind {self.value_kind!r} is not one of {', '.join(VALUE_KINDS)}; leave it unset "
                "when the value column is absent"
            )

    def describe(self) -> dict:
        """Counts that identify the dataset at a glance."""
        return {
            "name": self.name,
            "events": self.events.height,
            "users": self.events["user_id"].n_unique(),
            "items_in_events": self.events["item_id"].n_unique(),
            "catalog_items": self.items.height,
            "text_fields": list(self.text_fields),
            "value_kind": self.value_kind,
            "weights": self.weights.to_dict(),
        }


def strong_events(events: pl.DataFrame, weights: EventWeights, value_kind: str | None) -> pl.Expr:
    """True for events that count as a purchase: a ``purchase`` (or, without that type, an event of
    the heaviest type), any event weighing at least a purchase, and a rating of 4 or more.

    >>> ev = pl.DataFrame({"event": ["view", "purchase", "rating", "rating"], "value": [None, None, 5.0, 3.0]})
    >>> w = EventWeights.from_dict({"rating": 1.0})
    >>> ev.select(strong_events(ev, w, "rating")).to_series().to_list()
    [False, True, True, False]
    """
    names = weights.names()
    purchase_w = weights.weight("purchase") if "purchase" in names else max(w for _, w in weights.weights)
    strong = weights.expr().fill_null(0.0) >= purchase_w
    if value_kind == "rating" and "value" in events.columns:
        strong = pl.when(pl.col("event") == "rating").then(pl.col("value").fill_null(0.0) >= 4.0).otherwise(strong)
    return strong
