"""The engine's pipeline: the build as stages, the leak-safe stage provider, and the operations on a
built artifact. The public API (what the CLI, the service and the benchmarks call):

- :func:`build` — every stage, written atomically into an artifact folder;
- :func:`load` — the serving engine (:class:`~recsys.retrieval.recommender.Recommender`) with its reranker;
- :func:`evaluate_artifact` — the funnel on the stored test split;
- :func:`retune`, :func:`train_reranker`, :func:`add_items`, :func:`forget_in_artifact` — one stage (or
  operation) run again on a built artifact, rewritten atomically;
- :func:`artifact_stage` / :func:`stage_engine` — a stage's history and targets, and an engine whose
  models never learnt them.
"""

from __future__ import annotations

from pathlib import Path

from recsys import layout
from recsys.artifacts import Artifact

from .add_items import add_items
from .engine import load, load_reranker
from .evaluate import evaluate_artifact, evaluate_engine, evaluation_engine, store_evaluation
from .forget import forget_in_artifact
from .lists import stage_lists
from .options import BuildOptions, RerankOptions, build_options
from .provider import StageData, artifact_stage, stage_data, stage_engine
from .reranking import artifact_lists, validation_lists
from .stages import STAGES, BuildContext, build, open_context, run

__all__ = ["STAGES", "BuildContext", "BuildOptions", "RerankOptions", "StageData", "add_items", "artifact_lists",
           "artifact_stage", "validation_lists",
           "build", "build_options", "evaluate_artifact", "evaluate_engine", "forget_in_artifact", "load",
           "load_reranker", "open_context", "retune", "run", "stage_data", "stage_engine", "stage_lists", "evaluation_engine",
           "store_evaluation", "train_reranker"]


def retune(path: str | Path, show_progress: bool = False) -> dict:
    """Choose the fusion weights of a built artifact again (rewritten atomically); returns them."""
    ctx = open_context(path, show_progress=show_progress)
    return run(ctx, ["fusion", "write"]).get("fusion", {})


def train_reranker(path: str | Path, opts: RerankOptions, progress=None) -> dict:
    """Train a reranker for the artifact at ``path`` and write it in (rewritten atomically)."""
    config = {**Artifact.open(path).manifest.get("config", {}), "reranker": opts.manifest()}
    ctx = open_context(path, BuildOptions(reranker=opts, device=opts.device), config=config, skip=layout.RERANKER)
    if progress is not None:
        ctx.timer.say = lambda message, indent="  ": progress(message)
    run(ctx, ["reranker", "write"])
    return ctx.summary["reranker"]
