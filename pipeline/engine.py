"""Loading the serving engine: the artifact's recommender, with its reranker handed in when it earns
its place (:func:`~recsys.pipeline.reranking.reranker_decision`), or always when asked."""

from __future__ import annotations

import logging
from pathlib import Path

from recsys import layout
from recsys.artifacts import Artifact
from recsys.device import resolve_device
from recsys.rerank.model import Reranker
from recsys.retrieval.recommender import FusionOptions, Recommender

from .reranking import reranker_decision

log = logging.getLogger(__name__)


def load_reranker(art: Artifact, device: str = "cpu", always: bool = False) -> Reranker | None:
    """The artifact's reranker, or None: when it has none, or (unless ``always``) when it did not earn
    its place on its held-out lists (:func:`~recsys.pipeline.reranking.reranker_decision`)."""
    if not art.has(layout.RERANKER_CONFIG):
        return None
    summary = art.load_json(layout.SUMMARY) if art.has(layout.SUMMARY) else None
    served, why = reranker_decision(summary)
    if not always and not served:
        log.warning("the reranker in %s is not served, %s: serving the fused list; `recsys evaluate` still reports it",
                    art.path, why)
        return None
    return Reranker.load(art.file(layout.RERANKER_CONFIG).parent, device)


def load(path: str | Path | Artifact, device: str | None = None, rerank: bool | str = True,
         fusion: FusionOptions | None = None, **kwargs) -> Recommender:
    """The engine over the artifact at ``path``: ``rerank`` True serves its reranker when it beat the
    fused order on validation, "always" whenever it has one, False never."""
    art = path if isinstance(path, Artifact) else Artifact.open(path)
    device = resolve_device(device)
    reranker = load_reranker(art, device, always=rerank == "always") if rerank else None
    return Recommender(art, device, fusion=fusion, reranker=reranker, **kwargs)
