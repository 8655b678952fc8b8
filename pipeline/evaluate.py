"""``recsys evaluate``: an artifact's engine on its stored test stage, every list scored by
:mod:`recsys.eval.funnel`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from recsys import layout
from recsys.artifacts import Artifact
from recsys.defaults import RERANK_DEPTH
from recsys.device import resolve_device
from recsys.eval.funnel import Funnel, score_funnel
from recsys.eval.protocols import EvalTask
from recsys.retrieval.recommender import FusionOptions, Recommender

from .engine import load_reranker
from .provider import artifact_stage, stage_engine
from .stages import open_context, run


def engine_lists(rec: Recommender, task: EvalTask, batch_size: int = 1024) -> tuple[dict[str, np.ndarray], dict | None]:
    """Each source's list, the fused ("merged") list and, with a reranker, the "reranked" list for
    every task user, at the time of their target (:meth:`~recsys.eval.protocols.EvalTask.request_times`);
    plus the reranked candidates' head probabilities."""
    include_seen = not task.exclude_seen
    at = task.request_times()  # when each target happens: what a shop knows when the user opens the app
    lists: dict[str, list] = {}
    probs: list[dict] = []
    for s in range(0, task.users.size, batch_size):
        batch = rec.stored_batch(task.users[s:s + batch_size], at[s:s + batch_size])
        part = rec.source_lists(batch, include_seen)
        for name, (ids, _) in part.items():
            lists.setdefault(name, []).append(ids)
        merged = rec.fuse(part, include_seen, short=rec.short_rows(batch))
        lists.setdefault("merged", []).append(merged.items)
        if rec.reranker is not None:
            out = rec.rerank(batch, merged)
            lists.setdefault("reranked", []).append(out["items"])
            probs.append(out)
    heads = None
    if probs:
        heads = {k: np.concatenate([p[k] for p in probs]) for k in ("items", "click", "purchase")}
        heads.update(weights=rec.weights, value_kind=rec.value_kind)
    return {name: np.concatenate(v) for name, v in lists.items()}, heads


def evaluate_engine(rec: Recommender, task: EvalTask, ks: tuple[int, ...] = (10, 20, 100),
                    claim_k: int | None = None, n_resamples: int = 2000) -> Funnel:
    """The funnel of ``rec`` (an engine whose history is the task's) on ``task``."""
    lists, heads = engine_lists(rec, task)
    return score_funnel(task, lists, ks, n_resamples=n_resamples, claim_k=claim_k, heads=heads)


def evaluation_engine(art: Artifact, n: int, device: str | None = None, rerank: bool = True,
                rerank_depth: int = RERANK_DEPTH) -> tuple[Recommender, EvalTask]:
    """The test stage's engine (each source proposing ``n``) and task of an artifact; ``device``:
    as :func:`~recsys.device.resolve_device` reads it (None: a GPU when there is one)."""
    device = resolve_device(device)
    stage = artifact_stage(art, "test")
    reranker = load_reranker(art, device, always=True) if rerank else None
    rec = stage_engine(art, stage, device, FusionOptions(n_candidates=n, n_per_source=n), reranker, rerank_depth)
    return rec, stage.task(rec.users, rec.items)


def evaluate_artifact(art: Artifact, ks: tuple[int, ...] = (10, 20, 100), device: str | None = None,
                      rerank: bool = True, rerank_depth: int = RERANK_DEPTH, claim_k: int | None = None) -> Funnel:
    """The funnel of ``art`` on its stored test split (every source proposing max(ks) candidates)."""
    rec, task = evaluation_engine(art, max(ks), device, rerank, rerank_depth)
    return evaluate_engine(rec, task, ks, claim_k)


def store_evaluation(path: str | Path, funnel: Funnel, options: dict) -> None:
    """Keep ``funnel`` in the artifact at ``path`` (``evaluation.json``, rewritten atomically), with
    the options it was measured with and when: what the web inspector's model page shows."""
    ctx = open_context(path)
    ctx.writer.save_json(layout.EVALUATION, {**funnel.to_dict(), "options": options,
                                             "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    run(ctx, ["write"])
