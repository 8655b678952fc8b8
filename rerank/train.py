"""Fine-tuning the cross-encoder on click/purchase labels, with early stopping on NDCG@10.

Each step takes a few training lists; from each, every labelled candidate and ``negatives`` hard
negatives (unlabelled candidates of the same list) become pairs. Loss, per head:

- ``pointwise``: binary cross-entropy of P(click) on the click labels and of P(purchase) on the
  purchase labels;
- ``listwise``: per list, softmax cross-entropy of the head's logits, averaged over the list's
  positives (lists with no positive for a head add nothing to it).

Two phases. First the heads learn from the retrieval features alone, with the heads' text inputs
held at zero (:mod:`.feature_phase`). Then, for ``epochs``, BERT and the heads' text columns learn
a correction from the text while the feature part stays frozen (fine-tuned jointly, the text's
gradients pull the feature part away from what phase one found). The feature-only start counts as
epoch 0. Negatives are drawn from the top ``valid_depth`` of each list, the candidates that
reranking reorders.
(benchmarks/README.md has what each of these choices measured.)

Validation reranks the top ``valid_depth`` candidates of each validation list and measures NDCG@10
of the click labels. The text phase's best epoch replaces the feature phase only where it ranks
those lists better with a paired bootstrap interval above zero (:func:`text_earns`): a reranker
that reads text runs the encoder on everything it serves. With ``keep_text`` (and ``epochs`` > 0)
the text phase's best epoch is kept whatever, which is how benchmarks/rerank_text.py measures what
the text phase adds where the build would not keep it.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from recsys.device import autocast
from recsys.errors import ConfigError
from recsys.eval.metrics import paired_bootstrap

from .config import RerankTrainConfig
from .feature_phase import fit_features
from .lists import RerankLists, list_ndcg, per_list_ndcg
from .model import Reranker

log = logging.getLogger(__name__)


def _pairs(lists: RerankLists, rows: np.ndarray, titles: list[str], negatives: int, rng: np.random.Generator,
           depth: int = 30):
    """(pairs, features, click, purchase, list id) of the chosen lists: positives + sampled negatives."""
    pairs, feats, click, buy, group = [], [], [], [], []
    for g, r in enumerate(rows):
        valid = np.flatnonzero(lists.items[r] >= 0)
        pos = valid[lists.click[r, valid] > 0]
        neg = valid[lists.click[r, valid] == 0][:depth]  # hard negatives: the best-placed ones
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
    scores = reranker.predict(pairs, np.asarray(feats), batch_size=batch_size, feature_names=lists.feature_names or None)
    by_row: dict[int, list] = {}
    for (r, j), s in zip(where, scores):
        by_row.setdefault(r, []).append((-s, j))
    for r, cand in by_row.items():
        order = [j for _, j in sorted(cand)]
        out[r, :len(order)] = lists.items[r, order]
    return out


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
    if not train.purchase.any():  # nothing to learn P(purchase) from: say so, and rank by P(click)
        log.warning("reranker: no purchase (or rating of 4 or more) among the training lists' labels, so P(purchase) "
                    "is not learnt: it ranks by P(click) alone; map the log's buying event with --event-map NAME=purchase")
        model.cfg = reranker.cfg = model.cfg.click_only()
    feats = train.features[train.items >= 0]
    model.feat_mean.copy_(torch.as_tensor(feats.mean(0)))
    model.feat_std.copy_(torch.as_tensor(feats.std(0) + 1e-6))
    before = list_ndcg(valid.items[:, :cfg.valid_depth], valid)
    start = time.perf_counter()
    model.train()
    phase_one = fit_features(model, train, usable, cfg, held=valid)
    feature_loss, step = phase_one.loss, phase_one.step
    model.eval()
    labelled = valid.click.sum(1) > 0
    features_lists = per_list_ndcg(rerank_lists(reranker, valid, titles, cfg.valid_depth), valid)[labelled]
    ndcg = float(features_lists.mean()) if labelled.any() else 0.0
    history = [{"epoch": 0, "loss": round(feature_loss, 4), "valid_ndcg@10": round(ndcg, 4), "feature_steps": step,
                "seconds": round(time.perf_counter() - start, 1)}]
    if phase_one.folds:
        history[0]["cross_validation"] = phase_one.folds
    if progress:
        folds = phase_one.folds
        by = (f"; {folds['folds']}-fold cross-validation chose {folds['steps']} steps, NDCG@10 {folds['fold_ndcg@10']:.4f} "
              f"on the training lists against {folds['fold_fused_ndcg@10']:.4f} for the fused order") if folds else ""
        progress(f"reranker features only ({step} steps kept{by}): valid NDCG@10 {ndcg:.4f} (fused order: {before:.4f})")
    # phase two learns a correction from the text: the feature part stays as phase one left it
    text_cols = torch.zeros_like(model.click.weight)
    text_cols[:, :model.text_dim] = 1.0
    frozen = [*model.features.parameters(), model.click.bias, model.purchase.bias]
    for p in frozen:
        p.requires_grad_(False)
    hooks = [h.weight.register_hook(lambda g: g * text_cols) for h in (model.click, model.purchase)]
    bert = [p for n, p in model.named_parameters() if n.startswith("encoder.bert.")]
    opt = torch.optim.AdamW([{"params": bert, "lr": cfg.lr, "weight_decay": 0.01},
                             {"params": [model.click.weight, model.purchase.weight], "lr": cfg.head_lr,
                              "weight_decay": 0.0}])
    features_state, features_ndcg = copy.deepcopy(model.state_dict()), ndcg
    best, best_state, best_lists = float("-inf"), None, None  # the text phase's best epoch
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(usable)
        total, steps = 0.0, 0
        for s in range(0, order.size, cfg.lists_per_step):
            pairs, f, click, buy, group = _pairs(train, order[s:s + cfg.lists_per_step], titles, cfg.negatives, rng,
                                                 cfg.valid_depth)
            tokens = reranker.tokenize(pairs)
            dev = reranker.device
            with autocast(dev):  # bf16 on a GPU
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
        got = per_list_ndcg(rerank_lists(reranker, valid, titles, cfg.valid_depth), valid)[labelled]
        ndcg = float(got.mean()) if labelled.any() else 0.0
        history.append({"epoch": epoch + 1, "loss": round(total / max(steps, 1), 4), "valid_ndcg@10": round(ndcg, 4),
                        "seconds": round(time.perf_counter() - start, 1)})
        if progress:
            progress(f"reranker epoch {epoch + 1}: loss {history[-1]['loss']}, valid NDCG@10 {ndcg:.4f} "
                     f"(fused order: {before:.4f})")
        if ndcg > best:
            best, best_state, best_lists = ndcg, copy.deepcopy(model.state_dict()), got
        if cfg.max_train_seconds and time.perf_counter() - start > cfg.max_train_seconds:
            log.warning("reranker training stopped at its time budget (%.0f s)", cfg.max_train_seconds)
            break
    for hook in hooks:
        hook.remove()
    for p in frozen:
        p.requires_grad_(True)
    text = text_earns(features_lists, best_lists, cfg.keep_text)
    if not text["kept"]:
        best, best_state = features_ndcg, features_state
    model.load_state_dict(best_state)
    model.eval()
    return {"history": history, "best_valid_ndcg@10": round(best, 4), "fused_valid_ndcg@10": round(before, 4),
            "train_lists": int(usable.size), "valid_lists": len(valid), "heads": list(model.cfg.heads),
            "text_phase": text}


def text_earns(features: np.ndarray, text: np.ndarray | None, keep_text: bool = False) -> dict:
    """Whether the text phase's best epoch replaces the feature phase, from their NDCG@10 on each
    early-stopping list (``text`` None: no text epoch ran). A reranker that reads text runs the
    encoder on every candidate it serves (tens of milliseconds for 100 on a CPU, against well under
    one without), so the text must earn that: its lists must beat the feature phase's with a paired
    bootstrap interval above zero. ``keep_text`` keeps it whatever (benchmarks/rerank_text.py).

    >>> text_earns(np.array([0.5, 0.5, 0.0, 1.0]), np.array([1.0, 0.5, 0.0, 1.0]))["kept"]  # one list of four
    False
    >>> text_earns(np.zeros(40), np.full(40, 0.5))["kept"]
    True
    """
    if text is None or len(features) == 0:
        return {"kept": bool(keep_text and text is not None), "reason": "no text epoch or no labelled list"}
    d = paired_bootstrap(features, text)
    kept = bool(keep_text or d["low"] > 0)
    return {"kept": kept, "diff": round(d["diff"], 4), "interval": [round(d["low"], 4), round(d["high"], 4)],
            "lists": int(d["n"]), "reason": "kept_text" if keep_text else
            f"text phase {'beat' if d['low'] > 0 else 'did not beat'} the feature phase on the early-stopping lists"}
