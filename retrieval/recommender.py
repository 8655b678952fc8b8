"""Serving a built artifact: every registered candidate source, fused, optionally reranked.

:class:`Recommender` loads the artifact once (two-tower model, FAISS index, each source's files,
the stored events) and answers:

- :meth:`Recommender.recommend` — a batch of known users, vectorised: ``(ids, scores)``;
- :meth:`Recommender.explain_one` (:mod:`.explain`) — one user, known or new, with fresh events
  given at query time, each item with its provenance, need and "because" history items.

The sources are those of the registry (:mod:`.sources`); the reranker, when there is one, is
handed in (any object with ``context_items`` and ``rank_lists``, e.g. ``recsys.rerank.Reranker``):
retrieval does not import it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from recsys import layout
from recsys.artifacts import Artifact
from recsys.cooccurrence import recent_items, scores_of, transitions
from recsys.defaults import N_CANDIDATES, RERANK_DEPTH, RRF_K
from recsys.device import resolve_device
from recsys.eval.protocols import with_indices
from recsys.fusion import Candidates, Union, candidate_features, feature_names
from recsys.prepare import load_prepared_tables
from recsys.sources import Batch, History, Space, artifact_folder, request_times

from . import sources as registry
from .explain import Explainer
from .index import VectorIndex
from .model import TwoTower
from .personal import popularity_scores
from .sequences import history_sequences

log = logging.getLogger(__name__)
SHORT = 2  # histories of at most this many events are fused with weights of their own (see fusion_weights)


@dataclass(frozen=True)
class FusionOptions:
    """How many candidates each source proposes and how they are fused (see :func:`fuse`).

    ``per_source``: (name, n) pairs that override ``n_per_source`` for one source; ``weights``:
    (name, weight) pairs; empty means the weights tuned at build time (``fusion.json``), else 1.
    """

    n_candidates: int = N_CANDIDATES
    n_per_source: int = N_CANDIDATES
    per_source: tuple[tuple[str, int], ...] = ()
    method: str = "rrf"
    rrf_k: int = RRF_K
    weights: tuple[tuple[str, float], ...] = ()

    def n_for(self, source: str) -> int:
        return dict(self.per_source).get(source, self.n_per_source)


def load_sources(art: Artifact, space: Space, **engine) -> dict:
    """Every registered source the artifact was built with, in registry order (``engine``: loaded parts).
    A source registered later, or left out at build time, is not part of it."""
    built = art.manifest.get("config", {}).get("sources")
    out = {}
    for cls in registry.SOURCES:
        if built is not None and not built.get(cls.name):
            continue
        src = cls.load(artifact_folder(art, cls.name), space, **engine)
        if src is not None:
            out[cls.name] = src
    return out


class Recommender(Explainer):
    """The engine over one artifact (see the module doc). ``history``: the events it serves from
    (default: every stored event); ``sources``: source instances to use instead of the stored ones
    (the stage provider hands in refitted ones); ``model`` / ``index`` / ``item_vectors``: a two-tower
    model (and its vectors) to use instead of the stored one; ``reranker``: see the module doc."""

    def __init__(self, art: Artifact, device: str | None = None, history: pl.DataFrame | None = None,
                 fusion: FusionOptions | None = None, reranker=None, rerank_depth: int = RERANK_DEPTH,
                 sources: dict | None = None, model: TwoTower | None = None, index: VectorIndex | None = None,
                 item_vectors: np.ndarray | None = None):
        self.art = art
        self.rerank_depth = rerank_depth
        self.fusion = fusion or FusionOptions()
        self.device = resolve_device(device)
        t = load_prepared_tables(art)
        self.users, self.items, self.catalog, self.weights = t["users"], t["items"], t["catalog"], t["weights"]
        self.value_kind = t["value_kind"]
        self.space = Space(len(self.users), len(self.items), self.weights, self.value_kind)
        self.model = model or load_two_tower(art, self.device)
        self.index = index or VectorIndex.load(art.file(layout.INDEX_FILE))
        vecs = item_vectors if item_vectors is not None else art.load_array(layout.ITEM_VECTORS)
        self.item_vectors = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        self.sources = sources if sources is not None else load_sources(art, self.space, model=self.model,
                                                                        index=self.index, item_vectors=self.item_vectors)
        self.tuned = art.load_json(layout.FUSION) if art.has(layout.FUSION) else {}
        self.reranker = reranker
        self.titles = [""] * self.n_items
        for i, text in zip(self.items.to_internal(self.catalog["item_id"], missing="ignore"),
                           self.catalog["text"].fill_null("").to_list()):
            if i >= 0:
                self.titles[i] = text
        self._needs = None
        self.set_history(history if history is not None else pl.concat([t[p] for p in layout.SPLIT_PARTS]))

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, **kwargs) -> Recommender:
        return cls(Artifact.open(path), device, **kwargs)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def set_history(self, events: pl.DataFrame) -> None:
        """The events the recommender knows (user_id, item_id, event, timestamp, ...)."""
        self.history = with_indices(events, self.users, self.items).sort("user_idx", "timestamp", maintain_order=True)
        self.popular = popularity_scores(self.history, self.n_items, self.weights)
        self.stored = History(self.history, np.arange(self.n_users), self.space, self.popular)
        for src in self.sources.values():
            src.set_history(self.stored)
        self._cooc = None

    def warm_up(self) -> float:
        """Compute now what the first request would otherwise compute over the whole stored history:
        each view the serving mode's sources keep of it (sequences, baskets, the repeat features of
        each user's own items, ...), the seen items, and the transitions the reranker's features
        read. Views are built for every stored user at once, so on millions of events the first
        request would wait seconds for them; ``recsys serve`` calls this when it loads an artifact,
        before it serves it. A request that overrides the serving mode (``include_seen``) still builds
        that mode's views once. Returns the seconds it took."""
        start = time.perf_counter()
        users = np.flatnonzero(self.stored.counts() > 0)[:1]
        if users.size:  # one stored user with events: every view covers all of them
            batch = self.stored_batch(users)
            self.source_lists(batch, self.serves_seen)
            batch.seen()
            if self.reranker is not None:
                self.cooccurrence()
        took = time.perf_counter() - start
        log.info("stored history's views built in %.2f s", took)
        return took

    @property
    def seq(self):
        """The stored history's behaviour sequences (what the user tower reads)."""
        return history_sequences(self.stored, self.model.cfg.n_gap_buckets)

    def cooccurrence(self):
        """Item transitions (:mod:`recsys.cooccurrence`) of the history, or of :meth:`count_from`'s events."""
        if self._cooc is None:
            self._cooc = transitions(self.history, self.n_items)
        return self._cooc

    def count_from(self, events: pl.DataFrame) -> None:
        """Count item popularity and transitions in ``events`` only (until the next :meth:`set_history`):
        a stage's lists hold its targets in the history, to label them, but their features must be
        what the stage's engine serves, whose history is ``events`` (no target, no event after one)."""
        counted = with_indices(events, self.users, self.items)
        self._cooc = transitions(counted, self.n_items)
        self.popular = popularity_scores(counted, self.n_items, self.weights)
        self.stored.popular = self.popular

    # ---- batches of users -------------------------------------------------------------------
    def stored_batch(self, users: np.ndarray, at: np.ndarray | None = None) -> Batch:
        """Known users (internal indices) as their stored history has them; ``at``: each one's request
        time (epoch seconds, NaN: not given; see :class:`~recsys.sources.Batch`)."""
        return Batch(self.stored, np.asarray(users, dtype=np.int64), at)

    def seen(self, user: int) -> np.ndarray:
        """Internal ids of the items a (stored) user interacted with."""
        return self.stored.seen(int(user))

    def positions(self) -> pl.DataFrame:
        """The stored history with ``_pos``, each event's position in its user's time order."""
        return self.history.with_columns(pl.int_range(pl.len()).over("user_idx").alias("_pos"))

    def prefix_batch(self, users: np.ndarray, lengths: np.ndarray, at: np.ndarray | None = None) -> Batch:
        """Row r: user ``users[r]`` as of their first ``lengths[r]`` stored events (time order, ties in
        stored order: the order the splits use), so events sharing a timestamp fall on the side of the
        cut the splits put them. A user may appear in several rows. Sources that learnt from exactly
        that prefix (a validation list's history) read their stored state; others fold it in. ``at``:
        each row's request time (epoch seconds)."""
        return self.window_batch(users, np.zeros(len(users), dtype=np.int64), lengths, at)

    def suffix_batch(self, users: np.ndarray, k: int) -> Batch:
        """Row r: user ``users[r]`` with only their last ``k`` stored events (a short history)."""
        users = np.asarray(users, dtype=np.int64)
        stop = self.stored.counts()[users]
        return self.window_batch(users, np.maximum(stop - k, 0), stop)

    def events_batch(self, events: pl.DataFrame, users: np.ndarray) -> Batch:
        """Row r: user ``users[r]`` with only the events of ``events`` (``user_idx`` / ``item_idx`` set) that are theirs."""
        users = np.asarray(users, dtype=np.int64)
        rows = pl.DataFrame({"user_idx": users}).with_row_index("_row")
        part = (events.join(rows, on="user_idx", how="inner").drop("user_idx").rename({"_row": "user_idx"})
                .with_columns(pl.col("user_idx").cast(pl.Int64)).sort("user_idx", "timestamp", maintain_order=True))
        return Batch(History(part, users, self.space, self.popular), np.arange(users.size))

    def window_batch(self, users: np.ndarray, starts: np.ndarray, stops: np.ndarray,
                     at: np.ndarray | None = None) -> Batch:
        """Row r: user ``users[r]``'s stored events ``starts[r]`` to ``stops[r]`` (exclusive), in time order."""
        users = np.asarray(users, dtype=np.int64)
        rows = pl.DataFrame({"user_idx": users, "_from": np.asarray(starts, dtype=np.int64),
                             "_len": np.asarray(stops, dtype=np.int64)}).with_row_index("_row")
        part = (self.positions().join(rows, on="user_idx", how="inner")
                .filter((pl.col("_pos") >= pl.col("_from")) & (pl.col("_pos") < pl.col("_len")))
                .drop("user_idx", "_from", "_len", "_pos").rename({"_row": "user_idx"})
                .with_columns(pl.col("user_idx").cast(pl.Int64)))
        return Batch(History(part, users, self.space, self.popular), np.arange(users.size), at)

    # ---- candidates ------------------------------------------------------------------------
    def source_lists(self, batch: Batch, include_seen: bool = False,
                     allowed: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each source's ``(ids, scores)`` for the batch (internal ids, -1 padded), in registry order.
        Users with no history get the cold-start sources' lists (within ``allowed`` items) only."""
        cold = batch.lengths() == 0
        lists = {}
        if (~cold).any():
            for src in self.sources.values():
                if not src.cold_only and (include_seen or not src.seen_only):
                    lists[src.name] = src.candidates(batch, self.fusion.n_for(src.name), include_seen)
        if cold.any():
            for src in self.sources.values():
                if src.cold_only:
                    ids, scores = src.candidates(batch, self.fusion.n_candidates, include_seen, allowed)
                    lists[src.name] = (np.where(cold[:, None], ids, -1), np.where(cold[:, None], scores, -np.inf))
            for name, (i, s) in list(lists.items()):
                if not self.sources[name].cold_only:  # sources computed on empty histories say nothing
                    lists[name] = (np.where(cold[:, None], -1, i), np.where(cold[:, None], -np.inf, s))
        return lists

    @property
    def serves_seen(self) -> bool:
        """Whether answers keep items the user already had unless told otherwise: decided at build
        time on the validation stage (``fusion.json``'s ``serve_seen``); excluded where undecided."""
        return bool(self.tuned.get("serve_seen", {}).get("include_seen", False))

    def seen_mode(self, include_seen: bool | None) -> bool:
        """``include_seen`` as given, or the artifact's own choice (:attr:`serves_seen`) for None."""
        return self.serves_seen if include_seen is None else bool(include_seen)

    def fusion_weights(self, include_seen: bool, short: bool = False) -> dict[str, float]:
        """The weights in use: given in :class:`FusionOptions`, else tuned at build time (for histories
        of at most :data:`SHORT` events, those tuned for them), else all 1."""
        if self.fusion.weights:
            return dict(self.fusion.weights)
        mode = "include_seen" if include_seen else "exclude_seen"
        tuned = self.tuned.get("short_history", {}) if short else self.tuned
        return dict(tuned.get(mode, {}).get("weights", {}))

    def fuse(self, lists: dict[str, tuple[np.ndarray, np.ndarray]], include_seen: bool = False,
             weights: dict[str, float] | None = None, short: np.ndarray | None = None) -> Candidates:
        """Fuse source lists (see :func:`recsys.fusion.fuse`); ``weights`` default to :meth:`fusion_weights`, which
        for the rows marked ``short`` are those tuned for short histories."""
        union = Union(lists, self.fusion.method, self.fusion.rrf_k)  # built once, fused under each weighting

        def one(w: dict[str, float]) -> Candidates:
            return union.candidates({k: v for k, v in w.items() if k in lists}, self.fusion.n_candidates)

        if weights is not None:
            return one(weights)
        out = one(self.fusion_weights(include_seen))
        if short is not None and short.any() and self.fusion_weights(include_seen, True) != self.fusion_weights(include_seen):
            alt = one(self.fusion_weights(include_seen, True))
            for name in ("items", "scores", "ranks", "source_scores"):
                a, b = getattr(out, name), getattr(alt, name)
                setattr(out, name, np.where(short.reshape(-1, *[1] * (a.ndim - 1)), b, a))
        return out

    def candidates(self, batch: Batch, include_seen: bool = False, allowed: np.ndarray | None = None) -> Candidates:
        """Fused candidates for the batch (seen items excluded unless ``include_seen``)."""
        return self.fuse(self.source_lists(batch, include_seen, allowed), include_seen, short=self.short_rows(batch))

    @staticmethod
    def short_rows(batch: Batch) -> np.ndarray:
        """The rows whose history holds at least one and at most :data:`SHORT` events."""
        lengths = batch.lengths()
        return (lengths > 0) & (lengths <= SHORT)

    # ---- reranking ---------------------------------------------------------------------------
    def cooccurrence_scores(self, batch: Batch, items: np.ndarray) -> np.ndarray:
        """(rows, n) co-occurrence scores of ``items`` given each row's last 5 items."""
        mine = pl.Series(np.unique(batch.rows)).implode()
        ev = batch.history.events.filter(pl.col("user_idx").is_in(mine)).sort("user_idx", "timestamp",
                                                                               maintain_order=True)
        recent = recent_items(ev)
        return scores_of(self.cooccurrence(), [recent.get(int(r), []) for r in batch.rows], items)

    def features(self, batch: Batch, c: Candidates) -> np.ndarray:
        """The reranker's features of the candidates (columns: :meth:`feature_names`)."""
        counts = [s.name for s in registry.SOURCES if s.count_scores]
        return candidate_features(c, registry.names(), self.popular, batch.seen(),
                                  self.cooccurrence_scores(batch, c.items), count_scores=counts)

    @staticmethod
    def feature_names() -> tuple[str, ...]:
        return feature_names(registry.names())

    def contexts(self, batch: Batch, n: int) -> list[tuple[list[str], list[str]]]:
        """Each row's last ``n`` events as (titles, event types), oldest first."""
        mine = pl.Series(np.unique(batch.rows)).implode()
        ev = batch.history.events.filter(pl.col("user_idx").is_in(mine)).sort("user_idx", "timestamp",
                                                                               maintain_order=True)
        per = ev.group_by("user_idx", maintain_order=True).agg(pl.col("item_idx").tail(n), pl.col("event").tail(n))
        ctx = dict(zip(per["user_idx"].to_list(), zip(per["item_idx"].to_list(), per["event"].to_list())))
        out = []
        for r in batch.rows:
            its, evs = ctx.get(int(r), ([], []))
            out.append(([self.titles[i] for i in its], list(evs)))
        return out

    def rerank(self, batch: Batch, c: Candidates, features: np.ndarray | None = None) -> dict:
        """Reorder each row's top ``rerank_depth`` candidates with the reranker.

        Returns ``{"items", "scores", "click", "purchase", "order"}``: ``order[r]`` holds positions
        (into the fused list) in reranked order; rows are padded with -1."""
        n_rows, depth = c.items.shape[0], min(self.rerank_depth, c.items.shape[1])
        feats = self.features(batch, c) if features is None else features
        valid = [np.flatnonzero(c.items[r, :depth] >= 0) for r in range(n_rows)]
        ranked = self.reranker.rank_lists(self.contexts(batch, self.reranker.context_items),
                                          [[self.titles[i] for i in c.items[r, js]] for r, js in enumerate(valid)],
                                          [feats[r, js] for r, js in enumerate(valid)], self.feature_names())
        out = {k: np.full((n_rows, depth), fill, dtype=dt_) for k, fill, dt_ in
               (("items", -1, np.int64), ("order", -1, np.int64), ("scores", -np.inf, np.float32),
                ("click", np.nan, np.float32), ("purchase", np.nan, np.float32))}
        for r, (js, got) in enumerate(zip(valid, ranked)):
            order = js[got["order"]]
            m = order.size
            out["order"][r, :m], out["items"][r, :m] = order, c.items[r, order]
            for k in ("scores", "click", "purchase"):
                out[k][r, :m] = got[k]
        return out

    # ---- answers ---------------------------------------------------------------------------
    def recommend(self, user_ids, k: int = 10, include_seen: bool | None = None,
                  rerank: bool = True, at=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k external item ids and scores for known users (None / -inf pad short rows): reranked
        when the engine has a reranker (and ``rerank``), else fused. ``include_seen=None``: the
        artifact's choice (:attr:`serves_seen`). ``at``: the request's time (a datetime, epoch
        seconds, or one per user), which the ``reorder`` source reads; None: not given."""
        internal = self.users.to_internal(user_ids)
        batch = self.stored_batch(internal, request_times(at, internal.size))
        c = self.candidates(batch, self.seen_mode(include_seen))
        if rerank and self.reranker is not None:
            r = self.rerank(batch, c)
            ids, scores = r["items"][:, :k], r["scores"][:, :k]
        else:
            ids, scores = c.items[:, :k], c.scores[:, :k]
        return np.where(ids >= 0, self.items.to_external(np.maximum(ids, 0)), None), scores

    def top(self, source: str, user_ids, k: int = 10, include_seen: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """One source's top-k external ids and scores for known users (for comparisons)."""
        batch = self.stored_batch(self.users.to_internal(user_ids))
        ids, scores = self.sources[source].candidates(batch, k, include_seen)
        return np.where(ids >= 0, self.items.to_external(np.maximum(ids, 0)), None), scores


def load_two_tower(art: Artifact, device: str = "cpu", folder: str = layout.MODEL) -> TwoTower:
    """The artifact's two-tower model (``folder``: its own, or a stage's), with what it learnt from."""
    text = art.load_array(layout.TEXT_FINETUNED if art.has(layout.TEXT_FINETUNED) else layout.TEXT_VECTORS)
    return TwoTower.load(art.file(layout.under(folder, layout.CONFIG)).parent, torch.as_tensor(text), device)
