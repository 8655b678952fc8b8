"""Sequential item co-occurrence: how often an item followed the user's recent items in everyone's
histories. A reranker feature (and the ``cooccurrence`` peer of ``recsys.eval.baselines``).

- :func:`transitions`: items × items, entry (a, b) = Σ over users' consecutive events of 1/step
  where b came ``step`` ≤ ``window`` events after a.
- :func:`recent_items`: each row's last ``last_n`` items, newest first.
- :func:`scores_of`: for each row and candidate, Σ over the row's recent items of
  ``decay`` ** age · transitions[recent, candidate].
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp


def transitions(events: pl.DataFrame, n_items: int, window: int = 3) -> sp.csr_matrix:
    """The transition matrix of ``events`` (``user_idx``, ``item_idx``, ``timestamp``; see the module doc).

    >>> ev = pl.DataFrame({"user_idx": [0, 0, 0], "item_idx": [1, 2, 0], "timestamp": [1, 2, 3]})
    >>> transitions(ev, 3, window=2).toarray().tolist()   # 1 -> 2 (step 1), 1 -> 0 (step 2), 2 -> 0 (step 1)
    [[0.0, 0.0, 0.0], [0.5, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    h = events.sort(["user_idx", "timestamp"], maintain_order=True)
    u, i = h["user_idx"].to_numpy(), h["item_idx"].to_numpy()
    rows, cols, vals = [], [], []
    for step in range(1, window + 1):
        same = u[step:] == u[:-step]
        rows.append(i[:-step][same])
        cols.append(i[step:][same])
        vals.append(np.full(int(same.sum()), 1.0 / step))
    m = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_items, n_items))
    m.sum_duplicates()
    return m


def recent_items(events: pl.DataFrame, last_n: int = 5) -> dict[int, list[int]]:
    """``user_idx`` → that key's last ``last_n`` items, newest first (``events`` in time order)."""
    last = events.group_by("user_idx", maintain_order=True).agg(pl.col("item_idx").tail(last_n).reverse())
    return dict(zip(last["user_idx"].to_list(), last["item_idx"].to_list()))


def scores_of(trans: sp.csr_matrix, recent: list[list[int]], items: np.ndarray, decay: float = 0.6) -> np.ndarray:
    """(rows, n) co-occurrence score of ``items[r, j]`` (-1 pads score 0) given ``recent[r]``.

    >>> t = sp.csr_matrix(np.array([[0, 2.0, 0], [0, 0, 1.0], [0, 0, 0]]))
    >>> scores_of(t, [[1, 0], []], np.array([[2, 1], [2, -1]])).tolist()   # row 0: 1·t[1,2] + 0.6·t[0,2]; 0.6·t[0,1]
    [[1.0, 1.2], [0.0, 0.0]]
    """
    out = np.zeros(items.shape, dtype=np.float64)
    for r, its in enumerate(recent):
        if not its:
            continue
        w = decay ** np.arange(len(its))
        row = np.asarray(trans[its].T @ w).ravel()  # every item's score for this row
        ok = items[r] >= 0
        out[r, ok] = row[items[r, ok]]
    return out
