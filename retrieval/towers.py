"""The two towers.

- :class:`ItemTower`: the item's cached text vector through a trainable projection, plus a
  trainable ID embedding (initialised at zero, dropped out per item during training, so that
  the text alone gives a useful vector for items never seen in training).
- :class:`UserTower`: a causal transformer over the user's last L events; each input is the
  item's vector plus an event-type embedding and a time-gap bucket embedding (plus position);
  the user vector is the output at the newest event. Sequences are left-padded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys.config import check_range

from .layers import Encoder

_COUNT = (lambda v: v >= 1, "an integer of at least 1")


@dataclass(frozen=True)
class TowerConfig:
    """Sizes of the two towers (saved inside the checkpoint)."""

    dim: int = 64
    max_len: int = 50
    n_layers: int = 2
    n_heads: int = 2
    dropout: float = 0.5
    id_dropout: float = 0.25
    n_event_types: int = 8
    n_gap_buckets: int = 16
    use_text: bool = True  # False: item vectors from their ids alone (an ID-only tower, to measure what text adds)

    def __post_init__(self) -> None:
        values = asdict(self)
        check_range("tower", values, {
            "dim": _COUNT, "max_len": _COUNT, "n_layers": _COUNT, "n_heads": _COUNT, "n_event_types": _COUNT,
            "n_gap_buckets": _COUNT, "dropout": (lambda v: 0 <= v < 1, "a rate from 0 up to (not including) 1"),
            "id_dropout": (lambda v: 0 <= v <= 1, "a rate from 0 to 1")}, {"dim": "--dim", "max_len": "--max-len"})
        divides = f"a divisor of dim = {self.dim}, or a dim that {self.n_heads} divides"
        check_range("tower", values, {"n_heads": (lambda v: self.dim % v == 0, divides)})

    def to_dict(self) -> dict:
        return asdict(self)


def gap_buckets(seconds: np.ndarray, n_buckets: int = 16) -> np.ndarray:
    """Bucket 0 for the first event (no gap), then 1 + floor(log2(1 + gap in minutes)), capped.

    >>> gap_buckets(np.array([-1, 0, 59, 60, 3600, 10**9]), 16).tolist()
    [0, 1, 1, 2, 6, 15]
    """
    s = np.asarray(seconds, dtype=np.float64)
    b = 1 + np.floor(np.log2(1.0 + np.maximum(s, 0) / 60.0))
    return np.where(s < 0, 0, np.minimum(b, n_buckets - 1)).astype(np.int64)


class ItemTower(nn.Module):
    def __init__(self, cfg: TowerConfig, text_vectors: torch.Tensor):
        super().__init__()
        self.cfg = cfg
        n_items, text_dim = text_vectors.shape
        self.register_buffer("text", text_vectors.float(), persistent=False)
        # an ID-only tower has no text projection: no parameter left without a gradient (DDP needs that)
        self.proj = nn.Sequential(nn.Linear(text_dim, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, cfg.dim)) \
            if cfg.use_text else None
        self.ids = nn.Embedding(n_items, cfg.dim)
        if cfg.use_text:
            nn.init.zeros_(self.ids.weight)  # text carries the start; ids learn what text misses
        else:
            nn.init.normal_(self.ids.weight, std=0.02)
        self.finetune: nn.Module | None = None  # top text-encoder layers being tuned (see .finetune)

    @property
    def n_items(self) -> int:
        return self.ids.num_embeddings

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """Vectors (…, dim) of item indices ``items`` (any shape)."""
        idv = self.ids(items)
        if not self.cfg.use_text:
            return idv
        v = self.proj(self.text[items] if self.finetune is None else self.finetune(items).to(self.text.dtype))
        if self.training and self.cfg.id_dropout > 0:
            keep = (torch.rand(items.shape, device=items.device) >= self.cfg.id_dropout).unsqueeze(-1)
            idv = idv * keep
        return v + idv

    def freeze_text(self) -> None:
        """Replace the tuned text layers by the vectors they now give (serving needs no text model)."""
        if self.finetune is not None:
            self.text = torch.as_tensor(self.finetune.encode_all(), device=self.text.device)
            self.finetune = None

    def all_items(self, batch_size: int = 65536) -> torch.Tensor:
        """Every item's vector (n_items, dim), L2-normalised."""
        out = [self.forward(torch.arange(s, min(s + batch_size, self.n_items), device=self.ids.weight.device))
               for s in range(0, self.n_items, batch_size)]
        return F.normalize(torch.cat(out), dim=-1)


def attention_mask(valid: torch.Tensor) -> torch.Tensor:
    """(B, L, L) boolean mask, True = blocked: causal, and padding keys blocked except a position's
    own (so padded rows never become all-blocked, which would give NaN)."""
    length = valid.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
    allowed = causal.unsqueeze(0) & (valid.unsqueeze(1) | torch.eye(length, dtype=torch.bool, device=valid.device))
    return ~allowed


class UserTower(nn.Module):
    def __init__(self, cfg: TowerConfig):
        super().__init__()
        self.cfg = cfg
        self.event = nn.Embedding(cfg.n_event_types, cfg.dim)
        self.gap = nn.Embedding(cfg.n_gap_buckets, cfg.dim)
        self.pos = nn.Embedding(cfg.max_len, cfg.dim)
        self.encoder = Encoder(cfg.dim, cfg.n_heads, cfg.n_layers, cfg.dropout)
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, item_vecs: torch.Tensor, events: torch.Tensor, gaps: torch.Tensor,
                valid: torch.Tensor, all_positions: bool = False) -> torch.Tensor:
        """``item_vecs`` (B, L, dim), ``events``/``gaps`` (B, L) ints, ``valid`` (B, L) bool, left-padded.

        Returns the user vector (B, dim) at the newest event, or (B, L, dim) at every position.
        """
        length = item_vecs.shape[1]
        pos = torch.arange(length, device=item_vecs.device)
        x = item_vecs + self.event(events) + self.gap(gaps) + self.pos(pos + self.cfg.max_len - length)
        x = x * valid.unsqueeze(-1)
        h = self.norm(self.encoder(x, attention_mask(valid)))
        return h if all_positions else h[:, -1]
