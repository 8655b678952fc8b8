"""Fine-tuning the cross-encoder on click/purchase labels, with early stopping on NDCG@10.

Each step takes a few training lists; from each, every labelled candidate and ``negatives`` hard
negatives (unlabelled candidates of the same list) become pairs. Loss, per head:

- ``pointwise``: binary cross-entropy of P(click) on the click labels and of P(purchase) on the
  purchase labels;
- ``listwise``: per list, softmax cross-entropy of the head's logits, averaged over the list's
  positives (lists with no positive for a head add nothing to it).

Validation reranks the top ``valid_depth`` candidates of each validation list and measures NDCG@10
of the click labels; the best epoch's weights are kept.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from recsys.errors import ConfigError
from recsys.eval.metrics import ndcg_at_k

from .data import RerankLists
from .model import Reranker

log = logging.getLogger(__name__)
LOSSES = ("pointwise", "listwise")


@dataclass(frozen=True)
class RerankTrainConfig:
    epochs: int = 2
    lr: float = 3e-5
    head_lr: float = 1e-3
    lists_per_step: int = 8
    negatives: int = 7
    loss: str = "pointwise"
    valid_depth: int = 30
    max_train_seconds: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"reranker loss {self.loss!r}: use one of {', '.join(LOSSES)}")

    def to_dict(self) -> dict:
        return asdict(self)


def _pairs(lists: RerankLists, rows: np.ndarray, titles: list[str], negatives: int, rng: np.random.Generator):
    """(pairs, features, click, purchase, list id) of the chosen lists: positives + sampled negatives."""
    pairs, feats, click, buy, group = [], [], [], [], []
    for g, r in enumerate(rows):
        valid = np.flatnonzero(lists.items[r] >= 0)
        pos = valid[lists.click[r, valid] > 0]
        neg = valid[lists.click[r, valid] == 0]
        neg = rng.choice(neg, min(negatives, neg.size), replace=False) if neg.size else neg
        for j in np.concatenate([pos, neg]):
            pairs.append((lists.contexts[r], titles[lists.items[r, j]]))
            feats.append(lists.features[r, j])
            click.append(lists.click[r, j])
            buy.append(lists.purchase[r, j])
            group.append(g)
    return pairs, np.asarray(feats, np.float32), np.asarray(click, np.float32), np.asarray(buy, np.float32), np.asarray(group)


def pair_loss(click_logit: torch.Tensor, buy_logit: torch.Tensor, click: torch.Tensor, buy: torch.Tensor,
              group: torch.Tensor, kind: str) -> torch.Tensor:
    """The two heads' losses summed (see the module doc).

    >>> z = torch.zeros(2)
    >>> round(pair_loss(z, z, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([0, 0]), "pointwise").item(), 4)
    1.3863
    >>> round(pair_loss(z, z, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([0, 0]), "listwise").item(), 4)
    0.6931
    """
    if kind == "pointwise":
        return F.binary_cross_entropy_with_logits(click_logit, click) + F.binary_cross_entropy_with_logits(buy_logit, buy)
    total = click_logit.new_zeros(())
    for logit, label in ((click_logit, click), (buy_logit, buy)):
        terms = []
        for g in torch.unique(group):
            m = group == g
            if label[m].sum() > 0:
                logp = F.log_softmax(logit[m], dim=0)
                terms.append(-(logp * label[m]).sum() / label[m].sum())
        if terms:
            total = total + torch.stack(terms).mean()
    return total


def rerank_lists(reranker: Reranker, lists: RerankLists, titles: list[str], depth: int, batch_size: int = 256) -> np.ndarray:
    """Each list's top ``depth`` candidates reordered by the reranker: (L, depth) item ids, -1 pad."""
    out = np.full((len(lists), depth), -1, dtype=np.int64)
    pairs, feats, where = [], [], []
    for r in range(len(lists)):
        for j in np.flatnonzero(lists.items[r, :depth] >= 0):
            pairs.append((lists.contexts[r], titles[lists.items[r, j]]))
            feats.append(lists.features[r, j])
            where.append((r, j))
    if not pairs:
        return out
    scores = reranker.predict(pairs, np.asarray(feats), batch_size=batch_size)
    by_row: dict[int, list] = {}
    for (r, j), s in zip(where, scores):
        by_row.setdefault(r, []).append((-s, j))
    for r, cand in by_row.items():
        order = [j for _, j in sorted(cand)]
        out[r, :len(order)] = lists.items[r, order]
    return out


