"""BERT over [context | candidate] where context tokens do not attend to candidate tokens.

With that mask the context's hidden states (and so its keys and values in every layer) do not
depend on the candidate: they are computed once per user and reused for all candidates, which
then only run their own few tokens through the layers, attending to the cached context keys and
values plus their own. Training uses the same computation, so serving sees what training saw.

Works with BERT-family encoders (``embeddings`` + ``encoder.layer`` of BertLayer-like modules:
attention.self.query/key/value, attention.output, intermediate, output).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recsys.errors import ConfigError


class SplitBert(nn.Module):
    def __init__(self, bert: nn.Module):
        super().__init__()
        try:
            _ = bert.embeddings.word_embeddings, bert.encoder.layer[0].attention.self.query
        except AttributeError:
            raise ConfigError(f"reranker model {type(bert).__name__}: not a BERT-family encoder (needs embeddings and "
                              "encoder.layer with attention.self.query/key/value); use a BERT/MiniLM model") from None
        self.bert = bert

    @property
    def config(self):
        return self.bert.config

    def _embed(self, ids: torch.Tensor, positions: torch.Tensor, token_type: int) -> torch.Tensor:
        e = self.bert.embeddings
        x = e.word_embeddings(ids) + e.position_embeddings(positions)
        x = x + e.token_type_embeddings(torch.full_like(ids, token_type))
        return e.dropout(e.LayerNorm(x))

    def _layer(self, layer, h: torch.Tensor, keep: torch.Tensor, past: tuple | None = None):
        """One encoder layer for queries ``h`` (B, T, H); keys/values are ``past`` (cached, B, heads, Tc, d)
        followed by h's own. ``keep`` (B, Tc + T) bool marks real tokens. Returns (h', (k, v) of h)."""
        sa = layer.attention.self
        b, t, _ = h.shape
        heads = sa.num_attention_heads
        d = sa.attention_head_size

        def split(x):
            return x.view(b, t, heads, d).transpose(1, 2)

        q, k, v = split(sa.query(h)), split(sa.key(h)), split(sa.value(h))
        if past is not None and past[0].shape[0] == 1 and b > 1 and not self.training:
            a = _shared_context_attention(q, k, v, past, keep)  # serving: one user, many candidates
        else:
            kk, vv = (k, v) if past is None else (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2))
            bias = torch.zeros(keep.shape, dtype=q.dtype, device=q.device).masked_fill(~keep, torch.finfo(q.dtype).min)
            p = sa.dropout.p if self.training else 0.0
            a = F.scaled_dot_product_attention(q, kk, vv, attn_mask=bias[:, None, None, :], dropout_p=p)
        a = a.transpose(1, 2).reshape(b, t, heads * d)
        ao = layer.attention.output
        h1 = ao.LayerNorm(ao.dropout(ao.dense(a)) + h)
        inter = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(h1))
        h2 = layer.output.LayerNorm(layer.output.dropout(layer.output.dense(inter)) + h1)
        return h2, (k, v)

    def context(self, ids: torch.Tensor, mask: torch.Tensor) -> dict:
        """Run the contexts (B, Tc) alone; returns their per-layer keys/values, mask, lengths and states."""
        pos = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        h = self._embed(ids, pos, 0)
        keep = mask.bool()
        kv = []
        for layer in self.bert.encoder.layer:
            h, cache = self._layer(layer, h, keep)
            kv.append(cache)
        return {"kv": kv, "keep": keep, "lengths": mask.sum(1), "hidden": h}

    def candidates(self, ids: torch.Tensor, mask: torch.Tensor, ctx: dict, index: torch.Tensor) -> torch.Tensor:
        """Candidate tokens (N, Tk) of pairs whose context is row ``index`` (N,) of ``ctx``: (N, Tk, H)."""
        pos = ctx["lengths"][index].unsqueeze(1) + torch.arange(ids.shape[1], device=ids.device)
        h = self._embed(ids, pos, 1)
        keep = torch.cat([ctx["keep"][index], mask.bool()], dim=1)
        shared = not self.training and ids.shape[0] > 1 and bool((index == index[0]).all())
        for layer, (k, v) in zip(self.bert.encoder.layer, ctx["kv"]):
            # one context for every candidate (serving): its keys/values are read in place, not copied per row
            past = (k[index[:1]], v[index[:1]]) if shared else (k[index], v[index])
            h, _ = self._layer(layer, h, keep, past)
        return h


def _shared_context_attention(q, k, v, past, keep):
    """Attention of candidate queries ``q`` (N, heads, T, d) over one shared context's keys/values
    ``past`` (1, heads, Tc, d) and each candidate's own ``k``, ``v`` (N, heads, T, d); ``keep``
    (N, Tc + T). The same softmax as the general path, without copying the context N times: the
    context part is one (heads, N·T, Tc) product."""
    n, heads, t, d = q.shape
    tc = past[0].shape[2]
    q = q * d ** -0.5
    qh = q.transpose(0, 1).reshape(heads, n * t, d)
    s_ctx = torch.bmm(qh, past[0][0].transpose(1, 2)).view(heads, n, t, tc).transpose(0, 1)  # (N, heads, T, Tc)
    s_own = q @ k.transpose(2, 3)  # (N, heads, T, T)
    s = torch.cat([s_ctx, s_own], dim=-1).masked_fill(~keep[:, None, None, :], torch.finfo(q.dtype).min)
    p = torch.softmax(s, dim=-1)
    p_ctx = p[..., :tc].transpose(0, 1).reshape(heads, n * t, tc)
    out_ctx = torch.bmm(p_ctx, past[1][0]).view(heads, n, t, d).transpose(0, 1)
    return out_ctx + p[..., tc:] @ v
