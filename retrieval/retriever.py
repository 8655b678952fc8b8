"""Serving the two-tower artifact: load once, then user vectors from history -> FAISS top-k."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from recsys.artifacts import Artifact
from recsys.device import resolve_device
from recsys.eval.protocols import with_indices
from recsys.prepare import load_prepared_tables

from .index import VectorIndex
from .model import TwoTower
from .sequences import build_sequences


class TwoTowerRetriever:
    """Answers ``recommend(user_ids, k) -> (item ids, scores)`` from a built artifact.

    The user vector is computed from the user's stored history at query time (train, validation
    and test events: everything the artifact knows).
    """

    def __init__(self, art: Artifact, device: str | None = None):
        self.art = art
        self.device = resolve_device(device)
        tables = load_prepared_tables(art)
        self.users, self.items, self.catalog, self.weights = tables["users"], tables["items"], tables["catalog"], tables["weights"]
        text = torch.as_tensor(art.load_array("text/vectors.npy"))
        self.model = TwoTower.load(art.file("model/config.json").parent, text, self.device)
        self.index = VectorIndex.load(art.file("index/items.faiss"))
        events = pl.concat([tables["train"], tables["valid"], tables["test"]])
        self.history = with_indices(events, self.users, self.items)
        self.seq = build_sequences(self.history, len(self.users), self.weights, self.model.cfg.n_gap_buckets)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> TwoTowerRetriever:
        return cls(Artifact.open(path), device)

    def seen(self, user: int) -> np.ndarray:
        s = self.seq.offsets
        return np.unique(self.seq.items[s[user]:s[user + 1]])

    def recommend(self, user_ids: list[str], k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-k external item ids and scores per user (unknown user ids raise a clear error)."""
        users = self.users.to_internal(user_ids)
        vecs = self.model.user_vectors(self.seq, users)
        extra = int(max((len(self.seen(u)) for u in users), default=0)) if exclude_seen else 0
        ids, scores = self.index.search(vecs, k + extra)
        out_ids = np.full((len(users), k), -1, dtype=np.int64)
        out_scores = np.full((len(users), k), -np.inf, dtype=np.float32)
        for r, u in enumerate(users):
            keep = ids[r] >= 0
            if exclude_seen:
                keep &= ~np.isin(ids[r], self.seen(u))
            chosen = np.flatnonzero(keep)[:k]
            out_ids[r, :chosen.size] = ids[r, chosen]
            out_scores[r, :chosen.size] = scores[r, chosen]
        external = np.where(out_ids >= 0, self.items.to_external(np.maximum(out_ids, 0)), None)
        return external, out_scores
