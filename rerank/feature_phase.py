"""Phase one of the reranker's training (:mod:`.train`): the heads learn from the retrieval
features alone (full lists, full batch, up to ``feature_steps`` Adam steps), with the heads' text
inputs held at zero. They start as the
fused order itself (every weight zero but the wide one on the fused score). With few lists a free
MLP over the features overfits, so the number of steps is chosen by ``feature_folds``-fold
cross-validation on the training lists (:func:`cross_validated_steps`; step 0, the fused order,
included): every training list then has a say, where the early-stopping lists are a tenth as
many and a step picked as their best overstates itself. The model is then fitted on every
training list for that many steps from ``feature_restarts`` random starts of the feature MLP, and
the early-stopping lists choose among those starts and the fused order itself.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .config import RerankTrainConfig
from .lists import RerankLists, list_ndcg, per_list_ndcg

log = logging.getLogger(__name__)


class PhaseOne(NamedTuple):
    """What phase one did: its last training loss, the step it kept (0: the fused order), and, where
    cross-validation chose the steps, its record (folds, steps chosen, their NDCG@10 on the folds
    and the fused order's)."""

    loss: float
    step: int
    folds: dict | None = None


def list_loss(logit: torch.Tensor, label: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """One head's loss on padded lists (L, n) (``mask`` marks real candidates), as in :func:`recsys.rerank.train.pair_loss`.

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
                 held: RerankLists | None = None, every: int = 25) -> PhaseOne:
    """Phase one (see the module doc) on every candidate of ``rows``: the heads start as the fused
    order (all weights zero but the one on the normalised fused score) and take full-batch Adam
    steps. Without ``held`` lists: ``feature_steps`` of them. With them: the number of steps that
    cross-validation on ``rows`` chooses (a multiple of ``every``), from each of
    ``feature_restarts`` random starts, and the held lists keep the best start or the fused order;
    where ``feature_folds`` ≤ 1 or ``rows`` are too few to fold, the held lists choose the
    (start, step) themselves."""
    start = _feature_start(model, cfg)
    folds, last = None, cfg.feature_steps
    if held is None:
        checks: tuple[int, ...] = ()
    elif cfg.feature_folds > 1 and rows.size >= 2 * cfg.feature_folds:
        curve = cross_validated_steps(model, lists, rows, cfg, every)
        steps = every * int(np.argmax(curve))  # the first of the best
        checks, last = (steps,) if steps else (), steps
        folds = {"folds": cfg.feature_folds, "steps": steps, "fold_ndcg@10": round(float(curve.max()), 4),
                 "fold_fused_ndcg@10": round(float(curve[0]), 4)}
    else:
        checks = tuple(range(every, cfg.feature_steps + 1, every))
    x, mask, click, buy = _feature_tensors(model, lists, rows)

    def held_ndcg() -> float:
        return list_ndcg(rank_by_features(model, held), held)

    opt = start(cfg.seed)
    kept = (held_ndcg(), 0, copy.deepcopy(model.state_dict())) if held is not None else None
    loss = torch.zeros(())
    restarts = max(1, cfg.feature_restarts) if held is not None and last > 0 else 1  # no steps: nothing to restart
    for restart in range(restarts):
        opt = start(cfg.seed + restart) if restart else opt
        for step in range(1, last + 1):
            loss = _feature_step(model, opt, x, mask, click, buy, cfg.loss)
            if step in checks:
                ndcg = held_ndcg()
                if ndcg > kept[0]:
                    kept = (ndcg, step, copy.deepcopy(model.state_dict()))
    if kept is None:
        return PhaseOne(float(loss.item()), cfg.feature_steps)
    model.load_state_dict(kept[2])
    return PhaseOne(float(loss.item()), kept[1], folds)


def _feature_tensors(model, lists: RerankLists, rows: np.ndarray):
    dev = model.feat_mean.device
    return (torch.as_tensor(lists.features[rows], device=dev), torch.as_tensor(lists.items[rows] >= 0, device=dev),
            torch.as_tensor(lists.click[rows], device=dev), torch.as_tensor(lists.purchase[rows], device=dev))


def _feature_start(model, cfg: RerankTrainConfig) -> Callable[[int], torch.optim.Optimizer]:
    wide = model.text_dim + model.features[0].out_features + model.cfg.features.index("fused")

    def start(seed: int) -> torch.optim.Optimizer:
        torch.manual_seed(seed)
        with torch.no_grad():
            model.features[0].reset_parameters()
            for head in (model.click, model.purchase):
                head.weight.zero_()
                head.bias.zero_()
                head.weight[0, wide] = 1.0
        params = [*model.features.parameters(), *model.click.parameters(), *model.purchase.parameters()]
        return torch.optim.Adam(params, lr=cfg.feature_lr)
    return start


def _feature_step(model, opt, x, mask, click, buy, kind: str) -> torch.Tensor:
    logit = model.feature_logits(x)
    loss = list_loss(logit[0], click, mask, kind) + list_loss(logit[1], buy, mask, kind)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def cross_validated_steps(model, lists: RerankLists, rows: np.ndarray, cfg: RerankTrainConfig,
                          every: int = 25) -> np.ndarray:
    """Mean NDCG@10 of the training lists ``rows`` after 0, ``every``, 2·``every``, … up to
    ``feature_steps`` steps of phase one, each list scored by a fit on the other
    ``feature_folds`` − 1 folds (fold f's fit starts from seed ``cfg.seed`` + f). Leaves the model
    at the last fold's fit."""
    start = _feature_start(model, cfg)
    fold = np.random.default_rng(cfg.seed).permutation(rows.size) % cfg.feature_folds
    total = np.zeros(cfg.feature_steps // every + 1)
    for f in range(cfg.feature_folds):
        out = lists.subset(rows[fold == f])
        x, mask, click, buy = _feature_tensors(model, lists, rows[fold != f])
        opt = start(cfg.seed + f)
        total[0] += per_list_ndcg(rank_by_features(model, out), out).sum()
        for step in range(1, cfg.feature_steps + 1):
            _feature_step(model, opt, x, mask, click, buy, cfg.loss)
            if step % every == 0:
                total[step // every] += per_list_ndcg(rank_by_features(model, out), out).sum()
    return total / rows.size


def rank_by_features(model, lists: RerankLists) -> np.ndarray:
    """Each list's candidates ordered by the heads' feature part alone (phase one; see the module
    doc): (L, n) item ids, -1 pad."""
    dev = model.feat_mean.device
    with torch.no_grad():
        w = torch.tensor([model.cfg.click_weight, model.cfg.purchase_weight], device=dev)
        score = (model.feature_probs(torch.as_tensor(lists.features, device=dev)) @ w).cpu().numpy()
    score = np.where(lists.items >= 0, score, -np.inf)
    return np.take_along_axis(lists.items, np.argsort(-score, axis=1, kind="stable"), axis=1)
