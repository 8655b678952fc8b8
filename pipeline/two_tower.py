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

import numpy as np
import polars as pl
import torch

from recsys.errors import DataError
from recsys.eval.protocols import rank, score_rankings, with_indices
from recsys.retrieval.model import TwoTower
from recsys.retrieval.sequences import build_sequences, predicted_positions
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig, pretrain, train
from recsys.sources import FitInfo

from .provider import StageData

log = logging.getLogger(__name__)
MIN_LEARNERS = 20  # users with two events or more; below this the model has next to nothing to learn from
RARE_REPEATS = 0.1  # below this share of events that return to an item the user had, the data "never repeats"
SHORT_HISTORY = 20  # events the user tower reads where the data never repeats
SHORT_HISTORY_DROPOUT = 0.4  # the user tower's dropout there: overlapping windows already vary each event's context


def repeat_share(events: pl.DataFrame) -> float:
    """Share of events whose item the same user already had: 1 - distinct (user, item) pairs / events.

    >>> repeat_share(pl.DataFrame({"user_idx": [0, 0, 0, 1], "item_idx": [5, 5, 6, 5]}))
    0.25
    """
    if events.height == 0:
        return 0.0
    return 1.0 - events.select("user_idx", "item_idx").unique().height / events.height


def shape_for_data(tower: TowerConfig, cfg: TrainConfig, share: float, lengths: np.ndarray,
                   explicit: frozenset[str] = frozenset(), keep_tower: bool = False) -> tuple[TowerConfig, TrainConfig, dict]:
    """The user tower's history and its training windows, chosen from the data's ``share`` of repeats.

    Where users rarely return to an item (share < ``RARE_REPEATS``: ratings, one-off purchases),
    what comes next follows from the last few events: the tower reads ``SHORT_HISTORY`` events, in
    windows that start every quarter of that, so an event is predicted from up to 4 contexts of
    different lengths, and the tower's dropout is ``SHORT_HISTORY_DROPOUT`` (those contexts already
    vary what each event is read with). The most epochs shrink so that training predicts no more
    positions than the unshaped setting would (counted from ``lengths``, the users' training
    events): a quarter where histories are long, hardly fewer where they are shorter than a window.
    Where users come back to their items, the longer default history holds them. A field named in
    ``explicit`` ("tower.max_len", "tower.dropout", "train.window_stride", "train.epochs") or set
    away from its default is kept as given; so are the tower's ``max_len`` and ``dropout`` with
    ``keep_tower`` (a warm start continues the towers it was given).

    >>> long = np.full(10, 101)  # 100 positions a user at 50 / 50; 370 at 20 / 5: 40 * 100 / 370 -> 10 epochs
    >>> t, c, why = shape_for_data(TowerConfig(), TrainConfig(), 0.0, long)
    >>> (t.max_len, t.dropout, c.window_stride, c.epochs)
    (20, 0.4, 5, 10)
    >>> t, c, why = shape_for_data(TowerConfig(), TrainConfig(), 0.3, long)
    >>> (t.max_len, c.window_stride, c.epochs)
    (50, None, 40)
    >>> t, c, why = shape_for_data(TowerConfig(), TrainConfig(), 0.0, np.full(10, 11))  # 40 * 10 / 15
    >>> (t.max_len, c.window_stride, c.epochs)
    (20, 5, 26)
    """
    why = {"repeat_share": round(share, 4), "rule": f"repeat share {'<' if share < RARE_REPEATS else '>='} {RARE_REPEATS}"}
    if share >= RARE_REPEATS:
        return tower, cfg, {**why, "shaped": []}

    def free(section: str, name: str, value, default) -> bool:
        return f"{section}.{name}" not in explicit and value == default

    before = predicted_positions(lengths, tower.max_len, cfg.window_stride or tower.max_len)
    shaped = []
    if not keep_tower and free("tower", "max_len", tower.max_len, TowerConfig.max_len):
        tower, shaped = replace(tower, max_len=SHORT_HISTORY), shaped + ["max_len"]
    if not keep_tower and free("tower", "dropout", tower.dropout, TowerConfig.dropout):
        tower, shaped = replace(tower, dropout=SHORT_HISTORY_DROPOUT), shaped + ["dropout"]
    stride = cfg.window_stride
    if free("train", "window_stride", cfg.window_stride, TrainConfig.window_stride):
        stride, shaped = max(1, tower.max_len // 4), shaped + ["window_stride"]
    epochs, after = cfg.epochs, predicted_positions(lengths, tower.max_len, stride or tower.max_len)
    if free("train", "epochs", cfg.epochs, TrainConfig.epochs) and after > 0:
        epochs, shaped = max(1, cfg.epochs * before // after), shaped + ["epochs"]
    return tower, replace(cfg, window_stride=stride, epochs=epochs), {**why, "shaped": shaped}


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
