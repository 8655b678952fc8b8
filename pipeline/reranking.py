"""Training the reranker inside the engine, on lists whose candidates come from models that never
learnt what the lists' labels say, as at serving time.

By default (``lists="validation"``) those are the validation stage's lists: decision point = the
user's first validation event, history = their training events, labels = their validation events,
candidates from the validation stage's engine (:func:`~recsys.pipeline.provider.stage_engine`:
the two-tower trained on the training events, ALS refitted on them). 80% of the users' lists
train it; of the other 20%, half choose the training step (early stopping) and half decide whether
it is served (a step chosen on a set of lists overstates how it does on the next; see
:func:`reranker_decision`). No test event is read.

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
from recsys.eval.metrics import paired_bootstrap
from recsys.eval.protocols import keeps_seen
from recsys.rerank.lists import RerankLists, per_list_ndcg
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
    fit.update(decide_fit(reranker, decide, rec.titles, opts.train.valid_depth))
    fit["learnt"] = fit["history"][0].get("feature_steps", 0) > 0 or bool(fit["text_phase"].get("kept"))
    if progress:
        served, why = reranker_decision({"reranker": fit})
        progress(f"reranker on {len(decide)} lists it never chose by: NDCG@10 {fit['decide_ndcg@10']} "
                 f"(fused order: {fit['decide_fused_ndcg@10']}): {'served' if served else 'the fused list is served'}, {why}")
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


def decide_fit(reranker: Reranker, decide: RerankLists, titles: list[str], depth: int) -> dict:
    """The reranker against the fused order on the ``decide`` lists (those that chose nothing): their
    count, both NDCG@10 (lists with a label) and the paired bootstrap interval of the difference."""
    labelled = decide.click.sum(1) > 0
    fused = per_list_ndcg(decide.items[:, :depth], decide)[labelled]
    ranked = per_list_ndcg(rerank_lists(reranker, decide, titles, depth), decide)[labelled]
    out = {"decide_lists": len(decide), "decide_fused_ndcg@10": round(float(fused.mean()), 4) if fused.size else 0.0,
           "decide_ndcg@10": round(float(ranked.mean()), 4) if ranked.size else 0.0, "decide_interval": None}
    if fused.size:
        b = paired_bootstrap(fused, ranked)
        out["decide_interval"] = [round(b["low"], 4), round(b["high"], 4)]
    return out


def reranker_decision(summary: dict | None) -> tuple[bool, str]:
    """Whether a stored reranker is served, and why (its build summary says).

    A reranker that learnt something (cross-validation kept feature steps, or its text phase earned
    its place), and so already beat the fused order on the training lists' folds and on the
    early-stopping lists, is served unless the held-out lists that chose nothing, at least
    :data:`MIN_DECIDE_LISTS` of them, show it behind the fused order (a paired bootstrap interval
    below zero): a third win in a row, on ~100 lists whose interval is many times wider than the
    gains at stake, is close to a coin toss for a reranker that helps. One that kept the fused order
    is not served (it would rank the same, slower). Rerankers built before that record: served where
    they beat the fused order on the deciding lists (or, older still, on every held-out list).

    >>> fit = {"decide_lists": 90, "decide_ndcg@10": 0.15, "decide_fused_ndcg@10": 0.17, "learnt": True}
    >>> reranker_decision({"reranker": {**fit, "decide_interval": [-0.05, 0.01]}})[0]
    True
    >>> reranker_decision({"reranker": {**fit, "decide_interval": [-0.05, -0.01]}})
    (False, 'behind the fused order on the 90 lists that decide (NDCG@10 0.15 vs 0.17, difference in [-0.05, -0.01])')
    """
    fit = (summary or {}).get("reranker")
    if not fit:
        return True, "no record of its validation"
    if fit.get("decide_ndcg@10") is not None:
        a, b, n = fit["decide_ndcg@10"], fit["decide_fused_ndcg@10"], fit.get("decide_lists", 0)
        if n < MIN_DECIDE_LISTS:
            return False, f"only {n} held-out lists decide (at least {MIN_DECIDE_LISTS} are needed)"
        if "decide_interval" not in fit:  # built before the interval was recorded
            return (a > b), f"{'beat' if a > b else 'did not beat'} the fused order on validation (NDCG@10 {a} vs {b})"
        if not fit.get("learnt"):
            return False, "it kept the fused order (no feature step was kept, and the text phase did not earn its place)"
        if fit["decide_interval"] is None:
            return False, f"none of the {n} lists that decide holds a label"
        low, high = fit["decide_interval"]
        if high < 0:
            return False, (f"behind the fused order on the {n} lists that decide (NDCG@10 {a} vs {b}, difference in "
                           f"[{low}, {high}])")
        return True, f"not behind the fused order on the {n} lists that decide (NDCG@10 {a} vs {b}, difference in [{low}, {high}])"
    if fit.get("best_valid_ndcg@10") is None:
        return True, "no record of its validation"
    a, b = fit["best_valid_ndcg@10"], fit["fused_valid_ndcg@10"]
    return (a > b), f"{'beat' if a > b else 'did not beat'} the fused order on validation (NDCG@10 {a} vs {b})"


def reranker_helps(summary: dict | None) -> bool:
    """Whether a stored reranker is served by default (:func:`reranker_decision`)."""
    return reranker_decision(summary)[0]
