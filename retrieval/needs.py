"""Latent needs: the catalogue grouped into needs, each named from its items' text, and the needs a
user is predicted to have next, split into the ones already expressed and the latent ones.

- **Needs**: spherical k-means (FAISS) over the two-tower item vectors; ``k`` follows the
  catalogue's size (``round(sqrt(n_items / 2))`` clipped to [4, 200]) unless given.
- **Names**: class-based TF-IDF (as in BERTopic), counted over items: for term t and need c,
  ``w(t, c) = df(t, c) · log(1 + A / f(t))`` with ``df`` the share of the need's items whose text holds
  the term, ``A`` the mean item count per need and ``f(t)`` the number of items, over all needs, that
  hold it. A word of one long item text cannot name its need: a name's words are spread across the
  need's items (in at least two of them) and rare elsewhere. The name is the top three terms, with
  three example items (the nearest to the need's centre).
- **A user's needs**: the model's next-item distribution ``p_i = softmax(<u, v_i> / T)`` summed per
  need gives ``P(need)``; the *expressed* share is the need's share of the user's recent events.
  A need is **latent** when ``P(need)`` is high while its expressed share is at most
  ``latent_share`` (default 0.05: barely present in the history, e.g. at most 2 of 50 events).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from recsys import layout
from recsys.errors import DataError

from .sequences import history_sequences

TOKEN = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*", re.UNICODE)
STOP = frozenset("the and for with from of in on to by an or is at as its it this that les des une der die das".split())


def default_count(n_items: int) -> int:
    """How many needs a catalogue of ``n_items`` gets: ``round(sqrt(n_items / 2))`` in [4, 200].

    >>> default_count(1682), default_count(20), default_count(10**6)
    (29, 4, 200)
    """
    return int(min(200, max(4, round(math.sqrt(n_items / 2)))))


def tokens(text: str) -> list[str]:
    """Lower-cased words (hyphens and apostrophes kept inside): Latin ones of three letters or
    more, other scripts of two or more, minus a few stop words.

    >>> tokens("Toy Story (1995) | Animation Children's Sci-Fi"), tokens("华美 咖啡豆 手冲☕ 2")
    (['toy', 'story', 'animation', "children's", 'sci-fi'], ['华美', '咖啡豆', '手冲'])
    """
    return [t for t in TOKEN.findall((text or "").lower())
            if t not in STOP and (len(t) >= 3 or (len(t) >= 2 and not t.isascii()))]


def class_tfidf(classes: list[list[set[str]]]) -> list[dict[str, float]]:
    """c-TF-IDF weight of each term in each class, counted over items (``classes``: per class, each
    member item's set of terms; see the module doc). A term held by a single item of a class of two
    or more is not weighed.

    >>> w = class_tfidf([[{"tea", "cup"}, {"tea"}], [{"coffee", "cup"}]])
    >>> round(w[0]["tea"], 4) == round(2 / 2 * math.log(1 + 1.5 / 2), 4), "cup" in w[0], round(w[1]["cup"], 4)
    (True, False, 0.5596)
    """
    counts = [Counter(t for item in items for t in item) for items in classes]
    total = Counter()
    for c in counts:
        total.update(c)
    mean_items = sum(len(items) for items in classes) / max(1, len(classes))
    out = []
    for c, items in zip(counts, classes):
        n = max(1, len(items))
        least = 2 if n >= 2 else 1
        out.append({t: (k / n) * math.log(1 + mean_items / total[t]) for t, k in c.items() if k >= least})
    return out


@dataclass
class Needs:
    centroids: np.ndarray  # (k, dim), L2-normalised
    assign: np.ndarray  # (n_items,) need of each item
    names: list[dict]  # per need: id, name, terms, examples (item indices), size

    @classmethod
    def fit(cls, item_vectors: np.ndarray, texts: list[str], k: int | None = None, seed: int = 0,
            trained: np.ndarray | None = None) -> Needs:
        """k-means over ``item_vectors`` (rows of ``trained`` only, when given: items with events
        define the needs; every item is then assigned to its nearest one)."""
        import faiss

        x = np.ascontiguousarray(item_vectors / np.maximum(np.linalg.norm(item_vectors, axis=1, keepdims=True), 1e-12),
                                 dtype=np.float32)
        fit_on = x if trained is None or trained.sum() < 2 else x[trained]
        k = min(k or default_count(len(x)), len(fit_on))
        km = faiss.Kmeans(x.shape[1], k, niter=25, seed=seed, spherical=True, verbose=False,
                          min_points_per_centroid=1, max_points_per_centroid=100_000)
        km.train(fit_on)
        cent = km.centroids / np.maximum(np.linalg.norm(km.centroids, axis=1, keepdims=True), 1e-12)
        sims = x @ cent.T
        assign = sims.argmax(axis=1)
        weights = class_tfidf([[set(tokens(texts[i])) for i in np.flatnonzero(assign == c)] for c in range(k)])
        names = []
        for c in range(k):
            members = np.flatnonzero(assign == c)
            terms = [t for t, _ in sorted(weights[c].items(), key=lambda kv: (-kv[1], kv[0]))[:5]]
            examples = members[np.argsort(-sims[members, c], kind="stable")[:3]].tolist()
            names.append({"id": c, "name": " / ".join(terms[:3]) or f"need {c}", "terms": terms,
                          "examples": examples, "size": int(members.size)})
        return cls(cent.astype(np.float32), assign.astype(np.int64), names)

    def save(self, w) -> None:
        w.save_array(layout.NEEDS_CENTROIDS, self.centroids)
        w.save_array(layout.NEEDS_ASSIGN, self.assign)
        w.save_json(layout.NEEDS_NAMES, self.names)

    @classmethod
    def load(cls, art) -> Needs:
        return cls(art.load_array(layout.NEEDS_CENTROIDS), art.load_array(layout.NEEDS_ASSIGN),
                   art.load_json(layout.NEEDS_NAMES))

    @property
    def k(self) -> int:
        return len(self.names)

    def predict(self, user_vectors: np.ndarray, item_vectors: np.ndarray, temperature: float) -> np.ndarray:
        """P(need) per user (n_users, k): the softmax over items of ``<u, v>/T``, summed per need."""
        logits = user_vectors @ item_vectors.T / temperature
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        out = np.zeros((len(user_vectors), self.k))
        for c in range(self.k):
            out[:, c] = p[:, self.assign == c].sum(axis=1)
        return out

    def expressed(self, items: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Each need's share of a history (item indices, optional weights)."""
        share = np.bincount(self.assign[items], weights=weights, minlength=self.k).astype(np.float64)
        return share / max(share.sum(), 1e-12)

    def split(self, prob: np.ndarray, share: np.ndarray, top: int = 3, latent_share: float = 0.05) -> dict:
        """The ``top`` expressed and ``top`` latent needs of one user, most likely first."""
        order = np.argsort(-prob, kind="stable")
        latent = [int(c) for c in order if share[c] <= latent_share][:top]
        expressed = [int(c) for c in order if share[c] > latent_share][:top]
        return {"expressed": expressed, "latent": latent}


def _temperature(rec) -> float:
    """The softmax temperature the artifact's model was trained with."""
    return float(rec.art.manifest.get("config", {}).get("train", {}).get("temperature", 0.1))


def _recent(seq, row: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The items and event weights of ``row``'s last ``max_len`` events (what the user tower reads)."""
    lo, hi = int(seq.offsets[row]), int(seq.offsets[row + 1])
    lo = max(lo, hi - max_len)
    return seq.items[lo:hi], seq.weights[lo:hi]


def user_needs(rec, user_id: str, fresh: list[tuple[str, str]] = (), top: int = 3, latent_share: float = 0.05) -> dict:
    """The needs ``rec`` (a :class:`~recsys.retrieval.recommender.Recommender`) predicts for a user
    next: the ``top`` expressed and the ``top`` latent ones, each with its probability, its share of
    the history and the history items that point to it (nearest to the need's centre)."""
    batch, known = rec.profile(user_id, fresh)
    seq = history_sequences(batch.history, rec.model.cfg.n_gap_buckets)
    items, weights = _recent(seq, int(batch.rows[0]), rec.model.cfg.max_len)
    if items.size == 0:
        raise DataError(f"user {user_id!r}: no events to read needs from; give some with --history ITEM[:EVENT],...")
    needs = rec.needs
    prob = needs.predict(rec.model.user_vectors(seq, batch.rows), rec.item_vectors, _temperature(rec))[0]
    share = needs.expressed(items, weights)
    parts = needs.split(prob, share, top, latent_share)
    uniq = np.unique(items)

    def describe(c: int) -> dict:
        sims = rec.item_vectors[uniq] @ needs.centroids[c]
        near = uniq[np.argsort(-sims, kind="stable")[:2]]
        n = needs.names[c]
        return {"id": c, "name": n["name"], "terms": n["terms"], "probability": round(float(prob[c]), 4),
                "history_share": round(float(share[c]), 4),
                # an item without text is shown by its id
                "examples": [rec.titles[i] or str(rec.items.to_external([i])[0]) for i in n["examples"]],
                "pointing": [{"item_id": str(rec.items.to_external([i])[0]), "title": rec.titles[i],
                              "similarity": round(float(rec.item_vectors[i] @ needs.centroids[c]), 4)} for i in near]}

    return {"user_id": user_id, "known_user": bool(known >= 0), "history_events": int(items.size),
            "needs": needs.k, "expressed": [describe(c) for c in parts["expressed"]],
            "latent": [describe(c) for c in parts["latent"]]}


def stored_needs(rec, users: np.ndarray, batch: int = 512):
    """For each of ``users`` (internal indices) with stored events, read from the stored history:
    ``(position in users, P(need) over the needs, the needs' expressed shares)``."""
    needs, temperature = rec.needs, _temperature(rec)
    for s in range(0, len(users), batch):
        part = users[s:s + batch]
        prob = needs.predict(rec.model.user_vectors(rec.seq, part), rec.item_vectors, temperature)
        for row, u in enumerate(part):
            items, weights = _recent(rec.seq, int(u), rec.model.cfg.max_len)
            if items.size:
                yield s + row, prob[row], needs.expressed(items, weights)


def latent_need_hits(rec, users: np.ndarray, targets: list[np.ndarray], top: int = 3,
                     latent_share: float = 0.05) -> dict:
    """How often a user's top-``top`` latent needs contain the need of one of ``targets`` (the
    user's held-out items), for the model and for a popularity-of-needs baseline (the most
    frequent needs of the stored events, under the same latent rule). ``users``: internal
    indices, whose stored history is what the needs are read from. ``per_user`` holds each
    user's hit (1/0) for both, for a paired comparison."""
    needs = rec.needs
    popular = np.bincount(needs.assign[rec.seq.items], minlength=needs.k).argsort(kind="stable")[::-1]
    model_hits, base_hits = [], []
    for at, prob, share in stored_needs(rec, users):
        want = set(needs.assign[targets[at]].tolist())
        latent = needs.split(prob, share, top, latent_share)["latent"]
        base = [int(c) for c in popular if share[c] <= latent_share][:top]
        model_hits.append(float(bool(want & set(latent))))
        base_hits.append(float(bool(want & set(base))))
    n = len(model_hits)
    return {"users": n, "model": round(sum(model_hits) / max(n, 1), 4),
            "popular_needs": round(sum(base_hits) / max(n, 1), 4), "needs": needs.k, "top": top,
            "latent_share": latent_share, "per_user": {"model": np.asarray(model_hits), "popular_needs": np.asarray(base_hits)}}


def need_audience(rec, max_users: int = 5000, top: int = 3, latent_share: float = 0.05, seed: int = 0) -> dict:
    """For every need, how many users hold it among their top ``top`` latent needs and among their
    top expressed ones (as :func:`user_needs` reads them), over all users with events or a seeded
    sample of ``max_users``. Returns ``{"users": n, "latent": (k,) counts, "expressed": (k,) counts}``."""
    needs = rec.needs
    users = np.flatnonzero(np.diff(rec.seq.offsets) > 0)
    if users.size > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    latent, expressed = np.zeros(needs.k, np.int64), np.zeros(needs.k, np.int64)
    for _, prob, share in stored_needs(rec, users):
        parts = needs.split(prob, share, top, latent_share)
        latent[parts["latent"]] += 1
        expressed[parts["expressed"]] += 1
    return {"users": int(users.size), "latent": latent, "expressed": expressed}
