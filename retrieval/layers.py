"""The user tower's transformer layers, written out so that dropout is cheap on a CPU.

:class:`EncoderLayer` computes exactly what ``nn.TransformerEncoderLayer(d, heads, 4·d, p,
batch_first=True, norm_first=True, activation="gelu")`` computes and keeps its parameter names,
so weights saved by either load into the other. The one difference is how dropout draws its
masks: torch's CPU ``bernoulli_`` draws one Mersenne-Twister number per element, which made
dropout about a sixth of a training step; :func:`dropout` reads 8 mask bytes out of every random
int64 instead (about 15× faster), so the keep probability is rounded to a multiple of 1/256.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout: each element kept with probability ``1 - p`` (``p`` rounded to 1/256) and
    scaled by ``1 / (1 - p)``; the identity outside training or at ``p = 0``.

    >>> x = torch.ones(4096)
    >>> y = dropout(x, 0.25, training=True)
    >>> [round(v, 4) for v in torch.unique(y).tolist()]
    [0.0, 1.3333]
    >>> abs(float((y > 0).float().mean()) - 0.75) < 0.03
    True
    >>> torch.equal(dropout(x, 0.25, training=False), x)
    True
    """
    if not training or p <= 0:
        return x
    if p >= 1:
        return torch.zeros_like(x)
    cut = round(p * 256)
    if cut == 0:
        return x
    n = x.numel()
    words = torch.randint(-2**63, 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=x.device)
    keep = words.view(torch.uint8)[:n].view(x.shape) >= cut
    return x * keep * (256.0 / (256 - cut))


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names (``in_proj_*``,
    ``out_proj``); ``blocked`` (B, L, L) is True where a query may not attend to a key."""

    def __init__(self, dim: int, n_heads: int, p: float):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"n_heads: {n_heads} does not divide dim {dim}; pick a divisor of dim")
        self.n_heads, self.p = n_heads, p
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)  # initialised in torch's order: out_proj, then in_proj
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        b, length, dim = x.shape
        head = dim // self.n_heads
        q, k, v = (t.view(b, length, self.n_heads, head).transpose(1, 2)
                   for t in F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(head)
        attn = torch.softmax(scores.masked_fill(blocked.unsqueeze(1), float("-inf")), dim=-1)
        out = dropout(attn, self.p, self.training) @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, length, dim))


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer: ``x + attn(norm1(x))``, then ``x + ffn(norm2(x))`` (GELU, 4·dim)."""

    def __init__(self, dim: int, n_heads: int, p: float):
        super().__init__()
        self.p = p
        self.self_attn = SelfAttention(dim, n_heads, p)
        self.linear1, self.linear2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        x = x + dropout(self.self_attn(self.norm1(x), blocked), self.p, self.training)
        hidden = dropout(F.gelu(self.linear1(self.norm2(x))), self.p, self.training)
        return x + dropout(self.linear2(hidden), self.p, self.training)


class Encoder(nn.Module):
    """A stack of :class:`EncoderLayer` with ``nn.TransformerEncoder``'s parameter names and start:
    every layer begins as a copy of the first, so a seed gives the weights it gave before."""

    def __init__(self, dim: int, n_heads: int, n_layers: int, p: float):
        super().__init__()
        first = EncoderLayer(dim, n_heads, p)
        self.layers = nn.ModuleList([first] + [copy.deepcopy(first) for _ in range(n_layers - 1)])

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, blocked)
        return x
