"""The reranker inside the engine: trained from an artifact's split, applied to fused candidates.

The reranker learns from lists whose candidates were proposed by models that never learnt what
the list's labels say, as at serving time. By default (``lists="validation"``) those are the
validation period's lists: decision point = the user's first validation event, history = their
training events, labels = their validation events, candidates from the two-tower (trained on the
training events) and the validation ALS (likewise). 80% of the users' lists train it, the other
20% decide early stopping and whether it is served. No test event is read.

``lists="training"`` samples decision points inside the training period instead (history and
labels from training events). Those candidates come from models that were fitted on the labels
themselves, so the retrieval features say more there than they will at serving time: measured on
Instacart, a features-only ranker trained that way loses 0.148 NDCG@10 to the fused order on the
test baskets, where the same ranker trained on validation lists gains 0.019 (see the README).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from recsys.errors import ConfigError

from .data import build_lists, sample_cuts, validation_cuts
from .features import candidate_features, context_text, cooccurrence_scores
from .model import Reranker, RerankerConfig
from .train import RerankTrainConfig, train_reranker

log = logging.getLogger(__name__)


LISTS = ("validation", "training")


@dataclass
class RerankOptions:
    model: str | None = None  # BERT-family folder or hub id (default all-MiniLM-L6-v2)
    config: RerankerConfig = field(default_factory=RerankerConfig)
    train: RerankTrainConfig = field(default_factory=RerankTrainConfig)
    lists: str = "validation"  # where training lists come from (see the module doc)
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


def fit_reranker(rec, split_tables: dict, opts: RerankOptions, include_seen: bool,
                 progress=None) -> tuple[Reranker, dict]:
    """Train a reranker for ``rec`` (a Recommender over the artifact) on the stored split.

    ``rec`` must propose candidates from models that did not learn the validation events (the
    validation ALS); its history is replaced on the way."""
    t0 = time.perf_counter()
    horizon = dt.timedelta(hours=opts.horizon_hours)
    rng = np.random.default_rng(opts.train.seed)
    ctx = opts.config.context_items
    rec.set_history(pl.concat([split_tables["train"], split_tables["valid"]]))
    rec.cooccurrence_from(split_tables["train"])  # as ALS: the validation lists' labels are not counted
    vcuts = validation_cuts(rec, split_tables["valid"])
    if vcuts.height > opts.max_valid_lists:
        vcuts = vcuts[np.sort(rng.choice(vcuts.height, opts.max_valid_lists, replace=False))]
    every = build_lists(rec, vcuts, include_seen, horizon, context_items=ctx)
    held = rng.random(len(every)) < opts.held_out
    if opts.lists == "validation":
        train, valid = every.subset(np.flatnonzero(~held)), every.subset(np.flatnonzero(held))
    else:
        valid = every
        rec.set_history(split_tables["train"])
        cuts = sample_cuts(rec.history, opts.cuts_per_user, opts.train.seed)
        if cuts.height > opts.max_train_lists:
            cuts = cuts[np.sort(rng.choice(cuts.height, opts.max_train_lists, replace=False))]
        train = build_lists(rec, cuts, include_seen, horizon, context_items=ctx)
    lists_s = time.perf_counter() - t0
    if progress:
        progress(f"reranker lists ({opts.lists} period): {len(train)} training ({int((train.click.sum(1) > 0).sum())} "
                 f"with a label), {len(valid)} for early stopping, {lists_s:.0f} s")
    reranker = Reranker.from_pretrained(opts.model, opts.config, opts.device)
    fit = train_reranker(reranker, train, valid, rec.titles, opts.train, progress)
    fit.update(lists_seconds=round(lists_s, 1), include_seen=include_seen, lists=opts.lists,
               train_positive_rate=round(float(train.click[train.items >= 0].mean()), 4) if len(train) else 0.0)
    return reranker, fit


def rerank(reranker: Reranker, rec, profiles, candidates, depth: int = 100, batch_size: int = 128) -> dict:
    """Reorder each row's top ``depth`` candidates by the reranker.

    Returns ``{"items", "scores", "click", "purchase", "order"}``: ``order[r]`` holds the
    positions (into the fused list) in reranked order; rows are padded with -1."""
    n_rows = candidates.items.shape[0]
    depth = min(depth, candidates.items.shape[1])
    seen = rec._seen(profiles)
    feats = candidate_features(candidates, rec.popular, seen, cooccurrence_scores(rec, profiles, candidates.items))
    ctx_items = reranker.cfg.context_items
    mine = pl.Series(np.unique(profiles.rows).astype(np.int64)).implode()
    ev = profiles.events.filter(pl.col("user_idx").is_in(mine)).sort("user_idx", "timestamp", maintain_order=True)
    per_row = ev.group_by("user_idx", maintain_order=True).agg(pl.col("item_idx").tail(ctx_items),
                                                               pl.col("event").tail(ctx_items))
    ctx = dict(zip(per_row["user_idx"].to_list(), zip(per_row["item_idx"].to_list(), per_row["event"].to_list())))
    pairs, f, where = [], [], []
    for r in range(n_rows):
        its, evs = ctx.get(int(profiles.rows[r]), ([], []))
        text = context_text([rec.titles[i] for i in its], evs, ctx_items)
        for j in np.flatnonzero(candidates.items[r, :depth] >= 0):
            pairs.append((text, rec.titles[candidates.items[r, j]]))
            f.append(feats[r, j])
            where.append((r, j))
    heads = reranker.predict(pairs, np.asarray(f, np.float32) if f else None, batch_size=batch_size, heads=True)
    w = np.array([reranker.cfg.click_weight, reranker.cfg.purchase_weight], dtype=np.float32)
    scores = heads @ w if len(heads) else np.zeros(0, np.float32)
    out = {k: np.full((n_rows, depth), fill, dtype=dt_) for k, fill, dt_ in
           (("items", -1, np.int64), ("order", -1, np.int64), ("scores", -np.inf, np.float32),
            ("click", np.nan, np.float32), ("purchase", np.nan, np.float32))}
    rows: dict[int, list] = {}
    for (r, j), s, h in zip(where, scores, heads):
        rows.setdefault(r, []).append((-float(s), j, h))
    for r, cand in rows.items():
        cand.sort(key=lambda x: (x[0], x[1]))
        for pos, (neg, j, h) in enumerate(cand):
            out["items"][r, pos], out["order"][r, pos], out["scores"][r, pos] = candidates.items[r, j], j, -neg
            out["click"][r, pos], out["purchase"][r, pos] = h[0], h[1]
    return out


def add_reranker(path, opts: RerankOptions, progress=None) -> dict:
    """Train a reranker for the artifact at ``path`` and write it in (atomically: a new artifact
    folder with every file of the old one plus ``reranker/``, renamed into place)."""
    import shutil
    from dataclasses import asdict

    from recsys.artifacts import Artifact, ArtifactWriter
    from recsys.retrieval.build import validation_als
    from recsys.retrieval.recommender import Recommender
    from recsys.splits import leave_one_out

    art = Artifact.open(path)
    m = art.manifest
    config = {**m.get("config", {}), "reranker": {"model": opts.model or "all-MiniLM-L6-v2",
                                                  "config": opts.config.to_dict(), "train": asdict(opts.train)}}
    with ArtifactWriter.update(art, config=config, skip="reranker") as w:
        pending = w.pending()
        t = {n: pending.load_table(f"data/{n}.parquet") for n in ("train", "valid")}
        holdout = m.get("config", {}).get("holdout", "loo")
        if holdout == "none" or t["valid"].height == 0:
            every = pending.load_table("data/train.parquet")
            split = leave_one_out(every)
            t = {"train": split.train, "valid": split.valid}
        als_dir = validation_als(w, t["train"])  # validation lists must not come from an ALS that saw them
        rec = Recommender(w.pending(), opts.device, history=t["train"], use_reranker=False, als_dir=als_dir)
        seen = holdout == "last_basket" if opts.include_seen is None else opts.include_seen
        reranker, fit = fit_reranker(rec, t, opts, include_seen=seen, progress=progress)
        reranker.save(w.path("reranker/config.json").parent)
        shutil.rmtree(w.tmp / "als_valid", ignore_errors=True)
        if pending.has("summary.json"):
            summary = pending.load_json("summary.json")
            summary["reranker"] = fit
            seconds = (fit["history"][-1]["seconds"] if fit.get("history") else 0.0) + fit.get("lists_seconds", 0.0)
            summary.setdefault("stage_seconds", {})["reranker"] = round(seconds, 2)
            w.save_json("summary.json", summary)
    return fit
