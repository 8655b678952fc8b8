"""The leak-safe stage provider: for an evaluation stage, the history every model may see, the targets,
and an engine whose models never learnt those targets.

Stages (``valid`` chooses things: early stopping, fusion weights, the reranker; ``test`` reports):

======================  ===========================  =====================  ===================
holdout                 stage                        models may learn from  targets
======================  ===========================  =====================  ===================
loo/temporal/last_bask  valid                        train                  valid
loo/temporal/last_bask  test                         train + valid          test
none                    valid (each user's last      train minus the last   each user's last
                        event held out: loo)         events ("loo_train")   event
======================  ===========================  =====================  ===================

A split whose validation period is empty is chosen on as ``none`` is (each user's last training
event held out).

Every model records what it learnt from (:class:`recsys.sources.FitInfo`). :func:`stage_engine`
keeps a model whose parts lie inside the stage's, refits a source that learnt more (on the stage's
history: ALS refits in seconds), and reads the two-tower model trained for the stage from
``stages/<stage>/model`` where the served one learnt more (``--holdout none``). Fusion tuning, the
reranker's lists, ``evaluate`` and the benchmarks all take their engines from here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import polars as pl

from recsys import layout
from recsys.artifacts import Artifact
from recsys.catalog import item_groups
from recsys.errors import ArtifactError, ConfigError
from recsys.eval.protocols import EvalTask, task_from, with_indices
from recsys.idmap import IDMap
from recsys.prepare import load_prepared_tables
from recsys.retrieval.index import VectorIndex
from recsys.retrieval.recommender import FusionOptions, Recommender, load_sources, load_two_tower
from recsys.sources import Space
from recsys.splits import leave_one_out

log = logging.getLogger(__name__)
STAGES = ("valid", "test")


@dataclass
class StageData:
    """One evaluation stage: what models may learn from (``parts`` of the split), the events they may
    read (``history``) and the held-out events they are scored on (``targets``)."""

    name: str
    protocol: str
    parts: tuple[str, ...]
    history: pl.DataFrame
    targets: pl.DataFrame

    def task(self, users: IDMap, items: IDMap) -> EvalTask:
        return task_from(self.protocol, self.history, self.targets, users, items)

    def allows(self, parts: tuple[str, ...]) -> bool:
        """Whether a model that learnt from ``parts`` may serve this stage (it never saw the targets):
        every part lies inside the stage's (``loo_train``, the training events minus each user's last,
        lies inside ``train``)."""
        inside = set(self.parts) | ({"loo_train"} if "train" in self.parts else set())
        return set(parts) <= inside


def fit_parts(holdout: str, learns: str) -> tuple[str, ...]:
    """The split parts a built model learnt from: ``learns`` is "train" (the two-tower, early-stopped
    on validation) or "history" (every event before the test stage: ALS)."""
    if holdout == "none" or learns == "train":
        return ("train",)
    return ("train", "valid")


def stage_data(tables: dict, holdout: str, stage: str) -> StageData:
    """The stage ``stage`` of a split stored as ``tables`` (train, valid, test) with ``holdout``."""
    if stage not in STAGES:
        raise ConfigError(f"stage {stage!r}: use one of {', '.join(STAGES)}")
    if holdout == "none" and stage == "test":
        raise ArtifactError("built with --holdout none, so it holds no test split to score; build with "
                            "--holdout loo|temporal|last_basket|next_purchase to evaluate")
    if stage == "valid" and (holdout == "none" or tables["valid"].height == 0):
        # no validation period: each user's last training event is held out to choose things on
        loo = leave_one_out(tables["train"])
        return StageData("valid", "loo", ("loo_train",), loo.train, loo.valid)
    if stage == "valid":
        return StageData("valid", holdout, ("train",), tables["train"], tables["valid"])
    return StageData("test", holdout, ("train", "valid"), pl.concat([tables["train"], tables["valid"]]), tables["test"])


def artifact_stage(art: Artifact, stage: str) -> StageData:
    """:func:`stage_data` of an artifact's stored split."""
    t = load_prepared_tables(art)
    return stage_data(t, art.manifest["config"]["holdout"], stage)


def stage_engine(art: Artifact, stage: StageData, device: str | None = None, fusion: FusionOptions | None = None,
                 reranker=None, rerank_depth: int | None = None) -> Recommender:
    """An engine over ``art`` for ``stage``: history = the stage's history, and every model one that
    never learnt the stage's targets (kept, refitted, or the stage's own; see the module doc)."""
    model = load_two_tower(art, device or "cpu")
    index = item_vectors = None
    if not stage.allows(model.fit_info.parts):
        folder = layout.stage_dir(stage.name, layout.MODEL)
        if not art.has(layout.under(folder, layout.CONFIG)):
            raise ArtifactError(f"{art.path}: its two-tower model learnt from {'+'.join(model.fit_info.parts)}, which "
                                f"holds the {stage.name} stage's targets, and no model for that stage is kept "
                                f"({folder}); rebuild the artifact with this recsys")
        model = load_two_tower(art, device or "cpu", folder)
        item_vectors = model.item_vectors()
        index = VectorIndex(kind="flat", use_gpu=False).build(item_vectors)
    t = load_prepared_tables(art)
    space = Space(len(t["users"]), len(t["items"]), t["weights"], t["value_kind"], item_groups(t["catalog"], t["items"].ids))
    index = index or VectorIndex.load(art.file(layout.INDEX_FILE))
    if item_vectors is None:
        item_vectors = art.load_array(layout.ITEM_VECTORS)
    item_vectors = item_vectors / np.maximum(np.linalg.norm(item_vectors, axis=1, keepdims=True), 1e-12)
    sources = load_sources(art, space, model=model, index=index, item_vectors=item_vectors)
    events = None
    for name, src in list(sources.items()):
        if not stage.allows(src.fit_info.parts):
            if events is None:
                events = with_indices(stage.history, t["users"], t["items"])
            log.info("refitting %s on the %s stage's history (%d events)", name, stage.name, events.height)
            sources[name] = type(src)(space, src.config).fit(events, stage.parts)
    kwargs = {} if rerank_depth is None else {"rerank_depth": rerank_depth}
    return Recommender(art, device, history=stage.history, fusion=fusion, sources=sources, model=model, index=index,
                       item_vectors=item_vectors, reranker=reranker, **kwargs)
