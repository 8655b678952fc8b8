"""Training the reranker inside the engine, on lists whose candidates come from models that never
learnt what the lists' labels say, as at serving time.

By default (``lists="validation"``) those are the validation stage's lists: decision point = the
user's first validation event, history = their training events, labels = their validation events,
candidates from the validation stage's engine (:func:`~recsys.pipeline.provider.stage_engine`:
the two-tower trained on the training events, ALS refitted on them). 80% of the users' lists
train it; of the other 20%, half choose the training step (early stopping) and half decide whether
it is served (a step chosen on a set of lists overstates how it does on the next). No test event
is read.

``lists="training"`` samples decision points inside the training period instead (history and
labels from training events). Those candidates come from models that were fitted on the labels
themselves, so the retrieval features say more there than they will at serving time.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import replace

import numpy as np
import polars as pl

from recsys.artifacts import Artifact
from recsys.eval.protocols import keeps_seen
from recsys.rerank.lists import RerankLists, list_ndcg
from recsys.rerank.model import Reranker
from recsys.rerank.train import rerank_lists, train_reranker

from .lists import build_lists, sample_cuts, stage_lists, validation_cuts
from .options import RerankOptions
from .provider import StageData, artifact_stage, stage_engine

log = logging.getLogger(__name__)


def fit_reranker(rec, stage: StageData, opts: RerankOptions, include_seen: bool,
                 progress=None) -> tuple[Reranker, dict]:
    """Train a reranker on ``stage`` (the validation stage) with ``rec``, that stage's engine; its
    history is replaced on the way."""
    t0 = time.perf_counter()
    horizon = dt.timedelta(hours=opts.horizon_hours)
    rng = np.random.default_rng(opts.train.seed)
    ctx = opts.config.context_items
    every = validation_lists(rec, stage, include_seen, horizon, ctx, opts.max_valid_lists, rng)
    held = rng.random(len(every)) < opts.held_out
    if opts.lists == "validation":
        train, valid = every.subset(np.flatnonzero(~held)), every.subset(np.flatnonzero(held))
    else:
        valid = every
        rec.set_history(stage.history)
        cuts = sample_cuts(rec.history, opts.cuts_per_user, opts.train.seed)
        if cuts.height > opts.max_train_lists:
            cuts = cuts[np.sort(rng.choice(cuts.height, opts.max_train_lists, replace=False))]
        train = build_lists(rec, cuts, include_seen, horizon, context_items=ctx)
    lists_s = time.perf_counter() - t0
    if progress:
        progress(f"reranker lists ({opts.lists} period): {len(train)} training ({int((train.click.sum(1) > 0).sum())} "
                 f"with a label), {len(valid)} for early stopping, {lists_s:.0f} s")
    # half the held-out lists choose the training step, the other half whether the reranker is served:
    # the step that did best on a set of lists overstates how it does on the next ones
    order = rng.permutation(len(valid))
    stop, decide = valid.subset(np.sort(order[::2])), valid.subset(np.sort(order[1::2]))
    cfg = replace(opts.config, features=rec.feature_names())
    reranker = Reranker.from_pretrained(opts.model, cfg, opts.device)
    fit = train_reranker(reranker, train, stop, rec.titles, opts.train, progress)
    depth = opts.train.valid_depth
    fit.update({"decide_lists": len(decide),
                "decide_fused_ndcg@10": round(list_ndcg(decide.items[:, :depth], decide), 4),
                "decide_ndcg@10": round(list_ndcg(rerank_lists(reranker, decide, rec.titles, depth), decide), 4)})
    if progress:
        progress(f"reranker on {len(decide)} lists it never chose by: NDCG@10 {fit['decide_ndcg@10']} "
                 f"(fused order: {fit['decide_fused_ndcg@10']}): {'served' if reranker_helps({'reranker': fit}) else 'the fused list is served'}")
    fit.update(lists_seconds=round(lists_s, 1), include_seen=include_seen, lists=opts.lists,
               train_positive_rate=round(float(train.click[train.items >= 0].mean()), 4) if len(train) else 0.0)
    return reranker, fit


def validation_lists(rec, stage: StageData, include_seen: bool, horizon: dt.timedelta = dt.timedelta(hours=1),
                     context_items: int = 8, max_lists: int | None = None,
                     rng: np.random.Generator | None = None) -> RerankLists:
    """One list per user of the validation ``stage``, cut just before their first target, from
    ``rec``, that stage's engine (at most ``max_lists``, drawn with ``rng``); ``rec``'s history is
    replaced, and its popularity and transitions count only the stage's history, as that engine
    serves them."""
    rec.set_history(pl.concat([stage.history, stage.targets]))
    rec.count_from(stage.history)  # features as the stage's engine serves them: no label counted
    cuts = validation_cuts(rec, stage.targets)
    if max_lists is not None and cuts.height > max_lists:
        cuts = cuts[np.sort(rng.choice(cuts.height, max_lists, replace=False))]
    return build_lists(rec, cuts, include_seen, horizon, context_items=context_items, popularity_as_of_cut=False)


def artifact_lists(art: Artifact, include_seen: bool | None = None, test_limit: int | None = None,
                   horizon: dt.timedelta = dt.timedelta(hours=1)) -> tuple[RerankLists, RerankLists, bool, list[str]]:
    """The reranker's data of a built artifact: every validation list (as ``train-reranker`` builds them,
    before its held-out split), the test stage's lists, whether seen items are among the candidates
    (default: as the split's protocol keeps them), and the item titles."""
    stage = artifact_stage(art, "valid")
    seen = keeps_seen(stage.protocol) if include_seen is None else include_seen
    valid = validation_lists(stage_engine(art, stage), stage, seen, horizon)
    test_stage = artifact_stage(art, "test")
    rec = stage_engine(art, test_stage)
    return valid, stage_lists(rec, test_stage, seen, horizon, limit=test_limit), seen, rec.titles


MIN_DECIDE_LISTS = 20  # fewer held-out lists than this are no evidence either way: the fused list is served


def reranker_helps(summary: dict | None) -> bool:
    """Whether a stored reranker beat the fused order on the held-out lists that did not choose its
    training step, at least :data:`MIN_DECIDE_LISTS` of them (its build summary says; rerankers
    trained before that split: on all of them)."""
    fit = (summary or {}).get("reranker")
    if not fit:
        return True
    if fit.get("decide_ndcg@10") is not None:
        return fit.get("decide_lists", 0) >= MIN_DECIDE_LISTS and fit["decide_ndcg@10"] > fit["decide_fused_ndcg@10"]
    if fit.get("best_valid_ndcg@10") is None:
        return True
    return fit["best_valid_ndcg@10"] > fit["fused_valid_ndcg@10"]
