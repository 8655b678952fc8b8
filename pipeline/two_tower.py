"""The two-tower stage's training: pre-training, then supervised training early-stopped on the
validation stage's Recall@k (:mod:`recsys.retrieval.train` holds the loops themselves).

With ``holdout="none"`` the validation stage holds out each user's last event only to choose the
number of epochs; that model is kept for the validation stage's choices (``stages/valid/model``),
and the served model is trained again on every event for that many epochs.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import replace

import torch

from recsys.errors import DataError
from recsys.eval.protocols import rank, score_rankings, with_indices
from recsys.retrieval.model import TwoTower
from recsys.retrieval.sequences import build_sequences
from recsys.retrieval.train import TrainConfig, pretrain, train
from recsys.sources import FitInfo

from .provider import StageData

log = logging.getLogger(__name__)
MIN_LEARNERS = 20  # users with two events or more; below this the model has next to nothing to learn from


def fit_two_tower(model: TwoTower, stage: StageData, everything, users, items, weights, cfg: TrainConfig,
                  holdout: str, seed: int, warm: bool, say: Callable[[str], None]) -> tuple[dict, dict | None]:
    """Train ``model`` in place on the validation ``stage``'s history, early-stopped on its targets.

    Returns (the fit's record, the validation model's state when the served model is then trained
    again on ``everything``, else None). ``model.fit_info`` says what the served model learnt from.
    """
    n_users = len(users)
    task = stage.task(users, items)
    seq = build_sequences(task.history, n_users, weights, model.cfg.n_gap_buckets)
    learners = int((seq.lengths() >= 2).sum())
    if learners == 0:
        raise DataError(f"no user has two or more events before the validation targets ({int((seq.lengths() > 0).sum()):,} "
                        "users with one each): the two-tower model learns what follows what; give a longer history "
                        "per user (a longer period), or check that user_id is mapped to the user column")
    if learners < MIN_LEARNERS:
        log.warning("only %d users have two or more events to learn from: the two-tower model will be weak; give a "
                    "longer history per user if you can", learners)
    k = cfg.eval_k

    def validate(m: TwoTower) -> float:
        if task.users.size == 0:
            return 0.0
        ranked = rank(task, m.scorer(task.history, n_users, weights), k)
        return score_rankings(task, ranked, ks=(k,))[0][f"recall@{k}"]

    if cfg.mask_seen is None:  # decided by the split: mask seen items where they are never served
        cfg = replace(cfg, mask_seen=task.exclude_seen)
    initial = copy.deepcopy(model.state_dict())
    # a warm start continues from trained towers: no contrastive pre-training
    pre = pretrain(model, seq, cfg, say) if cfg.pretrain_epochs and not warm else []
    fit = train(model, seq, cfg, validate if task.users.size else None, say, valid_users=int(task.users.size))
    model.fit_info = FitInfo(stage.parts, task.history.height)
    valid_state = None
    if holdout == "none":
        valid_state = copy.deepcopy(model.state_dict())
        events = with_indices(everything, users, items)
        full_seq = build_sequences(events, n_users, weights, model.cfg.n_gap_buckets)
        again = TrainConfig(**{**cfg.to_dict(), "epochs": max(1, fit["best_epoch"]), "patience": 10**6})
        say(f"retraining on every event for {again.epochs} epochs")
        torch.manual_seed(seed)
        model.load_state_dict(initial)
        if cfg.pretrain_epochs and not warm:
            pretrain(model, full_seq, cfg, say)
        train(model, full_seq, again, None, say)
        model.fit_info = FitInfo(("train",), events.height)
    fit["pretrain"] = [round(x, 4) for x in pre]
    fit["mask_seen"] = cfg.mask_seen
    return fit, valid_state
