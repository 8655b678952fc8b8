"""Training the two-tower model: contrastive pre-training, then next-item retrieval.

1. Pre-training (self-supervised): two augmented views of each user's recent sequence (a random
   crop and a random drop of events) should give the same user vector: InfoNCE over the batch.
2. Supervised: every position of each window predicts the next item; the loss is a softmax over
   the whole catalogue when it is small (``full_softmax_below`` items), else a sampled softmax over
   in-batch and random negatives with logQ correction; each target is weighted by its event type.
   The learning rate decays on a cosine over ``epochs``; early stopping on validation Recall@k
   keeps the best epoch's weights.

Under ``torchrun`` both steps run inside DistributedDataParallel: each rank trains on its own
shard of the users (see :mod:`.distributed`), ``batch_size`` is split across the ranks (the same
config gives the same optimisation), and rank 0's validation score decides early stopping.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys.config import check_range
from recsys.device import autocast, flush_denormals
from recsys.errors import ConfigError

from . import distributed
from .losses import candidate_log_q, in_batch_log_q, item_frequency, sampled_softmax_loss
from .model import TwoTower, to_tensors
from .sequences import Sequences, left_pad, training_windows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Training knobs (saved in the artifact). Defaults suit catalogues up to ~1M items on a CPU."""

    epochs: int = 40
    pretrain_epochs: int = 2
    batch_size: int = 32  # across all ranks under torchrun
    lr: float = 5e-3
    weight_decay: float = 0.0
    temperature: float = 0.1
    n_negatives: int = 2048  # uniform random negatives per step (sampled softmax)
    n_batch_negatives: int = 2048  # in-batch negatives per step: the positives of at most this many positions
    full_softmax_below: int = 20_000
    # with the full softmax, leave items already in the user's window out of each position's
    # softmax (the target stays): where seen items are never recommended (leave-one-out, temporal)
    # the model then spends nothing on telling them apart; None: on unless the split keeps repeats
    mask_seen: bool | None = None
    patience: int = 6  # epochs clearly below the best validation score (see train) before stopping
    window_stride: int | None = None
    eval_k: int = 10
    text_lr: float = 5e-5  # for text-encoder layers being fine-tuned (--finetune-text-layers)
    max_train_seconds: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        count, positive = (lambda v: v >= 1, "an integer of at least 1"), (lambda v: v > 0, "a number above 0")
        check_range("train", asdict(self), {
            "epochs": count, "pretrain_epochs": (lambda v: v >= 0, "an integer of at least 0 (0: no pre-training)"),
            "batch_size": count, "lr": positive, "weight_decay": (lambda v: v >= 0, "a number of at least 0"),
            "temperature": positive, "n_negatives": (lambda v: v >= 0, "an integer of at least 0"),
            "n_batch_negatives": (lambda v: v >= 0, "an integer of at least 0"),
            "full_softmax_below": (lambda v: v >= 0, "an integer of at least 0"),
            "patience": (lambda v: v >= 0, "an integer of at least 0"), "eval_k": count, "text_lr": positive,
            "window_stride": (lambda v: v is None or v >= 1, "an integer of at least 1, or nothing (chosen from the data)"),
            "max_train_seconds": (lambda v: v is None or v > 0, "a number of seconds above 0, or nothing (no limit)"),
            "mask_seen": (lambda v: v is None or isinstance(v, bool), "true, false, or nothing (chosen from the split)"),
        }, {"epochs": "--epochs", "pretrain_epochs": "--pretrain-epochs", "batch_size": "--batch-size",
            "window_stride": "--window-stride"})

    def to_dict(self) -> dict:
        return asdict(self)


def diverged(loss: float, step: str, epoch: int, cfg: TrainConfig) -> None:
    """A one-line error when the two-tower ``step``'s loss is no longer a number: the weights have
    diverged (a learning rate far too high, most often) and every later epoch would be NaN.

    >>> diverged(float("nan"), "training", 0, TrainConfig(lr=75.0))
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: [train] lr = 75.0: the two-tower training loss became nan in epoch 1 (the weights diverged); lower lr (default 0.005)
    """
    if not math.isfinite(loss):
        raise ConfigError(f"[train] lr = {cfg.lr}: the two-tower {step} loss became {loss} in epoch {epoch + 1} (the "
                          f"weights diverged); lower lr (default {TrainConfig.lr})")


