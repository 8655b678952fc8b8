"""FAISS inner-product search over L2-normalised item vectors.

The index kind follows the catalogue's size: exact (``flat``) below ``exact_below`` items, else
``hnsw`` (default) or ``ivf``; any kind can be forced. With faiss's GPU build and a GPU, flat and
IVF indexes are searched on the GPU; otherwise (or for HNSW, which faiss has no GPU version of)
the CPU, with a warning when a GPU was asked for. Saved with faiss's own writer.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from recsys.device import faiss_gpu_count
from recsys.errors import ConfigError

log = logging.getLogger(__name__)
KINDS = ("auto", "flat", "ivf", "hnsw")


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class VectorIndex:
    """A FAISS index answering ``search(queries, k) -> (ids, scores)``.

    Keyword arguments (defaults): ``kind="auto"``; ``exact_below=20000`` items for the exact
    index; ``nlist`` IVF lists (4·√n); ``nprobe=16``; ``hnsw_m=32``; ``ef_search=256``;
    ``use_gpu=None`` (use one when faiss can, True to insist with a warning fallback, False never).
    """

    def __init__(self, kind: str = "auto", exact_below: int = 20_000, nlist: int | None = None, nprobe: int = 16,
                 hnsw_m: int = 32, ef_search: int = 256, use_gpu: bool | None = None, seed: int = 0):
        if kind not in KINDS:
            raise ConfigError(f"index kind {kind!r}: use one of {', '.join(KINDS)}")
        self.kind, self.exact_below, self.nlist, self.nprobe = kind, exact_below, nlist, nprobe
        self.hnsw_m, self.ef_search, self.use_gpu, self.seed = hnsw_m, ef_search, use_gpu, seed
        self.index = None
        self.on_gpu = False

    def resolved_kind(self, n: int) -> str:
        if self.kind != "auto":
            return self.kind
        return "flat" if n < self.exact_below else "hnsw"

    def build(self, vectors: np.ndarray) -> VectorIndex:
        import faiss

        x = normalize(vectors)
        n, d = x.shape
        kind = self.resolved_kind(n)
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = self.ef_search
            index.hnsw.efConstruction = 200
        else:
            nlist = self.nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(self.seed)
            sample = x[rng.choice(n, min(n, nlist * 256), replace=False)]
            index.train(sample)
            index.nprobe = self.nprobe
        index.add(x)
        self.index, self.kind_built = index, kind
        self._to_gpu()
        return self

    def _to_gpu(self) -> None:
        wants = self.use_gpu is not False
        if not wants:
            return
        if faiss_gpu_count() == 0:
            if self.use_gpu:
                log.warning("a GPU index was asked for but faiss has no GPU here (install the 'gpu' extra); using the CPU")
            return
        if self.kind_built == "hnsw":
            if self.use_gpu:
                log.warning("faiss has no GPU HNSW index; searching it on the CPU")
            return
        import faiss

        self.cpu_index = self.index
        self.index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, self.index)
        self.on_gpu = True

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal) if self.index is not None else 0

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append vectors; returns their ids (positions continue after the existing ones)."""
        start = self.ntotal
        self.index.add(normalize(vectors))
        return np.arange(start, self.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of shape (n_queries, k); missing neighbours are id -1, score -inf."""
        if self.index is None:
            raise ConfigError("the index is empty: build() or load() it first")
        k = min(k, self.ntotal)
        scores, ids = self.index.search(normalize(np.atleast_2d(queries)), k)
        scores = np.where(ids < 0, -np.inf, scores)
        return ids.astype(np.int64), scores.astype(np.float32)

    def save(self, path: str | Path) -> None:
        import faiss

        faiss.write_index(self.cpu_index if self.on_gpu else self.index, str(path))

    @classmethod
    def load(cls, path: str | Path, use_gpu: bool | None = None, nprobe: int | None = None,
             ef_search: int | None = None) -> VectorIndex:
        import faiss

        self = cls(use_gpu=use_gpu)
        self.index = faiss.read_index(str(path))
        self.kind_built = ("hnsw" if isinstance(self.index, faiss.IndexHNSW) else
                           "ivf" if isinstance(self.index, faiss.IndexIVF) else "flat")
        if nprobe is not None and self.kind_built == "ivf":
            self.index.nprobe = nprobe
        if ef_search is not None and self.kind_built == "hnsw":
            self.index.hnsw.efSearch = ef_search
        self._to_gpu()
        return self

    def bytes_per_item(self) -> float:
        """Serialised size of the index divided by its number of items."""
        import faiss

        blob = faiss.serialize_index(self.cpu_index if self.on_gpu else self.index)
        return len(blob) / max(1, self.ntotal)

    def recall_vs_exact(self, vectors: np.ndarray, seed: int = 0, n: int = 200, k: int = 10) -> float:
        """Recall@k of this index against an exact search, with ``n`` random rows of ``vectors`` (the
        indexed ones) as queries; 1.0 for an exact index."""
        if self.kind_built == "flat":
            return 1.0
        rng = np.random.default_rng(seed)
        q = vectors[rng.choice(len(vectors), min(n, len(vectors)), replace=False)]
        exact = VectorIndex(kind="flat", use_gpu=False).build(vectors).search(q, k)[0]
        found = self.search(q, k)[0]
        return round(float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact)])), 4)
