"""The transitions source: what usually comes next. Items score by how often they followed the
user's last few items (within a few steps) in everyone's histories (:mod:`recsys.cooccurrence`):

    score(i) = Σ over the user's last ``last_n`` items r (age a = 0 for the newest) of ``decay`` ** a · T[r, i]

with T the transition matrix learnt from the stored history. Sequential co-occurrence was the
strongest simple peer on MovieLens; as a source it enters fusion and gives the reranker a rank and
score, and fusion keeps its weight only where the validation stage shows it adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.cooccurrence import recent_items, transitions
from recsys.errors import ConfigError
from recsys.sources import Batch, CandidateSource, FitInfo, Space, empty_lists

from ..personal import top_n_sparse

MATRIX = "transitions.npz"


@dataclass(frozen=True)
class TransitionsConfig:
    """``window``: how many steps ahead a follower counts (step s weighs 1/s); ``last_n``: the user's
    recent items read; ``decay``: the weight kept per step back among them."""

    window: int = 3
    last_n: int = 5
    decay: float = 0.6

    def __post_init__(self) -> None:
        if self.window < 1 or self.last_n < 1 or not 0.0 < self.decay <= 1.0:
            raise ConfigError(f"transitions window={self.window}, last_n={self.last_n}, decay={self.decay}: give "
                              "window ≥ 1, last_n ≥ 1 and decay in (0, 1]")


class TransitionsSource(CandidateSource):
    name = "transitions"
    fusion_grid = (0.0, 0.5, 1.0, 2.0)
    learns = True
    must_earn = True
    Config = TransitionsConfig

    def __init__(self, space: Space, config: TransitionsConfig | None = None, device: str | None = None):
        super().__init__(space, config or TransitionsConfig(), device)
        self.matrix = sp.csr_matrix((space.n_items, space.n_items), dtype=np.float32)

    def fit(self, events: pl.DataFrame, parts: tuple[str, ...] = ()) -> TransitionsSource:
        self.matrix = transitions(events, self.space.n_items, self.config.window).astype(np.float32).tocsr()
        self.fit_info = FitInfo(tuple(parts), events.height)
        return self

    def candidates(self, batch: Batch, n: int, include_seen: bool, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        recent = batch.history.view(f"recent/{c.last_n}", lambda h: recent_items(
            h.events.sort("user_idx", "timestamp", maintain_order=True), c.last_n))
        ids, scores = empty_lists(len(batch), n)
        seen = None if include_seen else batch.seen()
        for s in range(0, len(batch), 256):
            rows = batch.rows[s:s + 256]
            r, cols, w = [], [], []
            for k, row in enumerate(rows):
                its = recent.get(int(row), [])
                r += [k] * len(its)
                cols += its
                w += [c.decay ** a for a in range(len(its))]
            weights = sp.csr_matrix((np.asarray(w, dtype=np.float32), (r, cols)), shape=(rows.size, self.space.n_items))
            ids[s:s + rows.size], scores[s:s + rows.size] = top_n_sparse(
                weights @ self.matrix, n, None if seen is None else seen[s:s + 256], allowed)
        return ids, scores

    def save(self, folder: Path) -> None:
        self.save_config(folder)
        sp.save_npz(folder / MATRIX, self.matrix, compressed=False)
        super().save(folder)

    @classmethod
    def load(cls, folder: Path | None, space: Space, **_) -> TransitionsSource | None:
        out = super().load(folder, space)
        if out is not None:
            out.matrix = sp.load_npz(folder / MATRIX).tocsr()  # numpy arrays only: scipy loads without pickle
        return out

    def add_items(self, n: int) -> bool:
        m, size = self.matrix, self.matrix.shape[0] + n
        self.matrix = sp.csr_matrix((m.data, m.indices, np.r_[m.indptr, np.full(n, m.indptr[-1])]), shape=(size, size))
        return True
