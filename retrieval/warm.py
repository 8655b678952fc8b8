"""``build-index --warm-start DIR``: continue training from an earlier artifact on newer data.

The daily refresh of a shop: yesterday's artifact is the starting point.

- **ID maps stay stable.** Old users and items keep their indices; ids first seen in the new data
  are appended (:meth:`IDMap.extend`). Items of the old catalogue missing from the new one stay,
  with their old text, so an old id never changes meaning.
- **Old vectors are the starting point.** Every weight of the old model is copied; the item-ID
  table grows by zero rows for new items (like a fresh table, whose rows start at zero), so a new
  item starts from its text alone.
- **Same text space.** The text model is the old one (a different ``--text-model`` is an error);
  a fitted ``char-ngram`` encoder is reloaded rather than refitted, and old text vectors are
  reused from the old artifact's cache.
- **Same tower sizes**, read from the old model. Contrastive pre-training is skipped: the
  towers are already trained.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch

from recsys import layout
from recsys.artifacts import Artifact
from recsys.defaults import is_default_text_model
from recsys.errors import ConfigError
from recsys.idmap import IDMap
from recsys.prepare import load_prepared_tables

from .charngram import CharNgramEncoder
from .model import TwoTower
from .towers import TowerConfig

log = logging.getLogger(__name__)


@dataclass
class WarmStart:
    """What a warm start takes from the earlier artifact."""

    path: Path
    users: IDMap
    items: IDMap
    catalog: pl.DataFrame
    tower: TowerConfig
    state: dict[str, torch.Tensor]
    text_model: str
    charngram: CharNgramEncoder | None
    fingerprint: str

    @classmethod
    def load(cls, path: str | Path) -> WarmStart:
        from safetensors.torch import load_file

        art = Artifact.open(path)  # verifies checksums: a damaged artifact is refused here
        if not art.has(layout.MODEL_WEIGHTS):
            raise ConfigError(f"--warm-start {path}: no trained model in that artifact ({layout.MODEL_WEIGHTS}); "
                              "point it at a folder written by `recsys build-index`")
        t = load_prepared_tables(art)
        tower = TowerConfig(**json.loads(art.file(layout.MODEL_CONFIG).read_text()))
        enc = CharNgramEncoder.load(art) if art.has(layout.under(layout.CHARNGRAM, layout.CONFIG)) else None
        return cls(Path(path), t["users"], t["items"], t["catalog"], tower,
                   load_file(str(art.file(layout.MODEL_WEIGHTS))),
                   art.manifest.get("config", {}).get("text_model", ""), enc,
                   art.manifest.get("data", {}).get("fingerprint", ""))

    def check_text_model(self, requested: str | None) -> None:
        if requested and requested != self.text_model and not (is_default_text_model(requested)
                                                                and is_default_text_model(self.text_model)):
            raise ConfigError(f"--text-model {requested}: the warm-start artifact {self.path} was trained on "
                              f"{self.text_model} vectors; drop --text-model (or build without --warm-start)")

    def manifest(self) -> dict:
        return {"path": str(self.path), "data_fingerprint": self.fingerprint, "users": len(self.users),
                "items": len(self.items)}


def transfer(model: TwoTower, state: dict[str, torch.Tensor]) -> int:
    """Copy ``state`` into ``model``; tables that grew (item and event-type embeddings) keep their
    old rows and start new ones at the model's own initialisation. Returns the tensors copied."""
    own = model.state_dict()
    copied = 0
    with torch.no_grad():
        for name, old in state.items():
            if name not in own:
                continue
            new = own[name]
            if new.shape == old.shape:
                new.copy_(old)
            elif new.ndim == old.ndim and new.shape[1:] == old.shape[1:] and new.shape[0] >= old.shape[0]:
                new[:old.shape[0]].copy_(old)
            else:
                raise ConfigError(f"--warm-start: weight {name} has shape {tuple(old.shape)} in the old model and "
                                  f"{tuple(new.shape)} now; warm starts keep the old tower sizes")
            copied += 1
    return copied
