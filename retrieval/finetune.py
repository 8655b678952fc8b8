"""Fine-tuning the top layers of the text encoder inside the item tower (``--finetune-text-layers N``).

The lower layers stay frozen, so their output for every item is computed once (the hidden
states entering layer ``L - N``, kept in half precision) and only the top ``N`` layers run in
training, for the items of each batch. After training the item texts are encoded once more
through the tuned layers; those vectors replace the cached ones in the artifact, so serving
needs no text model. Meant for a GPU: on a CPU it works but each step re-encodes the catalogue
when the loss is a full softmax.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys.errors import ConfigError

log = logging.getLogger(__name__)
MAX_CACHE_BYTES = 8 << 30  # the frozen layers' output for every item must fit in memory


class FinetunedText(nn.Module):
    """Top ``n_layers`` of a BERT encoder over cached lower-layer states; mean-pooled, normalised."""

    def __init__(self, layers: Sequence[nn.Module], hidden: torch.Tensor, mask: torch.Tensor):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.register_buffer("hidden", hidden, persistent=False)  # (n_items, T, H) half precision
        self.register_buffer("mask", mask, persistent=False)  # (n_items, T) 0/1

    @classmethod
    def from_encoder(cls, encoder, texts: Sequence[str], n_layers: int, batch_size: int = 256) -> FinetunedText:
        """Cache the states entering the top ``n_layers`` of ``encoder`` (a :class:`TextEncoder`)."""
        if getattr(encoder, "precision", "fp32") != "fp32":
            raise ConfigError("--finetune-text-layers: the text encoder runs in int8, whose layers cannot be tuned; "
                              "give an fp32 one (TextEncoder(..., int8=False))")
        model = encoder.model
        layers = model.encoder.layer
        if not 1 <= n_layers <= len(layers):
            raise ConfigError(f"--finetune-text-layers {n_layers}: the text model has {len(layers)} layers; "
                              f"give 1..{len(layers)} (or 0 to keep it frozen)")
        t = encoder.max_length
        need = len(texts) * t * model.config.hidden_size * 2
        if need > MAX_CACHE_BYTES:
            raise ConfigError(f"--finetune-text-layers {n_layers}: caching {len(texts):,} items' states needs "
                              f"{need / 2**30:.1f} GiB (over {MAX_CACHE_BYTES / 2**30:.0f}); use 0 for this catalogue")
        hidden = torch.zeros(len(texts), t, model.config.hidden_size, dtype=torch.float16)
        mask = torch.zeros(len(texts), t, dtype=torch.float16)
        with torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                part = [x or "" for x in texts[s:s + batch_size]]
                b = encoder.tokenizer(part, padding="max_length", truncation=True, max_length=t,
                                      return_tensors="pt").to(encoder.device)
                states = model(**b, output_hidden_states=True).hidden_states[len(layers) - n_layers]
                hidden[s:s + len(part)] = states.to("cpu", torch.float16)
                # an empty text keeps an all-zero mask: its pooled vector is zero, as in TextEncoder
                mask[s:s + len(part)] = (b["attention_mask"].cpu() * torch.tensor([bool(x) for x in part])[:, None])
        return cls([copy.deepcopy(layer) for layer in layers[len(layers) - n_layers:]], hidden, mask)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """Text vectors (…, H) of item indices ``items`` (any shape)."""
        flat = items.reshape(-1)
        uniq, inverse = torch.unique(flat, return_inverse=True)
        h = self.hidden[uniq].to(self.layers[0].parameters().__next__().dtype)
        m = self.mask[uniq].float()
        keep = m.sum(1) > 0
        additive = ((1.0 - m.clamp(max=1)) * torch.finfo(h.dtype).min)[:, None, None, :].to(h.dtype)
        additive[~keep] = 0.0  # empty texts: attend anywhere (their output is masked out below)
        for layer in self.layers:
            h = layer(h, additive)
            h = h[0] if isinstance(h, tuple) else h
        w = m.unsqueeze(-1).to(h.dtype)
        pooled = (h * w).sum(1) / w.sum(1).clamp(min=1.0)
        out = F.normalize(pooled.float(), dim=-1) * keep.unsqueeze(-1)
        return out[inverse].reshape(*items.shape, -1)

    @torch.inference_mode()
    def encode_all(self, batch_size: int = 1024) -> np.ndarray:
        """Every item's tuned text vector, (n_items, H) float32."""
        n = self.hidden.shape[0]
        device = self.hidden.device
        return np.concatenate([self.forward(torch.arange(s, min(s + batch_size, n), device=device)).cpu().numpy()
                               for s in range(0, n, batch_size)]) if n else np.zeros((0, self.hidden.shape[-1]), np.float32)
