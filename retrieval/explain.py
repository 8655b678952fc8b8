"""One user at a time, explained: fresh events given at query time, provenance, needs and reasons.

:class:`Explainer` is the part of :class:`~recsys.retrieval.recommender.Recommender` that answers
for a single user, known or new: :meth:`Explainer.explain_one` returns each item with its title,
score, provenance (each source's rank and score, and the reranker's when it reranked), the need it
serves and the history items most like it ("because you bought X").
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from recsys import layout
from recsys.errors import DataError
from recsys.fusion import Candidates
from recsys.sources import Batch, History, request_times

from .needs import Needs

PAST = {"view": "viewed", "click": "clicked", "cart": "added to cart", "purchase": "bought", "rating": "rated"}
BECAUSE_MIN = 0.3  # a history item less like the recommendation than this (cosine) explains nothing


def reason(event: str, title: str) -> str:
    """The "because" line of a history item: "because you bought X" (a declared type: "because of X (like)")."""
    return f"because you {PAST[event]} {title}" if event in PAST else f"because of {title} ({event})"


class Explainer:
    """Mixed into the Recommender (which provides the history, sources, model and catalogue)."""

    def parse_history(self, spec: str) -> list[tuple[str, str]]:
        """``"ITEM[:EVENT],..."`` -> [(item_id, event)], checked against the catalogue and event types."""
        names = self.weights.names()
        default = "purchase" if "purchase" in names else names[-1]
        out = []
        for part in (x.strip() for x in spec.split(",")):
            if not part:
                continue
            item, _, event = part.rpartition(":") if ":" in part else (part, "", default)
            event = event or default
            if event not in names:
                raise DataError(f"--history: event {event!r} in {part!r} is not one of {', '.join(names)}; "
                                f"write ITEM or ITEM:EVENT, e.g. {item}:{default}")
            if self.items.to_internal([item], missing="ignore")[0] < 0:
                raise DataError(f"--history: item {item!r} is not in this artifact's catalogue "
                                f"({self.n_items} items); use an item_id from the catalogue")
            out.append((item, event))
        return out

    def context_filter(self, spec: str | None) -> np.ndarray | None:
        """``"FIELD=VALUE"`` -> items whose catalogue field contains VALUE (case-insensitive)."""
        if not spec:
            return None
        field, sep, value = spec.partition("=")
        fields = [c for c in self.catalog.columns if c != "item_id"]
        if not sep or field not in fields:
            raise DataError(f"--context {spec!r}: write FIELD=VALUE with FIELD one of {', '.join(fields)}")
        col = self.catalog[field].cast(pl.Utf8).fill_null("").str.to_lowercase()
        mask = col.str.contains(value.lower(), literal=True).to_numpy()
        if not mask.any():
            raise DataError(f"--context {spec!r}: no item's {field} contains {value!r}")
        return mask

    def explain_one(self, user_id: str, k: int = 10, include_seen: bool | None = None,
                    fresh: list[tuple[str, str]] = (), context: str | None = None, rerank: bool = True,
                    compare: bool = False, at=None) -> dict:
        """Recommendations for one user, known or not, with fresh events given at query time
        (``include_seen=None``: the artifact's choice). With ``compare`` and a reranked answer,
        ``"fused_items"`` also lists the same candidates in their fused order (what the answer would
        be without the reranker). ``at``: the request's time (a datetime or epoch seconds; None: not
        given), which the ``reorder`` source reads."""
        allowed = self.context_filter(context)
        batch, known = self.profile(user_id, fresh, request_times(at, 1))
        include_seen = self.seen_mode(include_seen)
        c = self.candidates(batch, include_seen, allowed=allowed)
        row = int(batch.rows[0])
        mine = batch.history.events.filter(pl.col("user_idx") == row)
        recent = mine.sort("timestamp", maintain_order=True).tail(self.model.cfg.max_len).unique(
            "item_idx", keep="last", maintain_order=True)
        recent = (recent["item_idx"].to_numpy(), recent["event"].to_list())
        reranked = self.rerank(batch, c) if rerank and self.reranker is not None and mine.height else None
        out = {"user_id": user_id, "known_user": bool(known >= 0), "history_events": mine.height,
               "fresh_events": len(fresh), "seen_items": "kept" if include_seen else "excluded",
               "reranked": reranked is not None,
               "items": self._explained(c, recent, k, reranked)}
        if compare and reranked is not None:
            out["fused_items"] = self._explained(c, recent, k)
        return out

    def _explained(self, c: Candidates, recent: tuple[np.ndarray, list[str]], k: int,
                   reranked: dict | None = None) -> list[dict]:
        """The top ``k`` of one user's candidates ``c`` (in the reranker's order when ``reranked``),
        each with its title, score, provenance, need and "because" items."""
        order = reranked["order"][0] if reranked is not None else np.arange(c.items.shape[1])
        items = []
        for pos, j in enumerate(order[:k]):
            i = int(c.items[0, j]) if j >= 0 else -1
            if i < 0:
                break
            prov = c.provenance(0, int(j))
            score = float(c.scores[0, j])
            if reranked is not None:
                score = float(reranked["scores"][0, pos])
                prov["reranker"] = {"rank": pos + 1, "score": round(score, 6), "fused_rank": int(j) + 1,
                                    "fused_score": round(float(c.scores[0, j]), 6),
                                    "p_click": round(float(reranked["click"][0, pos]), 6)}
                buy = float(reranked["purchase"][0, pos])
                if np.isfinite(buy):  # absent when the data held no purchase to learn it from
                    prov["reranker"]["p_purchase"] = round(buy, 6)
            need = self.need_of(i)
            items.append({"item_id": str(self.items.to_external([i])[0]), "title": self.titles[i],
                          "score": round(score, 6), "provenance": prov, "because": self.because(i, recent),
                          "need": {"id": need["id"], "name": need["name"]}})
        return items

    def profile(self, user_id: str, fresh: list[tuple[str, str]] = (),
                at: np.ndarray | None = None) -> tuple[Batch, int]:
        """(a one-row batch of the user at request time ``at``, the user's index or -1): the stored
        history when there are no fresh events, else the stored events (if any) plus the fresh ones,
        newest last."""
        known = self.users.lookup.get(str(user_id), -1)
        if known >= 0 and not fresh:
            return self.stored_batch(np.array([known]), at), known
        base = self.history.filter(pl.col("user_idx") == known) if known >= 0 else self.history.clear()
        start = base["timestamp"].max() if base.height else None
        now = dt.datetime.now(dt.timezone.utc)
        t0 = max(now, start + dt.timedelta(seconds=1)) if start is not None else now
        new = pl.DataFrame({
            "item_id": [i for i, _ in fresh], "event": [e for _, e in fresh],
            "timestamp": [t0 + dt.timedelta(seconds=s) for s in range(len(fresh))],
        }, schema_overrides={"timestamp": pl.Datetime("ms", "UTC")})
        new = new.with_columns(pl.Series("item_idx", self.items.to_internal(new["item_id"]) if new.height else [],
                                         dtype=pl.Int64))
        cols = ["item_idx", "event", "timestamp"] + [c for c in ("session_id", "value") if c in base.columns]
        events = pl.concat([base.select(cols), new], how="diagonal_relaxed").with_columns(pl.lit(0).alias("user_idx"))
        return Batch(History(events, np.array([known]), self.space, self.popular), np.array([0]), at), known

    @property
    def needs(self) -> Needs:
        """The catalogue's needs (:mod:`.needs`): stored by build-index, or fitted once here."""
        if self._needs is None:
            if self.art.has(layout.NEEDS_NAMES):
                self._needs = Needs.load(self.art)
            else:
                self._needs = Needs.fit(self.item_vectors, self.titles, seed=self.art.manifest.get("seed") or 0)
        return self._needs

    def need_of(self, item: int) -> dict:
        """The need ``item`` (an internal index) belongs to: ``{"id", "name", "terms", "size", ...}``."""
        return self.needs.names[int(self.needs.assign[item])]

    def similar_items(self, item_id: str, k: int = 10) -> list[dict]:
        """The ``k`` items nearest ``item_id`` in the item-vector index (cosine), each with its title,
        score and need; LookupError for an item not in the catalogue."""
        i = self.items.lookup.get(item_id, -1)
        if i < 0:
            raise LookupError(f"item {item_id[:64]!r}: not in the catalogue")
        ids, scores = self.index.search(self.item_vectors[i:i + 1], k + 1)
        pairs = [(int(j), float(s)) for j, s in zip(ids[0], scores[0]) if j >= 0 and j != i][:k]
        return [{"item_id": str(self.items.to_external([j])[0]), "title": self.titles[j], "score": round(s, 6),
                 "need": self.need_of(j)["name"]} for j, s in pairs]

    def because(self, item: int, recent: tuple[np.ndarray, list[str]], n: int = 2) -> list[dict]:
        """The history items (``recent``: distinct item indices and their events) most like ``item``
        (cosine of the two-tower item vectors), those at least :data:`BECAUSE_MIN` alike: an item unlike
        anything in the history is not explained by it."""
        idx, events = recent
        if idx.size == 0:
            return []
        sims = self.item_vectors[idx] @ self.item_vectors[item]
        best = [b for b in np.argsort(-sims, kind="stable")[:n] if sims[b] >= BECAUSE_MIN]
        return [{"item_id": str(self.items.to_external([idx[b]])[0]), "title": self.titles[idx[b]],
                 "event": events[b], "reason": reason(events[b], self.titles[idx[b]]),
                 "similarity": round(float(sims[b]), 4)} for b in best]