def list_ndcg(ranked: np.ndarray, lists: RerankLists, k: int = 10) -> float:
    """Mean NDCG@k of ``ranked`` (L, ≥k) against each list's click labels (lists with a label only)."""
    vals = []
    for r in range(len(lists)):
        targets = lists.items[r][lists.click[r] > 0]
        if targets.size:
            vals.append(ndcg_at_k(ranked[r], targets, k))
    return float(np.mean(vals)) if vals else 0.0


def train_reranker(reranker: Reranker, train: RerankLists, valid: RerankLists, titles: list[str],
                   cfg: RerankTrainConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Fine-tune ``reranker`` in place; returns the history and the best validation NDCG@10."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = reranker.model
    usable = np.flatnonzero(train.click.sum(1) > 0)
    if usable.size == 0:
        raise ConfigError("reranker: no training list holds a labelled candidate; the retrieval stage finds none "
                          "of what users did next (check the data, or build with --no-reranker)")
    feats = train.features[train.items >= 0]
    model.feat_mean.copy_(torch.as_tensor(feats.mean(0)))
    model.feat_std.copy_(torch.as_tensor(feats.std(0) + 1e-6))
    bert = [p for n, p in model.named_parameters() if n.startswith("encoder.bert.")]
    heads = [p for n, p in model.named_parameters() if not n.startswith("encoder.bert.")]
    opt = torch.optim.AdamW([{"params": bert, "lr": cfg.lr}, {"params": heads, "lr": cfg.head_lr}], weight_decay=0.01)
    before = list_ndcg(valid.items[:, :cfg.valid_depth], valid)
    history, best, best_state = [], -1.0, None
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(usable)
        total, steps = 0.0, 0
        for s in range(0, order.size, cfg.lists_per_step):
            pairs, f, click, buy, group = _pairs(train, order[s:s + cfg.lists_per_step], titles, cfg.negatives, rng)
            tokens = reranker.tokenize(pairs)
            dev = reranker.device
            cl, bl = model(tokens, torch.as_tensor(f, device=dev))
            loss = pair_loss(cl.float(), bl.float(), torch.as_tensor(click, device=dev), torch.as_tensor(buy, device=dev),
                             torch.as_tensor(group, device=dev), cfg.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += loss.item()
            steps += 1
            if cfg.max_train_seconds and time.perf_counter() - start > cfg.max_train_seconds:
                break
        ndcg = list_ndcg(rerank_lists(reranker, valid, titles, cfg.valid_depth), valid)
        history.append({"epoch": epoch + 1, "loss": round(total / max(steps, 1), 4), "valid_ndcg@10": round(ndcg, 4),
                        "seconds": round(time.perf_counter() - start, 1)})
        if progress:
            progress(f"reranker epoch {epoch + 1}: loss {history[-1]['loss']}, valid NDCG@10 {ndcg:.4f} "
                     f"(fused order: {before:.4f})")
        if ndcg > best:
            best, best_state = ndcg, copy.deepcopy(model.state_dict())
        if cfg.max_train_seconds and time.perf_counter() - start > cfg.max_train_seconds:
            log.warning("reranker training stopped at its time budget (%.0f s)", cfg.max_train_seconds)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"history": history, "best_valid_ndcg@10": round(best, 4), "fused_valid_ndcg@10": round(before, 4),
            "train_lists": int(usable.size), "valid_lists": len(valid)}
