"""Serving a built artifact: candidates from every source, fused, with provenance and reasons.

:class:`Recommender` loads the artifact once (two-tower model, FAISS index, ALS factors, the
stored events) and answers:

- :meth:`Recommender.recommend` — a batch of known users, vectorised: ``(ids, scores)``.
- :meth:`Recommender.explain_one` — one user (known or new), optionally with fresh events given at
  query time, as a list of dicts: item, title, score, provenance, and "because" history items.

Sources: ``two_tower`` (FAISS top-N of the user vector computed from the history at query time),
``als`` (stored factors, or folded in with ``recalculate_user`` when the user has events the
factors never saw), ``repeat`` (the user's own recent frequent items; only when seen items are
kept) and ``popular`` (users with no history at all).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from recsys.artifacts import Artifact
from recsys.device import resolve_device
from recsys.errors import DataError
from recsys.eval.protocols import with_indices
from recsys.prepare import load_prepared_tables

from .als import ALSCandidates, confidence_matrix
from .cooccurrence import transitions
from .fusion import Candidates, fuse
from .index import VectorIndex
from .model import TwoTower
from .personal import popularity_scores, repeat_scores, top_n
from .sequences import Sequences, build_sequences

log = logging.getLogger(__name__)
PAST = {"view": "viewed", "click": "clicked", "cart": "added to cart", "purchase": "bought", "rating": "rated"}


@dataclass(frozen=True)
class FusionOptions:
    """How many candidates each source proposes and how they are fused (see :func:`fuse`)."""

    n_two_tower: int = 100
    n_als: int = 100
    n_repeat: int = 100
    n_candidates: int = 100
    method: str = "rrf"
    rrf_k: int = 60
    weights: tuple[tuple[str, float], ...] = ()  # empty: the weights tuned at build time (fusion.json), else 1


@dataclass
class _Profiles:
    """The state of a batch of users: their sequences, confidence rows and seen items."""

    seq: Sequences
    rows: np.ndarray  # row of each user in ``seq`` (and in ``conf``)
    conf: object  # scipy csr, one row per entry of ``rows``'s source
    als_users: np.ndarray  # the users' rows in the ALS factors (-1: unknown to ALS)
    fresh: np.ndarray  # bool: fold in (the factors did not see all of the user's events)
    events: pl.DataFrame  # the events behind ``seq`` (every stored user's, or the one ad-hoc user's)


class Recommender:
    def __init__(self, art: Artifact, device: str | None = None, history: pl.DataFrame | None = None,
                 fusion: FusionOptions | None = None, use_reranker: bool | str = True, rerank_depth: int = 100,
                 als_dir: str = "als"):
        self.art = art
        self.rerank_depth = rerank_depth
        self.fusion = fusion or FusionOptions()
        self.device = resolve_device(device)
        t = load_prepared_tables(art)
        self.users, self.items, self.catalog, self.weights = t["users"], t["items"], t["catalog"], t["weights"]
        self.value_kind = art.manifest.get("data", {}).get("value_kind")
        text = torch.as_tensor(art.load_array("text/finetuned.npy" if art.has("text/finetuned.npy") else "text/vectors.npy"))
        self.model = TwoTower.load(art.file("model/config.json").parent, text, self.device)
        self.index = VectorIndex.load(art.file("index/items.faiss"))
        vecs = art.load_array("index/item_vectors.npy")
        self.item_vectors = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        self.als = self.als_counts = None
        if art.has(f"{als_dir}/config.json"):
            self.als = ALSCandidates.load(art.file(f"{als_dir}/config.json").parent)
            self.als_counts = art.load_array(f"{als_dir}/user_event_counts.npy")
        self.tuned = art.load_json("fusion.json") if art.has("fusion.json") else {}
        self._needs = None
        self.reranker = None
        if use_reranker and art.has("reranker/config.json") and (use_reranker == "always" or self._reranker_helps()):
            from recsys.rerank.model import Reranker

            self.reranker = Reranker.load(art.file("reranker/config.json").parent, self.device)
        self.titles = [""] * self.n_items
        for i, text in zip(self.items.to_internal(self.catalog["item_id"], missing="ignore"),
                           self.catalog["text"].fill_null("").to_list()):
            if i >= 0:
                self.titles[i] = text
        self.set_history(history if history is not None else pl.concat([t["train"], t["valid"], t["test"]]))

    def _reranker_helps(self) -> bool:
        """Whether the stored reranker beat the fused order on the validation lists (build summary)."""
        fit = self.art.load_json("summary.json").get("reranker") if self.art.has("summary.json") else None
        if not fit or fit.get("best_valid_ndcg@10") is None:
            return True
        if fit["best_valid_ndcg@10"] > fit["fused_valid_ndcg@10"]:
            return True
        log.warning("the reranker in %s did not beat the fused order on validation (NDCG@10 %s vs %s): serving the "
                    "fused list; `recsys evaluate` still reports it", self.art.path, fit["best_valid_ndcg@10"],
                    fit["fused_valid_ndcg@10"])
        return False

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
        self.seq = build_sequences(self.history, self.n_users, self.weights, self.model.cfg.n_gap_buckets)
        self.conf = confidence_matrix(self.history, self.n_users, self.n_items, self.weights, self.value_kind)
        self.counts = np.bincount(self.history["user_idx"].to_numpy(), minlength=self.n_users)
        self.popular = popularity_scores(self.history, self.n_items, self.weights)
        self._repeat = None
        self._cooc = None

    def cooccurrence(self):
        """Item transitions (:mod:`.cooccurrence`) of the history, or of :meth:`cooccurrence_from`'s events."""
        if self._cooc is None:
            self._cooc = transitions(self.history, self.n_items)
        return self._cooc

    def cooccurrence_from(self, events: pl.DataFrame) -> None:
        """Count transitions in ``events`` only (until the next :meth:`set_history`): lists whose
        labels are later events must not count them."""
        self._cooc = transitions(with_indices(events, self.users, self.items), self.n_items)

    # ---- candidate generation -------------------------------------------------------------
    def _stored(self, users: np.ndarray) -> _Profiles:
        fresh = np.ones(users.size, dtype=bool) if self.als_counts is None else self.counts[users] != self.als_counts[users]
        return _Profiles(self.seq, users, self.conf[users], users, fresh, self.history)

    def seen(self, user: int) -> np.ndarray:
        """Internal ids of the items a (stored) user interacted with."""
        o = self.seq.offsets
        return np.unique(self.seq.items[o[user]:o[user + 1]])

    def _seen(self, p: _Profiles) -> list[np.ndarray]:
        o = p.seq.offsets
        return [np.unique(p.seq.items[o[r]:o[r + 1]]) for r in p.rows]

    def _two_tower(self, p: _Profiles, seen: list[np.ndarray], include_seen: bool,
                   n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        n = n or self.fusion.n_two_tower
        vecs = self.model.user_vectors(p.seq, p.rows)
        extra = 0 if include_seen else max((s.size for s in seen), default=0)
        ids, scores = self.index.search(vecs, min(n + extra, self.n_items))
        out_ids = np.full((p.rows.size, n), -1, dtype=np.int64)
        out_scores = np.full((p.rows.size, n), -np.inf, dtype=np.float32)
        for r in range(p.rows.size):
            keep = ids[r] >= 0
            if not include_seen:
                keep &= ~np.isin(ids[r], seen[r])
            chosen = np.flatnonzero(keep)[:n]
            out_ids[r, :chosen.size], out_scores[r, :chosen.size] = ids[r, chosen], scores[r, chosen]
        return out_ids, out_scores

    def _als(self, p: _Profiles, include_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        n = self.fusion.n_als
        ids = np.full((p.rows.size, n), -1, dtype=np.int64)
        scores = np.full((p.rows.size, n), -np.inf, dtype=np.float32)
        for flag in (False, True):
            sel = np.flatnonzero((p.fresh == flag) & ((p.als_users >= 0) | flag))
            if sel.size:
                ids[sel], scores[sel] = self.als.recommend(p.als_users[sel], p.conf[sel], n, exclude_seen=not include_seen,
                                                           recalculate=flag)
        return ids, scores

    def _repeat_source(self, p: _Profiles, stored: bool) -> tuple[np.ndarray, np.ndarray]:
        if stored:
            if self._repeat is None:
                self._repeat = repeat_scores(self.history, self.n_users, self.n_items, self.weights)
            mat = self._repeat[p.rows]
        else:
            mat = repeat_scores(p.events, p.seq.n_users, self.n_items, self.weights)[p.rows]
        return top_n(mat.toarray(), self.fusion.n_repeat)

    def source_lists(self, p: _Profiles, include_seen: bool = False, stored: bool = True,
                     allowed: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each candidate source's ``(ids, scores)`` for the users of ``p`` (internal ids, -1 padded)."""
        seen = self._seen(p)
        lengths = np.array([s.size for s in seen])
        lists = {}
        if (lengths > 0).any():
            lists["two_tower"] = self._two_tower(p, seen, include_seen)
            if self.als is not None:
                lists["als"] = self._als(p, include_seen)
            if include_seen:
                lists["repeat"] = self._repeat_source(p, stored)
        if (lengths == 0).any():  # nobody knows these users: popular items (within the allowed ones)
            pop = np.where(allowed, self.popular, 0.0) if allowed is not None else self.popular
            ids, scores = top_n(pop[None, :], self.fusion.n_candidates)
            cold = lengths == 0
            lists["popular"] = (np.where(cold[:, None], ids, -1), np.where(cold[:, None], scores, -np.inf))
            for name in list(lists):
                if name != "popular":  # sources computed on empty histories say nothing
                    i, s = lists[name]
                    lists[name] = (np.where(cold[:, None], -1, i), np.where(cold[:, None], -np.inf, s))
        return lists

    def fusion_weights(self, include_seen: bool) -> dict[str, float]:
        """The weights in use: given in :class:`FusionOptions`, else tuned at build time, else all 1."""
        if self.fusion.weights:
            return dict(self.fusion.weights)
        return dict(self.tuned.get("include_seen" if include_seen else "exclude_seen", {}).get("weights", {}))

    def fuse(self, lists: dict[str, tuple[np.ndarray, np.ndarray]], weights: dict[str, float] | None = None) -> Candidates:
        """Fuse source lists (see :func:`fuse`); ``weights`` default to :meth:`fusion_weights`."""
        if weights is None:
            weights = self.fusion_weights("repeat" in lists)
        weights = {k: v for k, v in weights.items() if k in lists}
        return fuse(lists, n=self.fusion.n_candidates, method=self.fusion.method, weights=weights, k=self.fusion.rrf_k)

    def candidates(self, p: _Profiles, include_seen: bool = False, stored: bool = True,
                   allowed: np.ndarray | None = None) -> Candidates:
        """Fused candidates for the users of ``p`` (seen items excluded unless ``include_seen``)."""
        return self.fuse(self.source_lists(p, include_seen, stored, allowed))

    def stored_profiles(self, users: np.ndarray) -> _Profiles:
        """The profiles of known users (internal indices) from the stored history."""
        return self._stored(np.asarray(users, dtype=np.int64))

    def profiles_prefix(self, users: np.ndarray, lengths: np.ndarray) -> _Profiles:
        """Profiles of ``users`` from their first ``lengths[r]`` stored events (time order, ties in
        stored order: the order the splits use), so events sharing a timestamp can fall either side
        of the cut, as they do between a leave-one-out split's parts. Row r of the result is
        (users[r], lengths[r]); a user may appear several times. ALS folds a prefix in unless it is
        exactly what the ALS factors were solved from (a validation list's history, say), as
        :meth:`stored_profiles` does at serving time."""
        users, lengths = np.asarray(users, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
        n = users.size
        rows = pl.DataFrame({"user_idx": users, "_len": lengths}).with_row_index("_row")
        prefix = (self.positions().join(rows, on="user_idx", how="inner").filter(pl.col("_pos") < pl.col("_len"))
                  .drop("user_idx", "_len", "_pos").rename({"_row": "user_idx"})
                  .with_columns(pl.col("user_idx").cast(pl.Int64)))
        seq = build_sequences(prefix, n, self.weights, self.model.cfg.n_gap_buckets)
        conf = confidence_matrix(prefix, n, self.n_items, self.weights, self.value_kind)
        fresh = np.ones(n, dtype=bool) if self.als_counts is None else lengths != self.als_counts[users]
        return _Profiles(seq, np.arange(n), conf, users, fresh, prefix)

    def positions(self) -> pl.DataFrame:
        """The stored history with ``_pos``, each event's position in its user's time order."""
        return self.history.with_columns(pl.int_range(pl.len()).over("user_idx").alias("_pos"))

    def _rerank(self, p: _Profiles, c: Candidates) -> dict:
        from recsys.rerank.pipeline import rerank

        return rerank(self.reranker, self, p, c, self.rerank_depth)

    def recommend(self, user_ids, k: int = 10, include_seen: bool = False, rerank: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-k external item ids and scores for known users (None / -inf pad short rows): reranked
        when the artifact has a reranker (and ``rerank``), else fused."""
        users = self.users.to_internal(user_ids)
        p = self._stored(users)
        c = self.candidates(p, include_seen)
        if rerank and self.reranker is not None:
            r = self._rerank(p, c)
            ids, scores = r["items"][:, :k], r["scores"][:, :k]
        else:
            ids, scores = c.items[:, :k], c.scores[:, :k]
        return np.where(ids >= 0, self.items.to_external(np.maximum(ids, 0)), None), scores

    def two_tower(self, user_ids, k: int = 10, include_seen: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The two-tower source alone: top-k external ids and cosine scores (for comparisons)."""
        p = self._stored(self.users.to_internal(user_ids))
        ids, scores = self._two_tower(p, self._seen(p), include_seen, n=k)
        return np.where(ids >= 0, self.items.to_external(np.maximum(ids, 0)), None), scores

    # ---- one user, with explanations --------------------------------------------------------
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

    def explain_one(self, user_id: str, k: int = 10, include_seen: bool = False, fresh: list[tuple[str, str]] = (),
                    context: str | None = None, rerank: bool = True) -> dict:
        """Recommendations for one user, known or not, with fresh events given at query time."""
        allowed = self.context_filter(context)
        p, stored, known = self.profile(user_id, fresh)
        c = self.candidates(p, include_seen, stored=stored, allowed=allowed)
        mine = p.events.filter(pl.col("user_idx") == int(p.rows[0]))
        recent = mine.sort("timestamp", maintain_order=True).tail(self.model.cfg.max_len).unique(
            "item_idx", keep="last", maintain_order=True)
        recent = (recent["item_idx"].to_numpy(), recent["event"].to_list())
        reranked = self._rerank(p, c) if rerank and self.reranker is not None and mine.height else None
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
                                    "p_click": round(float(reranked["click"][0, pos]), 6),
                                    "p_purchase": round(float(reranked["purchase"][0, pos]), 6)}
            need = self.needs.names[int(self.needs.assign[i])]
            items.append({"item_id": str(self.items.to_external([i])[0]), "title": self.titles[i],
                          "score": round(score, 6), "provenance": prov, "because": self._because(i, recent),
                          "need": {"id": need["id"], "name": need["name"]}})
        return {"user_id": user_id, "known_user": bool(known >= 0), "history_events": mine.height,
                "fresh_events": len(fresh), "reranked": reranked is not None, "items": items}

    def profile(self, user_id: str, fresh: list[tuple[str, str]] = ()) -> tuple[_Profiles, bool, int]:
        """(profile, whether it is the stored one, the user's index or -1) for one user."""
        known = self.users.lookup.get(str(user_id), -1)
        if known >= 0 and not fresh:
            return self._stored(np.array([known])), True, known
        return self._adhoc(known, fresh), False, known

    @property
    def needs(self):
        """The catalogue's needs (:mod:`.needs`): stored by build-index, or fitted once here."""
        if self._needs is None:
            from .needs import Needs

            if self.art.has("needs/names.json"):
                self._needs = Needs.load(self.art)
            else:
                self._needs = Needs.fit(self.item_vectors, self.titles, seed=self.art.manifest.get("seed") or 0)
        return self._needs

    def _adhoc(self, known: int, fresh: list[tuple[str, str]]) -> _Profiles:
        """A one-user profile: the stored events (if any) plus ``fresh`` ones, newest last."""
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
        seq = build_sequences(events, 1, self.weights, self.model.cfg.n_gap_buckets)
        conf = confidence_matrix(events, 1, self.n_items, self.weights, self.value_kind)
        return _Profiles(seq, np.array([0]), conf, np.array([max(known, -1)]), np.array([True]), events)

    def _because(self, item: int, recent: tuple[np.ndarray, list[str]], n: int = 2) -> list[dict]:
        """The history items (``recent``: distinct item indices and their events) most like ``item``
        (cosine of the two-tower item vectors)."""
        idx, events = recent
        if idx.size == 0:
            return []
        sims = self.item_vectors[idx] @ self.item_vectors[item]
        best = np.argsort(-sims, kind="stable")[:n]
        return [{"item_id": str(self.items.to_external([idx[b]])[0]), "title": self.titles[idx[b]],
                 "event": events[b], "reason": f"because you {PAST.get(events[b], events[b])} {self.titles[idx[b]]}",
                 "similarity": round(float(sims[b]), 4)} for b in best]
