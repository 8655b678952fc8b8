"""Fine-tuning the cross-encoder on click/purchase labels, with early stopping on NDCG@10.

Each step takes a few training lists; from each, every labelled candidate and ``negatives`` hard
negatives (unlabelled candidates of the same list) become pairs. Loss, per head:

- ``pointwise``: binary cross-entropy of P(click) on the click labels and of P(purchase) on the
  purchase labels;
- ``listwise``: per list, softmax cross-entropy of the head's logits, averaged over the list's
  positives (lists with no positive for a head add nothing to it).

Two phases. First the heads learn from the retrieval features alone (full lists, full batch,
up to ``feature_steps`` Adam steps), with the heads' text inputs held at zero. They start as the
fused order itself (every weight zero but the wide one on the fused score), and the step kept is
the one that ranks the early-stopping lists best, step 0 included, over ``feature_restarts``
random starts of the feature MLP: with few lists a free MLP over the features overfits, and which
start does best depends on its seed, so the held-out lists choose, and the fused order itself
stays a choice. Then, for ``epochs``, BERT and the heads' text columns learn a correction from the
text while the feature part stays frozen (fine-tuned jointly, the text's gradients pull the
feature part away from what phase one found). The feature-only start counts as epoch 0. Negatives
are drawn from the top ``valid_depth`` of each list, the candidates that reranking reorders.
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
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from recsys.device import autocast
from recsys.errors import ConfigError
from recsys.eval.metrics import ndcg_at_k, paired_bootstrap

from .lists import RerankLists
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
    loss: str = "listwise"  # against pointwise: benchmarks/rerank_loss.py
    valid_depth: int = 30
    feature_steps: int = 300
    feature_lr: float = 1e-2
    feature_restarts: int = 3  # phase one's random starts (the held-out lists pick among them)
    keep_text: bool = False  # keep phase two's best epoch even where phase one ranks the held-out lists better
    max_train_seconds: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"reranker loss {self.loss!r}: use one of {', '.join(LOSSES)}")

    def to_dict(self) -> dict:
        return asdict(self)


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


def list_loss(logit: torch.Tensor, label: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """One head's loss on padded lists (L, n) (``mask`` marks real candidates), as in :func:`pair_loss`.

    >>> m = torch.tensor([[True, True, False]])
    >>> round(list_loss(torch.zeros(1, 3), torch.tensor([[1.0, 0.0, 0.0]]), m, "listwise").item(), 4)  # -log(1/2)
    0.6931
    >>> round(list_loss(torch.zeros(1, 3), torch.tensor([[1.0, 0.0, 0.0]]), m, "pointwise").item(), 4)  # -log(sigmoid(0))
    0.6931
    """
    if kind == "pointwise":
        return F.binary_cross_entropy_with_logits(logit[mask], label[mask])
    has = (label * mask).sum(1) > 0
    if not has.any():
        return logit.new_zeros(())
    logp = F.log_softmax(logit.masked_fill(~mask, float("-inf")), dim=1).masked_fill(~mask, 0.0)
    return (-(logp * label).sum(1)[has] / label.sum(1)[has]).mean()


def fit_features(model, lists: RerankLists, rows: np.ndarray, cfg: RerankTrainConfig,
                 held: RerankLists | None = None, every: int = 25) -> tuple[float, int]:
    """Phase one (see the module doc) on every candidate of ``rows``: the heads start as the fused
    order (all weights zero but the one on the normalised fused score) and take ``feature_steps``
    full-batch Adam steps, from ``feature_restarts`` random starts of the feature MLP; with
    ``held`` lists, the (start, step) — a multiple of ``every``, step 0 included — with the best
    NDCG@10 there is kept. Returns (last loss, step kept)."""
    wide = model.text_dim + model.features[0].out_features + model.cfg.features.index("fused")
    dev = model.feat_mean.device
    x = torch.as_tensor(lists.features[rows], device=dev)
    mask = torch.as_tensor(lists.items[rows] >= 0, device=dev)
    click = torch.as_tensor(lists.click[rows], device=dev)
    buy = torch.as_tensor(lists.purchase[rows], device=dev)

    def start(restart: int) -> torch.optim.Optimizer:
        torch.manual_seed(cfg.seed + restart)
        with torch.no_grad():
            model.features[0].reset_parameters()
            for head in (model.click, model.purchase):
                head.weight.zero_()
                head.bias.zero_()
                head.weight[0, wide] = 1.0
        params = [*model.features.parameters(), *model.click.parameters(), *model.purchase.parameters()]
        return torch.optim.Adam(params, lr=cfg.feature_lr)

    def held_ndcg() -> float:
        return list_ndcg(rank_by_features(model, held), held)

    opt = start(0)
    kept = (held_ndcg(), 0, copy.deepcopy(model.state_dict())) if held is not None else None
    loss = torch.zeros(())
    for restart in range(max(1, cfg.feature_restarts) if held is not None else 1):
        opt = start(restart) if restart else opt
        for step in range(1, cfg.feature_steps + 1):
            logit = model.feature_logits(x)
            loss = list_loss(logit[0], click, mask, cfg.loss) + list_loss(logit[1], buy, mask, cfg.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if kept is not None and step % every == 0:
                ndcg = held_ndcg()
                if ndcg > kept[0]:
                    kept = (ndcg, step, copy.deepcopy(model.state_dict()))
    if kept is None:
        return float(loss.item()), cfg.feature_steps
    model.load_state_dict(kept[2])
    return float(loss.item()), kept[1]


def rank_by_features(model, lists: RerankLists) -> np.ndarray:
    """Each list's candidates ordered by the heads' feature part alone (phase one; see the module
    doc): (L, n) item ids, -1 pad."""
    dev = model.feat_mean.device
    with torch.no_grad():
        w = torch.tensor([model.cfg.click_weight, model.cfg.purchase_weight], device=dev)
        score = (model.feature_probs(torch.as_tensor(lists.features, device=dev)) @ w).cpu().numpy()
    score = np.where(lists.items >= 0, score, -np.inf)
    return np.take_along_axis(lists.items, np.argsort(-score, axis=1, kind="stable"), axis=1)


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


def per_list_ndcg(ranked: np.ndarray, lists: RerankLists, k: int = 10) -> np.ndarray:
    """NDCG@k of ``ranked`` (L, ≥k) against each list's click labels (0 for a list without one)."""
    return np.array([ndcg_at_k(ranked[r], lists.items[r][lists.click[r] > 0], k) if (lists.click[r] > 0).any()
                     else 0.0 for r in range(len(lists))])


def list_ndcg(ranked: np.ndarray, lists: RerankLists, k: int = 10) -> float:
    """Mean NDCG@k of ``ranked`` (L, ≥k) against each list's click labels (lists with a label only)."""
    labelled = lists.click.sum(1) > 0
    return float(per_list_ndcg(ranked, lists, k)[labelled].mean()) if labelled.any() else 0.0


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
    feature_loss, step = fit_features(model, train, usable, cfg, held=valid)
    model.eval()
    labelled = valid.click.sum(1) > 0
    features_lists = per_list_ndcg(rerank_lists(reranker, valid, titles, cfg.valid_depth), valid)[labelled]
    ndcg = float(features_lists.mean()) if labelled.any() else 0.0
    history = [{"epoch": 0, "loss": round(feature_loss, 4), "valid_ndcg@10": round(ndcg, 4), "feature_steps": step,
                "seconds": round(time.perf_counter() - start, 1)}]
    if progress:
        progress(f"reranker features only ({step} steps kept): valid NDCG@10 {ndcg:.4f} (fused order: {before:.4f})")
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
