"""Collaborative-filtering candidates: ``implicit``'s AlternatingLeastSquares.

The confidence of a (user, item) cell is the sum over the user's events on the item of the
event type's weight (the dataset's :class:`~recsys.schema.EventWeights`), times the event's
``value`` when the data says it is a rating or a quantity::

    c_ui = Σ_events weight(event) · value   (value = 1 when absent, or when it is a price)

optionally re-weighted by BM25 or TF-IDF (``implicit.nearest_neighbours``). The GPU model is
used when implicit was built with CUDA. Factors are saved as ``.npy`` (no pickle). Users with
events newer than the factors are folded in at query time with implicit's ``recalculate_user``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys import threads
from recsys.errors import ConfigError
from recsys.schema import EventWeights

log = logging.getLogger(__name__)
WEIGHTINGS = ("none", "bm25", "tfidf")


@dataclass(frozen=True)
class ALSConfig:
    """ALS knobs (saved with the factors). ``alpha`` scales the confidence matrix."""

    factors: int = 64
    regularization: float = 0.05
    iterations: int = 15
    alpha: float = 1.0
    weighting: str = "none"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"ALS weighting {self.weighting!r}: use one of {', '.join(WEIGHTINGS)}")
        if self.factors < 1 or self.iterations < 1:
            raise ConfigError(f"ALS factors={self.factors}, iterations={self.iterations}: both must be at least 1")


def confidence_matrix(events: pl.DataFrame, n_users: int, n_items: int, weights: EventWeights,
                      value_kind: str | None = None) -> sp.csr_matrix:
    """Users × items confidence from events carrying ``user_idx``/``item_idx`` (see module doc).

    >>> ev = pl.DataFrame({"user_idx": [0, 0, 1], "item_idx": [1, 1, 0], "event": ["view", "purchase", "cart"],
    ...                    "value": [None, 2.0, 3.0]})
    >>> confidence_matrix(ev, 2, 2, EventWeights(), "quantity").toarray().tolist()
    [[0.0, 17.0], [12.0, 0.0]]
    """
    w = events.select(weights.expr().fill_null(1.0)).to_series().to_numpy().astype(np.float32)
    if value_kind in ("rating", "quantity") and "value" in events.columns:
        v = events["value"].fill_null(1.0).to_numpy().astype(np.float32)
        w = w * np.where(v > 0, v, 1.0)
    m = sp.csr_matrix((w, (events["user_idx"].to_numpy(), events["item_idx"].to_numpy())),
                      shape=(n_users, n_items), dtype=np.float32)
    m.sum_duplicates()
    return m


def _weighted(m: sp.csr_matrix, weighting: str) -> sp.csr_matrix:
    if weighting == "none":
        return m
    from implicit.nearest_neighbours import bm25_weight, tfidf_weight

    # implicit weighs an items × users matrix; ours is users × items
    out = bm25_weight(m.T.tocoo()) if weighting == "bm25" else tfidf_weight(m.T.tocoo())
    return sp.csr_matrix(out.T, dtype=np.float32)


def _blas_single_thread():
    """implicit parallelises itself; a BLAS thread pool on top of it slows ALS down (implicit warns)."""
    import implicit.cpu.als  # noqa: F401 - loads the BLAS libraries first, so that the limit covers them
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, "blas")


def _gpu_available() -> bool:
    try:
        import implicit.gpu

        return bool(implicit.gpu.HAS_CUDA)
    except Exception:  # noqa: BLE001 - any import problem means "no GPU build"
        return False


class ALSCandidates:
    """ALS as a candidate source: ``fit`` on a confidence matrix, ``recommend`` answers (ids, scores)."""

    name = "als"

    def __init__(self, cfg: ALSConfig | None = None, use_gpu: bool | None = None):
        self.cfg = cfg or ALSConfig()
        self.use_gpu = _gpu_available() if use_gpu is None else use_gpu
        self.user_factors: np.ndarray | None = None
        self.item_factors: np.ndarray | None = None
        self._model = None

    def _new_model(self, gpu: bool):
        kwargs = dict(factors=self.cfg.factors, regularization=self.cfg.regularization,
                      iterations=self.cfg.iterations, alpha=self.cfg.alpha, random_state=self.cfg.seed)
        if gpu:
            from implicit.gpu.als import AlternatingLeastSquares as GPUALS

            return GPUALS(**kwargs)
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(**kwargs, num_threads=threads.current())

    def fit(self, confidence: sp.csr_matrix, show_progress: bool = False) -> ALSCandidates:
        matrix = _weighted(confidence.tocsr().astype(np.float32), self.cfg.weighting)
        if self.use_gpu and not _gpu_available():
            log.warning("ALS: implicit has no CUDA support here; training on the CPU")
            self.use_gpu = False
        with _blas_single_thread():
            model = self._new_model(self.use_gpu)
            model.fit(matrix, show_progress=show_progress)
        if self.use_gpu:
            model = model.to_cpu()
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._model = model
        return self

    def cpu_model(self):
        if self._model is None:
            if self.item_factors is None:
                raise RuntimeError("ALSCandidates: call fit() or load() first")
            with _blas_single_thread():
                self._model = self._new_model(False)
            self._model.user_factors, self._model.item_factors = self.user_factors, self.item_factors
        return self._model

    def recommend(self, users: np.ndarray, user_items: sp.csr_matrix, n: int = 100, exclude_seen: bool = True,
                  recalculate: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` internal item ids and scores for each of ``users`` (rows of ``user_items`` in
        the same order: their confidence rows). With ``recalculate`` the user factors are solved
        anew from those rows (fresh events, or users the factors have never seen).
        Short rows are padded with -1 ids and -inf scores.
        """
        users = np.asarray(users, dtype=np.int64)
        n_items = self.item_factors.shape[0] if self.item_factors is not None else 0
        ids = np.full((users.size, n), -1, dtype=np.int64)
        scores = np.full((users.size, n), -np.inf, dtype=np.float32)
        if users.size == 0 or n_items == 0:
            return ids, scores
        rows = _weighted(user_items.tocsr().astype(np.float32), self.cfg.weighting)
        n_eff = min(n, n_items)
        got_ids, got_scores = self.cpu_model().recommend(
            users if not recalculate else np.arange(users.size), rows, N=n_eff,
            filter_already_liked_items=exclude_seen, recalculate_user=recalculate)
        got_ids = np.atleast_2d(got_ids)
        got_scores = np.atleast_2d(got_scores)
        valid = (got_ids >= 0) & np.isfinite(got_scores) & (got_scores > -1e30)
        ids[:, :n_eff] = np.where(valid, got_ids, -1)
        scores[:, :n_eff] = np.where(valid, got_scores, -np.inf)
        return ids, scores

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "user_factors.npy", self.user_factors, allow_pickle=False)
        np.save(folder / "item_factors.npy", self.item_factors, allow_pickle=False)
        (folder / "config.json").write_text(json.dumps(asdict(self.cfg), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, folder: Path) -> ALSCandidates:
        cfg = ALSConfig(**json.loads((folder / "config.json").read_text()))
        out = cls(cfg, use_gpu=False)
        out.user_factors = np.load(folder / "user_factors.npy", allow_pickle=False)
        out.item_factors = np.load(folder / "item_factors.npy", allow_pickle=False)
        return out