def _optimizer(model: TwoTower, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; fine-tuned text layers (if any) get their own, much smaller learning rate.

    The fused kernel (one pass over all parameters; the same update to rounding) where the device
    has one, else torch's default loop over the parameters.
    """
    text = [p for n, p in model.named_parameters() if n.startswith("items.finetune.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("items.finetune.")]
    groups = [{"params": rest, "lr": cfg.lr}] + ([{"params": text, "lr": cfg.text_lr}] if text else [])
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except RuntimeError as e:  # a device without the fused kernel
        log.debug("fused AdamW unavailable (%s); using the default", e)
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _augment(batch: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Crop a random 60-100% span or drop 20% of events (never all), then left-pad again."""
    valid = batch["valid"]
    keep = valid.copy()
    for r in range(valid.shape[0]):
        idx = np.flatnonzero(valid[r])
        if idx.size < 2:
            continue
        if rng.random() < 0.5:
            n = max(1, int(idx.size * rng.uniform(0.6, 1.0)))
            s = rng.integers(0, idx.size - n + 1)
            keep[r] = False
            keep[r, idx[s:s + n]] = True
        else:
            drop = idx[rng.random(idx.size) < 0.2]
            if drop.size < idx.size:
                keep[r, drop] = False
    out = {k: np.zeros_like(v) for k, v in batch.items()}
    length = valid.shape[1]
    for r in range(valid.shape[0]):
        idx = np.flatnonzero(keep[r])
        for k, v in batch.items():
            out[k][r, length - idx.size:] = v[r, idx]
    out["valid"] = np.zeros_like(valid)
    for r in range(valid.shape[0]):
        out["valid"][r, length - keep[r].sum():] = True
    return out


class ContrastiveStep(nn.Module):
    """InfoNCE between two augmented views of the same users (symmetric, temperature 0.1)."""

    def __init__(self, model: TwoTower):
        super().__init__()
        self.model = model

    def forward(self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
        za, zb = self.model.encode_history(a), self.model.encode_history(b)
        logits = za @ zb.T / 0.1
        target = torch.arange(za.shape[0], device=za.device)
        return (F.cross_entropy(logits.float(), target) + F.cross_entropy(logits.T.float(), target)) / 2


class NextItemStep(nn.Module):
    """Every position of a window predicts the next item: full softmax over the trained items, or
    a sampled softmax with logQ correction; each target weighted by its event type."""

    def __init__(self, model: TwoTower, seq: Sequences, cfg: TrainConfig):
        super().__init__()
        self.model, self.cfg = model, cfg
        n_items = model.items.n_items
        self.full = n_items <= cfg.full_softmax_below
        self.freq = item_frequency(seq.items, n_items).to(model.device)
        # items with no training interaction are never negatives: nothing says the user would not want them
        self.trained = torch.as_tensor(np.bincount(seq.items, minlength=n_items) > 0, device=model.device)
        self.trained_ids = torch.nonzero(self.trained).squeeze(1)
        # added to every position's logits inside the matrix product: -inf on the untrained items
        self.untrained_bias = None if bool(self.trained.all()) else \
            torch.zeros(n_items, device=model.device).masked_fill_(~self.trained, float("-inf"))

    def forward(self, inp: dict[str, torch.Tensor], pos: torch.Tensor, mask: torch.Tensor,
                weight: torch.Tensor) -> torch.Tensor:
        cfg, model = self.cfg, self.model
        h = model.encode_history(inp, all_positions=True)[mask]
        if self.full:
            # the temperature scales h (positions x dim), not the logits (positions x catalogue); the
            # masks go into the fresh logits in place (the bias inside the product): no extra pass over them
            scaled, items = h / cfg.temperature, model.items.all_items().T
            logits = scaled @ items if self.untrained_bias is None else torch.addmm(self.untrained_bias, scaled, items)
            if cfg.mask_seen:
                logits.index_put_(seen_pairs(inp, mask, pos),
                                  torch.tensor(float("-inf"), dtype=logits.dtype, device=h.device))
            ce = F.cross_entropy(logits.float(), pos, reduction="none")
            return (ce * weight).sum() / weight.sum()
        neg = self.trained_ids[torch.randint(0, self.trained_ids.numel(), (cfg.n_negatives,), device=h.device)]
        vecs = F.normalize(model.items(torch.cat([pos, neg])), dim=-1)
        # in-batch negatives: every position's positive, or a random pool of them in a large batch
        pool = torch.randperm(pos.numel(), device=h.device)[:cfg.n_batch_negatives] \
            if pos.numel() > cfg.n_batch_negatives else torch.arange(pos.numel(), device=h.device)
        cand = torch.cat([vecs[pool], vecs[pos.numel():]])
        return sampled_softmax_loss(h, vecs[:pos.numel()], pos, in_batch_log_q(pos, pool.numel(), self.freq),
                                    cand, torch.cat([pos[pool], neg]),
                                    candidate_log_q(pos[pool], neg, self.freq, self.trained_ids.numel()),
                                    weight, cfg.temperature)


def seen_pairs(inp: dict[str, torch.Tensor], mask: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, items): for each row of ``mask`` (a position predicting ``pos``), the items of its
    window up to that position, its own target excepted; index pairs, so masking them costs
    B·L² work rather than a (positions × catalogue) matrix."""
    b, length = inp["items"].shape
    row_of = torch.full((b, length), -1, dtype=torch.long, device=pos.device)
    row_of[mask] = torch.arange(pos.numel(), device=pos.device)
    earlier = torch.ones(length, length, dtype=torch.bool, device=pos.device).tril()
    bb, ii, jj = torch.nonzero(mask.unsqueeze(2) & inp["valid"].unsqueeze(1) & earlier, as_tuple=True)
    rows, items = row_of[bb, ii], inp["items"][bb, jj]
    keep = items != pos[rows]
    return rows[keep], items[keep]


def _local_batches(n: int, cfg: TrainConfig, device, smallest: int = 1) -> tuple[int, int]:
    """(per-rank batch size, batches per epoch that every rank can run); a last batch of fewer
    than ``smallest`` rows is dropped."""
    _, size = distributed.rank_and_size()
    batch = max(2, cfg.batch_size // size)
    return batch, distributed.common_steps(n // batch + (n % batch >= smallest), device)


def pretrain(model: TwoTower, seq: Sequences, cfg: TrainConfig, progress: Callable[[str], None] | None = None) -> list[float]:
    """Contrastive pre-training of both towers; returns the mean loss per epoch."""
    with flush_denormals():
        return _pretrain_epochs(model, seq, cfg, progress)


def _pretrain_epochs(model: TwoTower, seq: Sequences, cfg: TrainConfig, progress: Callable[[str], None] | None) -> list[float]:
    rank, size = distributed.rank_and_size()
    rng = np.random.default_rng(cfg.seed + 1 + rank)
    users = np.flatnonzero(seq.lengths() >= 2)
    users = users[users % size == rank]
    step = distributed.wrap(ContrastiveStep(model), str(model.device))
    opt = _optimizer(model, cfg)
    batch, n_batches = _local_batches(users.size, cfg, model.device, smallest=2)  # a contrastive batch needs 2
    losses = []
    model.train()
    for epoch in range(cfg.pretrain_epochs):
        total, n = 0.0, 0
        perm = rng.permutation(users)
        for b in range(n_batches):
            part = perm[b * batch:(b + 1) * batch]
            base = left_pad(seq, part, model.cfg.max_len)
            a = to_tensors(_augment(base, rng), model.device)
            b_ = to_tensors(_augment(base, rng), model.device)
            with autocast(model.device):
                loss = step(a, b_)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * part.size
            n += part.size
        losses.append(total / max(n, 1))
        diverged(losses[-1], "pre-training", epoch, cfg)
        if progress:
            progress(f"pretrain epoch {epoch + 1}: loss {losses[-1]:.4f}")
    return losses


def train(
    model: TwoTower,
    seq: Sequences,
    cfg: TrainConfig,
    validate: Callable[[TwoTower], float] | None = None,
    progress: Callable[[str], None] | None = None,
    valid_users: int = 0,
) -> dict:
    """Supervised next-item training with early stopping on ``validate(model)`` (higher is better).

    ``validate`` returns a share of ``valid_users`` users (a recall), whose noise is one standard
    error, sqrt(s(1 - s) / valid_users), at the best score s. Training stops after ``patience``
    epochs clearly below the best (more than that noise; a plateau within it goes on, up to
    ``epochs``), and the weights kept are those of the latest epoch within the noise of the best: a
    bump within the noise of a few hundred users neither ends training nor brings back a barely
    trained model.
    """
    with flush_denormals():
        return _train_epochs(model, seq, cfg, validate, progress, valid_users)


def within_noise(best: float, valid_users: int) -> float:
    """One standard error of a share ``best`` measured on ``valid_users`` users (0 without users).

    >>> round(within_noise(0.2, 400), 4)
    0.02
    """
    return math.sqrt(max(best, 0.0) * max(1.0 - best, 0.0) / valid_users) if valid_users > 0 else 0.0


def _train_epochs(model: TwoTower, seq: Sequences, cfg: TrainConfig, validate: Callable[[TwoTower], float] | None,
                  progress: Callable[[str], None] | None, valid_users: int) -> dict:
    rank, size = distributed.rank_and_size()
    torch.manual_seed(cfg.seed + rank)
    rng = np.random.default_rng(cfg.seed + rank)
    length = model.cfg.max_len
    win_users, win_ends = distributed.shard(*training_windows(seq, length, stride=cfg.window_stride), rank, size)
    step = NextItemStep(model, seq, cfg)
    ddp_step = distributed.wrap(step, str(model.device))
    opt = _optimizer(model, cfg)
    batch, n_batches = _local_batches(win_users.size, cfg, model.device)
    steps = cfg.epochs * max(1, n_batches)
    # cosine decay of the learning rate over the most epochs allowed (early stopping may end sooner)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)))
    # without validation the score is -loss (negative). One state is kept: the latest epoch within the
    # noise of the best so far; a new best is within its own noise, so it replaces anything earlier
    history, best, chosen, kept, bad = [], -math.inf, 0, None, 0
    judged_on = valid_users if validate else 0  # users behind each score (none: the training loss)
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(win_users.size)
        total, count = 0.0, 0.0
        for b in range(n_batches):
            sel = order[b * batch:(b + 1) * batch]
            w = left_pad(seq, win_users[sel], length + 1, win_ends[sel])
            inp = to_tensors({k: v[:, :-1] for k, v in w.items()}, model.device)
            target = torch.as_tensor(w["items"][:, 1:], device=model.device)
            mask = torch.as_tensor(w["valid"][:, 1:] & w["valid"][:, :-1], device=model.device)
            weight = torch.as_tensor(w["weights"][:, 1:], device=model.device)[mask]
            pos = target[mask]
            with autocast(model.device):
                loss = ddp_step(inp, pos, mask, weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item() * float(weight.sum())
            count += float(weight.sum())
        diverged(total, "training", epoch, cfg)
        score = (validate(model) if validate else -float(total / max(count, 1))) if rank == 0 else 0.0
        score = distributed.broadcast_float(score, model.device)
        history.append({"epoch": epoch + 1, "loss": total / max(count, 1), "valid": score,
                        "seconds": round(time.perf_counter() - start, 1)})
        if progress:
            progress(f"epoch {epoch + 1}: loss {history[-1]['loss']:.4f}, valid {score:.4f}")
        if score > best:
            best, bad = score, 0
        elif score < best - within_noise(best, judged_on):  # clearly worse; an epoch within the noise is no strike
            bad += 1
        if score >= best - within_noise(best, judged_on):
            chosen, kept = epoch + 1, copy.deepcopy(model.state_dict())
        if bad >= cfg.patience:
            break
        late = bool(cfg.max_train_seconds) and time.perf_counter() - start > cfg.max_train_seconds
        if distributed.broadcast_float(float(late), model.device):  # every rank stops together
            log.warning("training stopped at its time budget (%.0f s)", cfg.max_train_seconds)
            break
    if kept is not None:
        model.load_state_dict(kept)
    model.eval()
    return {"history": history, "best_valid": best, "best_epoch": chosen, "kept_valid": history[chosen - 1]["valid"]
            if chosen else None, "full_softmax": step.full}
