"""Sampled softmax for next-item retrieval, with logQ correction and weighted positives.

For user b with positive item p_b and candidates j (the batch's positives, which double as
in-batch negatives, plus random negatives), the corrected logit is

    s_bj = <u_b, v_j> / T - log q_j

where q_j is the probability that j was sampled as a candidate (popular items show up as
in-batch negatives more often; without the correction the model learns to push them down).
A candidate with the same item id as the row's positive (an "accidental hit") is masked out.
The loss is the cross-entropy of the positive, weighted per row (e.g. by event type):

    L = Σ_b w_b · CE(s_b, p_b) / Σ_b w_b
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def sampled_softmax_loss(
    users: torch.Tensor,
    candidates: torch.Tensor,
    candidate_ids: torch.Tensor,
    log_q: torch.Tensor,
    weights: torch.Tensor | None = None,
    temperature: float = 0.05,
) -> torch.Tensor:
    """Loss for ``users`` (B, d) whose positives are the first B rows of ``candidates`` (C, d).

    ``candidate_ids`` (C,) are item indices, ``log_q`` (C,) the log sampling probability of
    each candidate, ``weights`` (B,) per-row weights (default 1).

    >>> u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> loss = sampled_softmax_loss(u, u.clone(), torch.tensor([0, 1]), torch.zeros(2), temperature=1.0)
    >>> round(loss.item(), 4) == round(math.log(1 + math.exp(-1)), 4)
    True
    """
    b = users.shape[0]
    if candidates.shape[0] < b:
        raise ValueError(f"candidates: {candidates.shape[0]} rows, need at least the {b} positives first")
    logits = users @ candidates.T / temperature - log_q.unsqueeze(0)
    pos_ids = candidate_ids[:b]
    hit = pos_ids.unsqueeze(1) == candidate_ids.unsqueeze(0)
    hit[torch.arange(b), torch.arange(b)] = False  # the positive itself stays
    logits = logits.masked_fill(hit, float("-inf"))
    ce = F.cross_entropy(logits.float(), torch.arange(b, device=users.device), reduction="none")
    if weights is None:
        return ce.mean()
    return (ce * weights).sum() / weights.sum().clamp(min=1e-12)


def candidate_log_q(pos_ids: torch.Tensor, neg_ids: torch.Tensor, item_freq: torch.Tensor, n_items: int) -> torch.Tensor:
    """log q for in-batch candidates (drawn with the training frequency: q = B · p_j) followed by
    uniform random negatives (q = N / n_items)."""
    p = item_freq[pos_ids] / item_freq.sum()
    in_batch = torch.log((pos_ids.numel() * p).clamp(min=1e-12))
    uniform = torch.full((neg_ids.numel(),), math.log(max(neg_ids.numel(), 1) / n_items), device=pos_ids.device)
    return torch.cat([in_batch, uniform])


def item_frequency(item_idx: np.ndarray, n_items: int) -> torch.Tensor:
    """Training frequency of each item as a positive (add-one smoothed)."""
    return torch.as_tensor(np.bincount(item_idx, minlength=n_items) + 1.0, dtype=torch.float32)
