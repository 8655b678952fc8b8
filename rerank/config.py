"""The reranker's training knobs (saved in the artifact's manifest): :mod:`.train` and
:mod:`.feature_phase` read them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from recsys.errors import ConfigError

LOSSES = ("pointwise", "listwise")


@dataclass(frozen=True)
class RerankTrainConfig:
    """How the reranker learns (:mod:`.train` says what each phase does with these)."""

    epochs: int = 2
    lr: float = 3e-5
    head_lr: float = 1e-3
    lists_per_step: int = 8
    negatives: int = 7
    loss: str = "listwise"  # against pointwise: benchmarks/rerank_loss.py
    valid_depth: int = 30
    feature_steps: int = 300
    feature_lr: float = 1e-2
    feature_restarts: int = 3  # phase one's random starts (the early-stopping lists pick among them)
    feature_folds: int = 5  # phase one's steps chosen by cross-validation on the training lists (≤ 1: by the held lists)
    keep_text: bool = False  # keep phase two's best epoch even where phase one ranks the held-out lists better
    max_train_seconds: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"reranker loss {self.loss!r}: use one of {', '.join(LOSSES)}")
        if self.feature_folds < 0:
            raise ConfigError(f"reranker feature_folds={self.feature_folds}: give 0 or 1 (the early-stopping lists "
                              "choose the feature steps) or 2 and more (cross-validation on the training lists)")

    def to_dict(self) -> dict:
        return asdict(self)
