"""The reranker's training and validation data: one row per (user, decision time), with the
retrieval stage's candidates, their features, the labels of what the user did next and the
user's context text. Built by the pipeline (``recsys.pipeline.lists``) from lists whose
candidates come from models that never saw the labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.eval.metrics import ndcg_at_k


@dataclass
class RerankLists:
    """One row per (user, decision time): candidates, their features, labels and the context."""

    users: np.ndarray  # (L,) internal user indices
    cuts: list  # (L,) decision times
    contexts: list[str]
    items: np.ndarray  # (L, n) internal item ids, -1 pad (best first by the fused score)
    features: np.ndarray  # (L, n, F)
    click: np.ndarray  # (L, n) 0/1
    purchase: np.ndarray  # (L, n) 0/1
    feature_names: tuple[str, ...] = ()  # the columns of ``features`` (empty: the reranker's own order)

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, rows: np.ndarray) -> RerankLists:
        rows = np.asarray(rows, dtype=np.int64)
        return RerankLists(self.users[rows], [self.cuts[r] for r in rows], [self.contexts[r] for r in rows],
                           self.items[rows], self.features[rows], self.click[rows], self.purchase[rows],
                           self.feature_names)


def per_list_ndcg(ranked: np.ndarray, lists: RerankLists, k: int = 10) -> np.ndarray:
    """NDCG@k of ``ranked`` (L, ≥k) against each list's click labels (0 for a list without one)."""
    return np.array([ndcg_at_k(ranked[r], lists.items[r][lists.click[r] > 0], k) if (lists.click[r] > 0).any()
                     else 0.0 for r in range(len(lists))])


def list_ndcg(ranked: np.ndarray, lists: RerankLists, k: int = 10) -> float:
    """Mean NDCG@k of ``ranked`` (L, ≥k) against each list's click labels (lists with a label only)."""
    labelled = lists.click.sum(1) > 0
    return float(per_list_ndcg(ranked, lists, k)[labelled].mean()) if labelled.any() else 0.0
