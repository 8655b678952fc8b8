"""The candidate-source contract, and the histories sources read.

A *candidate source* proposes items for a batch of users, each row ``(ids, scores)`` best first
(internal item indices, -1 / -inf padded), in the style of implicit's ``RecommenderBase`` and
RecTools' ``CandidateGenerator``. The engine fuses every registered source's lists
(:func:`recsys.fusion.fuse`), the reranker reads each source's rank and score as features, and the
funnel scores each source's list: all from the one registry (``recsys.retrieval.sources``).

- :class:`History`: the events of a set of users, each user a *row* (``user_idx`` = row), with
  derived views (sequences, confidence rows, seen items) computed once and cached.
- :class:`Batch`: some rows of a history, the unit a source answers for.
- :class:`CandidateSource`: a name, ``fit`` on a history, ``candidates(batch, n)``, ``save`` /
  ``load`` into its own artifact sub-folder, and what it learnt from (``fit_parts``), which the
  leak-safe stage provider (``recsys.pipeline.provider``) reads to decide what to refit.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from . import layout
from .schema import EventWeights


@dataclass(frozen=True)
class Space:
    """What every source shares: the id spaces and how events weigh; ``item_groups``: each item's
    catalogue group (-1: none; :func:`recsys.catalog.item_groups`), or None where the catalogue
    has no group column."""

    n_users: int
    n_items: int
    weights: EventWeights
    value_kind: str | None = None
    item_groups: np.ndarray | None = None


class History:
    """Events of ``len(users)`` rows (``user_idx`` is the row), best read through the cached views.

    ``users[r]`` is row r's stored user index (-1 for a user the artifact does not know);
    ``popular`` is the engine's item popularity (of its stored history), which every batch shares.
    """

    def __init__(self, events: pl.DataFrame, users: np.ndarray, space: Space, popular: np.ndarray | None = None):
        self.events, self.users, self.space = events, np.asarray(users, dtype=np.int64), space
        self.popular = popular if popular is not None else np.zeros(space.n_items)
        self._views: dict[str, Any] = {}

    @property
    def n_rows(self) -> int:
        return int(self.users.size)

    def view(self, key: str, make: Callable[[History], Any]) -> Any:
        """A derived view (e.g. a source's sequences), computed by ``make(self)`` on first use."""
        if key not in self._views:
            self._views[key] = make(self)
        return self._views[key]

    def counts(self) -> np.ndarray:
        """Events per row."""
        return self.view("counts", lambda h: np.bincount(h.events["user_idx"].to_numpy(), minlength=h.n_rows))

    def seen(self, row: int) -> np.ndarray:
        """The distinct items of row ``row``, sorted."""
        return self.view("seen", lambda h: item_lists(h.events, h.n_rows))[row]


def item_lists(events: pl.DataFrame, n_rows: int) -> list[np.ndarray]:
    """Per row (``user_idx``) of ``events``, its distinct items, sorted (empty for a row without events)."""
    out = [np.zeros(0, dtype=np.int64)] * n_rows
    if events.height:
        per = events.group_by("user_idx").agg(pl.col("item_idx").unique().sort())
        for r, items in zip(per["user_idx"].to_list(), per["item_idx"].to_list()):
            out[r] = np.asarray(items, dtype=np.int64)
    return out


@dataclass
class Batch:
    """Rows ``rows`` of ``history``: the users a source answers for, in this order; ``at``: each
    row's request time in epoch seconds (NaN, or ``at`` None: not given), which sources that read
    time (``reorder``) use."""

    history: History
    rows: np.ndarray
    at: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, dtype=np.int64)
        if self.at is not None:
            self.at = np.asarray(self.at, dtype=np.float64).reshape(-1)
            if self.at.size != self.rows.size:
                raise ValueError(f"Batch at: {self.at.size} request times for {self.rows.size} rows; give one per row")

    def request_days(self) -> np.ndarray:
        """Each row's request time in days since the epoch (NaN: not given)."""
        return np.full(self.rows.size, np.nan) if self.at is None else self.at / 86400.0

    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def users(self) -> np.ndarray:
        """Each row's stored user index (-1: unknown to the artifact)."""
        return self.history.users[self.rows]

    def seen(self) -> list[np.ndarray]:
        return [self.history.seen(int(r)) for r in self.rows]

    def lengths(self) -> np.ndarray:
        return self.history.counts()[self.rows]


def request_times(at, n: int) -> np.ndarray | None:
    """Request times as :class:`Batch` reads them: ``at`` is None (not given), one time for all ``n``
    rows, or one per row (a sequence, or a polars Datetime series); a time is a datetime (naive:
    UTC), epoch seconds, or None. Returns epoch seconds (NaN: not given), or None for None.

    >>> import datetime as dt
    >>> request_times([dt.datetime(1970, 1, 2, tzinfo=dt.timezone.utc), None], 2).tolist()
    [86400.0, nan]
    >>> request_times(dt.datetime(1970, 1, 1, 1), 2).tolist(), request_times(None, 2)
    ([3600.0, 3600.0], None)
    """
    if at is None:
        return None
    if isinstance(at, pl.Series):
        return (at.dt.epoch("ms").cast(pl.Float64) / 1000.0).fill_null(np.nan).to_numpy()

    def one(t) -> float:
        if t is None:
            return np.nan
        if isinstance(t, dt.datetime):
            return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp()
        return float(t)

    if isinstance(at, (dt.datetime, int, float, np.number)):
        return np.full(n, one(at))
    out = np.array([one(t) for t in at], dtype=np.float64)
    if out.size != n:
        raise ValueError(f"at: {out.size} request times for {n} users; give one time, or one per user")
    return out


