"""What a build does beyond the data (:class:`BuildOptions`), and how the reranker learns (:class:`RerankOptions`).

:func:`build_options` is the one place where a config file's ``[tower]`` / ``[train]`` sections and
the command line's flags become those objects (the command line wins); the CLI holds no rules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from recsys.config import dataclass_section
from recsys.defaults import DEFAULT_HOLDOUT, DEFAULT_TEXT_MODEL
from recsys.errors import ConfigError
from recsys.rerank.config import RerankTrainConfig
from recsys.rerank.model import RerankerConfig
from recsys.retrieval import sources as registry
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig

LISTS = ("validation", "training")


@dataclass
class RerankOptions:
    """How the cross-encoder is trained (see :mod:`recsys.pipeline.reranking`)."""

    model: str | None = None  # BERT-family folder or hub id (default all-MiniLM-L6-v2)
    config: RerankerConfig = field(default_factory=RerankerConfig)
    train: RerankTrainConfig = field(default_factory=RerankTrainConfig)
    lists: str = "validation"  # where training lists come from (see recsys.pipeline.reranking)
    held_out: float = 0.2  # share of the validation lists kept for early stopping
    cuts_per_user: int = 2  # lists="training": decision points per user
    max_train_lists: int = 4000
    max_valid_lists: int = 2000
    horizon_hours: float = 1.0
    include_seen: bool | None = None  # lists with the user's own items; None: as the split's protocol (last basket)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.lists not in LISTS:
            raise ConfigError(f"reranker lists {self.lists!r}: use one of {', '.join(LISTS)}")
        if not 0.0 < self.held_out < 1.0:
            raise ConfigError(f"reranker held_out {self.held_out}: give a share between 0 and 1 (e.g. 0.2)")

    def manifest(self) -> dict:
        return {"model": self.model or DEFAULT_TEXT_MODEL, "config": self.config.to_dict(), "train": self.train.to_dict()}


TEXT_PRECISIONS = ("auto", "int8", "fp32")


@dataclass
class BuildOptions:
    """What a build does beyond the data: model sizes, training, text model, sources, index, device.

    ``sources``: per registered candidate source, its config (absent: the source's defaults;
    None: leave the source out, e.g. ``{"als": None}`` for ``--no-als``).
    """

    holdout: str = DEFAULT_HOLDOUT
    tower: TowerConfig = field(default_factory=TowerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    text_model: str | None = None
    text_encoder: Any = None  # an already loaded encoder (tests pass a tiny one)
    finetune_text_layers: int = 0
    text_precision: str = "auto"  # "int8" (dynamic quantisation), "fp32", or "auto": int8 on a CPU, fp32 on a GPU
    index_kind: str = "auto"
    sources: dict[str, Any] = field(default_factory=dict)
    reranker: RerankOptions | None = None  # None: no reranker
    device: str | None = None
    seed: int = 0
    show_progress: bool = True
    warm_start: str | Path | None = None  # an earlier artifact to continue training from (see recsys.retrieval.warm)
    n_needs: int | None = None  # latent needs (k-means clusters of items); None: from the catalogue's size
    hash_user_ids: bool = False  # store user ids as HMAC-SHA256 keyed by $RECSYS_ID_KEY (recsys.privacy)
    # tower/train fields the user set ("tower.max_len", ...): kept as given; the others at their
    # defaults may be chosen from the data (recsys.pipeline.two_tower.shape_for_data)
    explicit: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.text_precision not in TEXT_PRECISIONS:
            raise ConfigError(f"text_precision {self.text_precision!r}: use one of {', '.join(TEXT_PRECISIONS)}")
        unknown = set(self.sources) - set(registry.names())
        if unknown:
            raise ConfigError(f"sources {sorted(unknown)}: unknown; the sources are {', '.join(registry.names())}")

    def source_config(self, name: str):
        """The config source ``name`` is fitted with (its defaults unless given), or None when left out."""
        if name in self.sources:
            return self.sources[name]
        cls = registry.get(name)
        return cls.Config() if cls.Config is not None else True

    def manifest(self) -> dict:
        sources = {}
        for name in registry.names():
            cfg = self.source_config(name)
            sources[name] = asdict(cfg) if is_dataclass(cfg) else cfg is not None
        return {"holdout": self.holdout, "tower": self.tower.to_dict(), "train": self.train.to_dict(),
                "text_model": self.text_model or DEFAULT_TEXT_MODEL, "finetune_text_layers": self.finetune_text_layers,
                "index_kind": self.index_kind, "n_needs": self.n_needs, "sources": sources,
                "reranker": None if self.reranker is None else self.reranker.manifest(),
                "device": self.device, "seed": self.seed}


def build_options(config: dict, config_path: str | Path | None, *, tower: dict | None = None,
                  train: dict | None = None, **options) -> BuildOptions:
    """BuildOptions from a config file's ``[tower]`` and ``[train]`` sections and the given values
    (``tower`` / ``train``: field overrides; None values are left out, so the file's stand)."""
    in_file = {"tower": dataclass_section(config, "tower", TowerConfig, config_path),
               "train": dataclass_section(config, "train", TrainConfig, config_path)}
    for section, cls in (("tower", TowerConfig), ("train", TrainConfig)):
        try:  # the file's settings alone first, so that an error in them names the file
            cls(**in_file[section])
        except ConfigError as e:
            raise ConfigError(f"{config_path}: {e}") from None
    t = {**in_file["tower"], **{k: v for k, v in (tower or {}).items() if v is not None}}
    r = {**in_file["train"], **{k: v for k, v in (train or {}).items() if v is not None}}
    explicit = frozenset([f"tower.{k}" for k in t] + [f"train.{k}" for k in r])
    return BuildOptions(tower=TowerConfig(**t), train=TrainConfig(**r), explicit=explicit, **options)
