"""Sampled softmax for next-item retrieval, with logQ correction and weighted positives.

For user b with positive item p_b and candidates j (positives of other rows of the batch, which
double as in-batch negatives, plus random negatives), the corrected logit is

    s_bj = <u_b, v_j> / T - log q_j

where q_j is the expected number of times j is drawn as a candidate (popular items show up as
in-batch negatives more often; without the correction the model learns to push them down). The
positive's own logit s_b+ is corrected the same way. Every candidate with the positive's item id
(its own in-batch copy, or an "accidental hit") is left out, so the positive counts once:

    L = Σ_b w_b · (logsumexp(s_b+, s_b1, …, s_bC) - s_b+) / Σ_b w_b

With a pool of all B positives as in-batch candidates this is the classic in-batch loss; a pool
drawn from them (``TrainConfig.n_batch_negatives``) keeps the (B × C) matrix bounded when a batch
holds many positions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

MASKED = -1e4  # a left-out candidate's logit; corrected logits are within about ±1/T + |log q|


def sampled_softmax_loss(
    users: torch.Tensor,
    positives: torch.Tensor,
    positive_ids: torch.Tensor,
    positive_log_q: torch.Tensor,
    candidates: torch.Tensor,
    candidate_ids: torch.Tensor,
    log_q: torch.Tensor,
    weights: torch.Tensor | None = None,
    temperature: float = 0.05,
) -> torch.Tensor:
    """Loss for ``users`` (B, d) with one positive each (``positives`` (B, d), their item ids and
    log q) against ``candidates`` (C, d) with ids ``candidate_ids`` and log q ``log_q`` (C,);
    ``weights`` (B,) per-row weights (default 1).

    >>> u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> ids, zero = torch.tensor([0, 1]), torch.zeros(2)
    >>> loss = sampled_softmax_loss(u, u, ids, zero, u, ids, zero, temperature=1.0)
    >>> round(loss.item(), 4) == round(math.log(1 + math.exp(-1)), 4)
    True
    """
    b = users.shape[0]
    if positives.shape[0] != b:
        raise ValueError(f"positives: {positives.shape[0]} rows for {b} users; give one positive per user row")
    u = users / temperature
    # one (B, 1 + C) matrix: column 0 the positive, then the candidates with log q added by the matmul
    # itself; hits blanked in place; cross-entropy's fused kernels do the rest
    logits = torch.addmm(torch.cat([log_q.new_zeros(1), -log_q]).unsqueeze(0).to(u.dtype), u,
                         torch.cat([candidates.new_zeros(1, candidates.shape[1]), candidates]).T)
    rows, cols = accidental_hits(positive_ids, candidate_ids)
    # the positives into column 0 and a large negative (not -inf: a row whose every candidate is a hit
    # keeps finite gradients) over the hits, in one in-place write
    positive = (u * positives).sum(-1) - positive_log_q
    logits.index_put_((torch.cat([torch.arange(b, device=u.device), rows]),
                       torch.cat([torch.zeros(b, dtype=torch.long, device=u.device), cols + 1])),
                      torch.cat([positive.to(logits.dtype), torch.full((rows.numel(),), MASKED, dtype=logits.dtype,
                                                                        device=u.device)]))
    ce = F.cross_entropy(logits.float(), torch.zeros(b, dtype=torch.long, device=u.device), reduction="none")
    if weights is None:
        return ce.mean()
    return (ce * weights).sum() / weights.sum().clamp(min=1e-12)


def accidental_hits(positive_ids: torch.Tensor, candidate_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, columns) where row b's positive id is candidate j: found by sorting the candidates,
    so the work grows with the number of hits, not with B × C.

    >>> rows, cols = accidental_hits(torch.tensor([0, 1, 0]), torch.tensor([0, 1, 0, 5, 1]))
    >>> sorted(zip(rows.tolist(), cols.tolist()))
    [(0, 0), (0, 2), (1, 1), (1, 4), (2, 0), (2, 2)]
    """
    order = torch.argsort(candidate_ids, stable=True)
    ordered = candidate_ids[order]
    start = torch.searchsorted(ordered, positive_ids, side="left")
    counts = torch.searchsorted(ordered, positive_ids, side="right") - start
    rows = torch.repeat_interleave(torch.arange(positive_ids.numel(), device=positive_ids.device), counts)
    first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    return rows, order[torch.repeat_interleave(start, counts) + torch.arange(rows.numel(), device=rows.device) - first]


def candidate_log_q(pos_ids: torch.Tensor, neg_ids: torch.Tensor, item_freq: torch.Tensor, n_items: int) -> torch.Tensor:
    """log q for in-batch candidates (a pool of B positives, drawn with the training frequency:
    q = B · p_j) followed by uniform random negatives (q = N / n_items)."""
    in_batch = in_batch_log_q(pos_ids, pos_ids.numel(), item_freq)
    uniform = torch.full((neg_ids.numel(),), math.log(max(neg_ids.numel(), 1) / n_items), device=pos_ids.device)
    return torch.cat([in_batch, uniform])


def in_batch_log_q(ids: torch.Tensor, pool_size: int, item_freq: torch.Tensor) -> torch.Tensor:
    """log q of ``ids`` in a pool of ``pool_size`` positives drawn with the training frequency p:
    the expected count q = pool_size · p_j."""
    return torch.log((pool_size * item_freq[ids] / item_freq.sum()).clamp(min=1e-12))


def item_frequency(item_idx: np.ndarray, n_items: int) -> torch.Tensor:
    """Training frequency of each item as a positive (add-one smoothed)."""
    return torch.as_tensor(np.bincount(item_idx, minlength=n_items) + 1.0, dtype=torch.float32)
