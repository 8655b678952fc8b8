"""``--text-model char-ngram``: a language-agnostic text encoder that needs no pretrained weights.

Character n-grams (2-4, hashed) weighted by TF-IDF, projected to ``dim`` dimensions by a truncated
SVD fitted on the catalogue, then L2-normalised. It reads any script (Chinese titles, emoji,
mixed languages) the same way, and texts sharing character n-grams land close together.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from recsys import layout
from recsys.catalog import normalize_text

NAME = "char-ngram"


class CharNgramEncoder:
    """``fit(texts)`` on the catalogue, then ``encode(texts)`` -> (n, dim) float32."""

    name = NAME

    def __init__(self, dim: int = 128, ngrams: tuple[int, int] = (2, 4), n_features: int = 1 << 20, seed: int = 0):
        self.dim, self.ngrams, self.n_features, self.seed = dim, ngrams, n_features, seed
        self.features: np.ndarray | None = None  # hashed feature ids kept (seen in the catalogue)
        self.idf: np.ndarray | None = None
        self.components: np.ndarray | None = None  # (dim, len(features))

    def _counts(self, texts: Sequence[str]) -> sp.csr_matrix:
        rows, cols = [], []
        lo, hi = self.ngrams
        for r, text in enumerate(texts):
            if not text:
                continue
            t = f" {normalize_text(text).lower()} "
            for n in range(lo, hi + 1):
                for i in range(len(t) - n + 1):
                    rows.append(r)
                    cols.append(zlib.crc32(t[i:i + n].encode("utf-8")) % self.n_features)
        m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(texts), self.n_features))
        m.sum_duplicates()
        return m

    def _tfidf(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        x = counts[:, self.features].multiply(self.idf).tocsr()
        x.data = np.log1p(x.data)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1))).ravel()
        return sp.diags(1.0 / np.maximum(norms, 1e-12)) @ x

    def fit(self, texts: Sequence[str]) -> CharNgramEncoder:
        counts = self._counts(texts)
        df = np.asarray((counts > 0).sum(axis=0)).ravel()
        self.features = np.flatnonzero(df)
        n = counts.shape[0]
        self.idf = (np.log((1 + n) / (1 + df[self.features])) + 1).astype(np.float32)
        x = self._tfidf(counts)
        if min(x.shape) < 2:  # no text (or a single text or n-gram): every vector is zero, items are ID-only
            self.components = np.zeros((self.dim, x.shape[1]), dtype=np.float32)
            return self
        k = max(1, min(self.dim, min(x.shape) - 1))
        rng = np.random.default_rng(self.seed)
        _, s, vt = svds(x.astype(np.float64), k=k, v0=rng.standard_normal(min(x.shape)))
        order = np.argsort(-s)
        comps = np.zeros((self.dim, x.shape[1]), dtype=np.float32)
        comps[:k] = vt[order]
        signs = np.sign(comps[np.arange(self.dim), np.abs(comps).argmax(axis=1)])  # deterministic signs
        self.components = comps * np.where(signs == 0, 1, signs)[:, None]
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.components is None:
            raise ValueError("CharNgramEncoder.encode: call fit(catalogue texts) first")
        v = np.asarray(self._tfidf(self._counts(texts)) @ self.components.T, dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return np.where(norms > 0, v / np.maximum(norms, 1e-12), 0.0).astype(np.float32)

    def save(self, w, folder: str = layout.CHARNGRAM) -> None:
        """Write the fitted state into an :class:`ArtifactWriter` (``.npy`` and JSON, no pickle):
        new items added later (``recsys add-items``) and warm starts must use the same axes."""
        w.save_json(layout.under(folder, layout.CONFIG), {"dim": self.dim, "ngrams": list(self.ngrams),
                                              "n_features": self.n_features, "seed": self.seed})
        w.save_array(f"{folder}/features.npy", self.features)
        w.save_array(f"{folder}/idf.npy", self.idf)
        w.save_array(f"{folder}/components.npy", self.components)

    @classmethod
    def load(cls, art, folder: str = layout.CHARNGRAM) -> CharNgramEncoder:
        cfg = art.load_json(layout.under(folder, layout.CONFIG))
        enc = cls(dim=cfg["dim"], ngrams=tuple(cfg["ngrams"]), n_features=cfg["n_features"], seed=cfg["seed"])
        enc.features = art.load_array(f"{folder}/features.npy")
        enc.idf = art.load_array(f"{folder}/idf.npy")
        enc.components = art.load_array(f"{folder}/components.npy")
        return enc

    def unk_rate(self, texts: Sequence[str]) -> float:
        """Every character n-gram is known: nothing is mapped to an unknown token."""
        return 0.0