def empty_lists(rows: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, scores)`` of ``rows`` empty lists of width ``n`` (-1 ids, -inf scores)."""
    return np.full((rows, n), -1, dtype=np.int64), np.full((rows, n), -np.inf, dtype=np.float32)


@dataclass
class FitInfo:
    """What a fitted source (or model) learnt from: the split parts and how many events."""

    parts: tuple[str, ...] = ()
    events: int = 0

    def to_dict(self) -> dict:
        return {"parts": list(self.parts), "events": self.events}

    @classmethod
    def read(cls, path: Path) -> FitInfo:
        if not path.is_file():
            return cls()
        d = json.loads(path.read_text())
        return cls(tuple(d.get("parts", ())), int(d.get("events", 0)))

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict()) + "\n")


class CandidateSource:
    """Base class of candidate sources (see the module doc). Subclasses set ``name`` and override
    ``candidates``; those that learn from events override ``fit`` / ``save`` / ``load``.

    Class attributes (defaults): ``fusion_grid`` (1.0,) — the weights fusion tuning tries for it;
    ``seen_only`` False — it proposes only the user's own items, so it runs only where seen items
    are served; ``cold_only`` False — it serves only users with no history; ``count_scores`` False
    — its scores are counts (the reranker's features read log(1 + score)); ``learns`` False — it
    is fitted on events (the stage provider refits it on each stage's visible history).
    ``must_earn`` False — fusion tuning keeps its weight above zero only when the validation stage
    shows, with a paired bootstrap interval above zero, that it adds (its grid must hold 0).
    ``device``: where it computes (None: a GPU when there is one and the source can use it).
    """

    name: ClassVar[str] = ""
    fusion_grid: ClassVar[tuple[float, ...]] = (1.0,)
    seen_only: ClassVar[bool] = False
    cold_only: ClassVar[bool] = False
    count_scores: ClassVar[bool] = False
    learns: ClassVar[bool] = False
    must_earn: ClassVar[bool] = False
    external_fit: ClassVar[bool] = False  # fitted by a build stage of its own (the two-tower), not by ``fit``
    Config: ClassVar[type | None] = None  # its settings (a dataclass), given to the constructor; None: it has none

    def __init__(self, space: Space, config=None, device: str | None = None):
        self.space, self.config, self.device = space, config, device
        self.fit_info = FitInfo()

    def fit(self, events: pl.DataFrame, parts: tuple[str, ...] = ()) -> CandidateSource:
        """Learn from ``events`` (with ``user_idx`` / ``item_idx`` of the stored maps), which are the
        split parts ``parts``. Sources that only read the history they are given learn nothing."""
        self.fit_info = FitInfo(tuple(parts), events.height) if self.learns else FitInfo()
        return self

    def set_history(self, history: History) -> None:
        """The stored history the engine serves from (for precomputed views); default: nothing."""

    def candidates(self, batch: Batch, n: int, include_seen: bool,
                   allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, scores)`` of shape (len(batch), n), best first, -1 / -inf padded; seen items left
        out unless ``include_seen``; ``allowed`` (bool over items), when given, restricts the items."""
        raise NotImplementedError

    def save(self, folder: Path) -> None:
        """Write what ``load`` needs into ``folder`` (``.npy`` and JSON: no pickle)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.fit_info.write(folder / layout.FIT)

    def save_config(self, folder: Path) -> None:
        """Write the source's config (its ``Config`` dataclass) into ``folder`` as JSON."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / layout.CONFIG).write_text(json.dumps(asdict(self.config), sort_keys=True) + "\n")

    @classmethod
    def saved_config(cls, folder: Path | None):
        """The config :meth:`save_config` wrote into ``folder``; None when there is none."""
        path = None if folder is None else folder / layout.CONFIG
        return cls.config_from(json.loads(path.read_text())) if path is not None and path.is_file() else None

    @classmethod
    def config_from(cls, saved: dict):
        """The ``Config`` of a saved config's fields; a source whose config gained a field reads an
        older artifact's here, the way that artifact was built."""
        return cls.Config(**saved)

    @classmethod
    def load(cls, folder: Path | None, space: Space, **engine) -> CandidateSource | None:
        """The saved source (``folder`` is its sub-folder, None when the artifact has none); None when
        a source that learns was not built into this artifact. ``engine`` holds what the engine has
        already loaded (``model``, ``index``)."""
        if cls.learns and folder is None:
            return None
        out = cls(space, cls.saved_config(folder))  # None (no config saved): the source's defaults
        if folder is not None:
            out.fit_info = FitInfo.read(folder / layout.FIT)
        return out

    def add_items(self, n: int) -> bool:
        """Make room for ``n`` new items appended to the catalogue (``recsys add-items``); True when
        the source changed and must be saved again."""
        return False

    def forget(self, user: int) -> bool:
        """Drop what the source keeps about stored user ``user`` (``recsys forget``); True when it
        changed and must be saved again."""
        return False


def artifact_folder(art, name: str) -> Path | None:
    """The folder of source ``name`` in artifact ``art`` when it holds any file, else None."""
    prefix = layout.source_dir(name) + "/"
    if any(f.startswith(prefix) for f in art.manifest.get("files", {})):
        return art.path / layout.source_dir(name)
    return None
