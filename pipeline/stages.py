"""The build as a list of stages, each a function of one :class:`BuildContext`.

``prepare → text → two_tower → sources → index → needs → fusion → reranker → write``

Each stage reads what earlier ones left in the context and writes its own files into the pending
artifact (:class:`~recsys.artifacts.ArtifactWriter`: a temporary folder renamed into place by
``write``, so a failed build leaves the previous artifact intact). ``build`` runs them all; the
commands that change a built artifact open a context on it and run only theirs: ``retune``
(fusion), ``train-reranker`` (reranker), ``add-items`` (:mod:`.add_items`), and ``--warm-start``
goes through the same stages from an earlier artifact's state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from tqdm.auto import tqdm

from recsys import layout
from recsys.artifacts import Artifact, ArtifactWriter
from recsys.catalog import item_groups
from recsys.cleaning import CleaningConfig
from recsys.defaults import DEFAULT_HOLDOUT
from recsys.device import resolve_device, set_seed
from recsys.eval.protocols import keeps_seen, with_indices
from recsys.prepare import Prepared, load_prepared_tables, prepare, save_prepared
from recsys.privacy import key_fingerprint, load_key, pseudonymise_frame
from recsys.retrieval import distributed
from recsys.retrieval import sources as registry
from recsys.retrieval.index import VectorIndex
from recsys.retrieval.model import TwoTower
from recsys.retrieval.needs import Needs
from recsys.retrieval.recommender import SHORT
from recsys.retrieval.warm import WarmStart, transfer
from recsys.schema import Dataset
from recsys.sources import FitInfo, Space

from .options import BuildOptions
from .provider import fit_parts, stage_data, stage_engine
from .reranking import fit_reranker
from .text import encode_catalogue, finetune_layers
from .tune import evidence_warning, serving_mode, short_history_task, tune_fusion
from .two_tower import fit_two_tower, repeat_share, shape_for_data

log = logging.getLogger(__name__)
MODES = ("exclude_seen", "include_seen")


class StageTimer:
    """Times each stage and reports it (a log line, and a progress line when ``show``)."""

    def __init__(self, show: bool):
        self.show, self.times = show, {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        self.say(f"[{name}] ...", indent="")
        yield
        self.times[name] = round(time.perf_counter() - start, 2)
        log.info("stage %s: %.1f s", name, self.times[name])

    def say(self, message: str, indent: str = "  ") -> None:
        if self.show:
            tqdm.write(f"{indent}{message}")
        log.info(message)


@dataclass
class BuildContext:
    """What the stages share: the options, the pending artifact, and each stage's product."""

    opts: BuildOptions
    writer: ArtifactWriter
    timer: StageTimer
    device: str
    dataset: Dataset | None = None
    cleaning: CleaningConfig | None = None
    base: WarmStart | None = None
    prepared: Prepared | None = None
    encoder: Any = None
    texts: list[str] = field(default_factory=list)
    text_vectors: np.ndarray | None = None
    model: TwoTower | None = None
    item_vectors: np.ndarray | None = None
    summary: dict = field(default_factory=dict)
    rank: int = 0

    @property
    def holdout(self) -> str:
        return self.writer.manifest["config"].get("holdout", self.opts.holdout)

    def pending(self) -> Artifact:
        return self.writer.pending()

    def tables(self) -> dict:
        return load_prepared_tables(self.pending())


def prepare_stage(ctx: BuildContext) -> None:
    """Ingest → clean → id maps → split; the data half of the artifact."""
    base = ctx.base
    ctx.prepared = prepare(ctx.dataset, ctx.cleaning, holdout=ctx.opts.holdout,
                           base=(base.users, base.items, base.catalog) if base else None)
    save_prepared(ctx.writer, ctx.prepared)
    p = ctx.prepared
    ctx.summary.update(dataset=ctx.dataset.name, rows_in=p.report.rows_in, rows_kept=p.events.height,
                       users=len(p.users), items=len(p.items), id_only_items=p.id_only_items, holdout=ctx.opts.holdout)


def text_stage(ctx: BuildContext) -> None:
    """Item texts through the text encoder (cached vectors reused); see :mod:`.text`."""
    ctx.texts = ctx.prepared.catalog["text"].fill_null("").to_list()
    ctx.encoder, ctx.text_vectors, info = encode_catalogue(ctx.texts, ctx.opts, ctx.device, ctx.base,
                                                           ctx.writer.out_dir, ctx.timer.say)
    ctx.writer.manifest["config"]["text_model"] = ctx.encoder.name
    ctx.writer.manifest["config"]["text_precision"] = info["text_precision"]
    ctx.writer.save_table(layout.TEXT_KEYS, pl.DataFrame({"key": info.pop("keys")}))
    ctx.writer.save_array(layout.TEXT_VECTORS, ctx.text_vectors)
    if hasattr(ctx.encoder, "save"):
        ctx.encoder.save(ctx.writer)
    ctx.summary.update(info)


def two_tower_stage(ctx: BuildContext) -> None:
    """Pre-train and train the two towers, early-stopped on the validation stage; see :mod:`.two_tower`."""
    p, base = ctx.prepared, ctx.base
    # the history the user tower reads and its training windows, from the data's repeats (unless set)
    train_events = with_indices(p.split.train, p.users, p.items)
    tower, cfg, why = shape_for_data(base.tower if base else ctx.opts.tower, ctx.opts.train, repeat_share(train_events),
                                     np.bincount(train_events["user_idx"].to_numpy(), minlength=len(p.users)),
                                     ctx.opts.explicit, keep_tower=base is not None)
    ctx.opts = opts = replace(ctx.opts, tower=tower, train=cfg)
    ctx.writer.manifest["config"].update(tower=tower.to_dict(), train=cfg.to_dict())
    if why["shaped"]:
        ctx.timer.say(f"{why['rule']}: " + ", ".join(f"{k} {getattr(tower if hasattr(tower, k) else cfg, k)}"
                                                    for k in why["shaped"]) + " (from the data)")
    ctx.summary["shape"] = {**why, "max_len": tower.max_len, "window_stride": cfg.window_stride or tower.max_len,
                            "most_epochs": cfg.epochs, "dropout": tower.dropout}
    tower = replace(tower, n_event_types=max(tower.n_event_types, len(p.dataset.weights.names()) + 1))
    torch.manual_seed(opts.seed)
    model = TwoTower(tower, torch.as_tensor(ctx.text_vectors)).to(ctx.device)
    if base:
        transfer(model, base.state)
        ctx.timer.say(f"warm start from {base.path}: {len(p.users) - len(base.users)} new users, "
                      f"{len(p.items) - len(base.items)} new items")
    if opts.finetune_text_layers:
        model.items.finetune = finetune_layers(ctx.encoder, ctx.texts, opts.finetune_text_layers, ctx.device)
    split = {"train": p.split.train, "valid": p.split.valid, "test": p.split.test}
    fit, valid_state = fit_two_tower(model, stage_data(split, opts.holdout, "valid"), p.events, p.users, p.items,
                                     p.dataset.weights, opts.train, opts.holdout, opts.seed, bool(opts.warm_start),
                                     ctx.timer.say)
    model.items.freeze_text()  # tuned layers -> their text vectors (no text model needed to serve)
    ctx.rank, size = distributed.rank_and_size()
    distributed.finish()
    ctx.model = model
    if opts.finetune_text_layers:
        ctx.writer.save_array(layout.TEXT_FINETUNED, model.items.text.cpu().numpy())
    model.save(ctx.writer.path(layout.MODEL_CONFIG).parent)
    if valid_state is not None:  # --holdout none: the validation stage's own model
        folder = layout.stage_dir("valid", layout.MODEL)
        model.save(ctx.writer.path(layout.under(folder, layout.CONFIG)).parent, valid_state, FitInfo(("loo_train",)))
    ctx.summary.update({
        "device": ctx.device, "processes": size, "weights_sha256": distributed.state_checksum(model.state_dict()),
        "epochs": len(fit["history"]), "best_epoch": fit["best_epoch"],
        # the kept epoch's score: the latest within one standard error of the best (recsys.retrieval.train)
        f"valid_recall@{opts.train.eval_k}": round(fit["kept_valid"] if fit["kept_valid"] is not None else fit["best_valid"], 4),
        "valid_best": round(fit["best_valid"], 4), "valid_metric": f"recall@{opts.train.eval_k}",
        "pretrain_loss": fit["pretrain"], "full_softmax": fit["full_softmax"], "mask_seen": fit["mask_seen"],
        "history": fit["history"]})


def sources_stage(ctx: BuildContext) -> None:
    """Fit every registered source that learns from events (ALS), on every event but the test split's."""
    p, opts = ctx.prepared, ctx.opts
    space = Space(len(p.users), len(p.items), p.dataset.weights, p.dataset.value_kind, item_groups(p.catalog, p.items.ids))
    events = with_indices(pl.concat([p.split.train, p.split.valid]), p.users, p.items)
    fitted = []
    for cls in registry.SOURCES:
        cfg = opts.source_config(cls.name)
        if cfg is None or not cls.learns or cls.external_fit:
            continue
        src = cls(space, cfg if cls.Config is not None else None, device=opts.device)
        src.fit(events, fit_parts(opts.holdout, "history"))
        src.save(ctx.writer.path(layout.under(layout.source_dir(cls.name), layout.FIT)).parent)
        fitted.append(cls.name)
        ctx.timer.say(f"{cls.name}: fitted on {events.height:,} events")
    ctx.summary["sources"] = [n for n in registry.names() if opts.source_config(n) is not None]
    ctx.summary["als"] = "als" in fitted


def index_stage(ctx: BuildContext) -> None:
    """Item vectors from the item tower, into a FAISS index (checked against exact search)."""
    ctx.item_vectors = ctx.model.item_vectors()
    index = VectorIndex(kind=ctx.opts.index_kind, seed=ctx.opts.seed).build(ctx.item_vectors)
    ctx.writer.save_array(layout.ITEM_VECTORS, ctx.item_vectors)
    index.save(ctx.writer.path(layout.INDEX_FILE))
    ctx.summary.update(index=index.kind_built, index_bytes_per_item=round(index.bytes_per_item(), 1),
                       **{"index_recall@10_vs_exact": index.recall_vs_exact(ctx.item_vectors, ctx.opts.seed)})


def needs_stage(ctx: BuildContext) -> None:
    """The catalogue grouped into named needs (:mod:`recsys.retrieval.needs`)."""
    p = ctx.prepared
    trained = np.zeros(len(p.items), dtype=bool)
    trained[with_indices(p.split.train, p.users, p.items)["item_idx"].to_numpy()] = True
    needs = Needs.fit(ctx.item_vectors, ctx.texts, k=ctx.opts.n_needs, seed=ctx.opts.seed, trained=trained)
    needs.save(ctx.writer)
    ctx.timer.say(f"{needs.k} needs, e.g. " + "; ".join(n["name"] for n in needs.names[:3]))
    ctx.summary["needs"] = needs.k


def fusion_stage(ctx: BuildContext) -> None:
    """Fusion weights for both serving modes, chosen on the validation stage, and which mode is
    served by default: seen items kept only where that raised validation NDCG@10 (:mod:`.tune`)."""
    t = ctx.tables()
    stage = stage_data(t, ctx.holdout, "valid")
    if stage.targets.height == 0:
        ctx.summary["fusion"] = {}
        return
    rec = stage_engine(ctx.pending(), stage, "cpu")
    task = stage.task(t["users"], t["items"])
    seed = ctx.writer.manifest.get("seed") or 0
    out = {mode: tune_fusion(rec, task, include_seen=mode == "include_seen", seed=seed) for mode in MODES}
    # users with a history of one or two events (a new visitor): see short_history_task
    short_task, batch_of = short_history_task(rec, task, SHORT)
    out["short_history"] = {mode: tune_fusion(rec, short_task, include_seen=mode == "include_seen", seed=seed,
                                              batch_of=batch_of) for mode in MODES}
    for mode in MODES:
        for name, r in ((mode, out[mode]), (f"{mode}, last {SHORT} events", out["short_history"][mode])):
            ctx.timer.say(f"fusion weights ({name.replace('_', ' ')}): {r['weights']}, validation NDCG@10 "
                          f"{r['valid_ndcg@10']} (all 1: {r['default_ndcg@10']})")
            for src, e in r.get("evidence", {}).items():
                ctx.timer.say(f"  {src} {'kept' if e['kept'] else 'left out'}: {e['diff']:+.4f} "
                              f"[{e['interval'][0]:+.4f}, {e['interval'][1]:+.4f}] validation NDCG@10 with it")
    out["serve_seen"] = serving_mode(out["exclude_seen"], out["include_seen"])
    out["validation_users"] = int(out["include_seen"]["users"])
    warning = evidence_warning(out["validation_users"])
    if warning:
        out["warning"] = warning
        log.warning("fusion: %s", warning)
    ctx.timer.say(f"serving: seen items {'kept' if out['serve_seen']['include_seen'] else 'excluded'}: "
                  f"{out['serve_seen']['reason']}")
    for r in (out[m] for m in MODES):
        r.pop("per_user")
    for r in out["short_history"].values():
        r.pop("per_user")
    ctx.writer.save_json(layout.FUSION, out)
    ctx.summary["fusion"] = out


def reranker_stage(ctx: BuildContext) -> None:
    """The cross-encoder, trained on the validation stage's lists (:mod:`.reranking`)."""
    ropts = replace(ctx.opts.reranker, device=resolve_device(ctx.opts.device))
    stage = stage_data(ctx.tables(), ctx.holdout, "valid")
    rec = stage_engine(ctx.pending(), stage, ropts.device)
    seen = keeps_seen(stage.protocol) if ropts.include_seen is None else ropts.include_seen
    reranker, fit = fit_reranker(rec, stage, ropts, include_seen=seen, progress=ctx.timer.say)
    reranker.save(ctx.writer.path(layout.RERANKER_CONFIG).parent)
    ctx.summary["reranker"] = fit


def write_stage(ctx: BuildContext) -> None:
    """The summary, then the manifest and the atomic rename into place."""
    ctx.summary["stage_seconds"] = {**ctx.summary.get("stage_seconds", {}), **ctx.timer.times}
    ctx.writer.save_json(layout.SUMMARY, ctx.summary)
    ctx.writer.commit()


Stage = Callable[[BuildContext], None]
STAGES: tuple[tuple[str, Stage], ...] = (
    ("prepare", prepare_stage), ("text", text_stage), ("two_tower", two_tower_stage), ("sources", sources_stage),
    ("index", index_stage), ("needs", needs_stage), ("fusion", fusion_stage), ("reranker", reranker_stage),
    ("write", write_stage),
)


def run(ctx: BuildContext, names: Sequence[str]) -> dict:
    """Run the named stages in pipeline order (``write`` last commits); returns the summary. On any
    error the pending artifact is removed and the previous one stays."""
    try:
        for name, stage in STAGES:
            if name not in names:
                continue
            with ctx.timer(name):
                stage(ctx)
            if name == "two_tower" and ctx.rank:  # a torchrun rank other than 0: rank 0 goes on and writes
                ctx.writer.abort()
                return {"rank": ctx.rank, "world_size": ctx.summary["processes"],
                        "weights_sha256": ctx.summary["weights_sha256"]}
    except BaseException:
        ctx.writer.abort()
        raise
    return {**ctx.summary, "stage_seconds": ctx.timer.times, "artifact": str(ctx.writer.out_dir)}


def build(dataset: Dataset, out: str | Path, cleaning: CleaningConfig | None = None,
          opts: BuildOptions | None = None, config_used: dict | None = None) -> dict:
    """Run every stage and write the artifact atomically; returns the summary.

    Under ``torchrun`` every rank prepares the data and trains its shard (see
    :mod:`recsys.retrieval.distributed`); rank 0 alone goes on to the other stages and the artifact;
    the other ranks return ``{"rank": r, ...}``.
    """
    opts = opts or BuildOptions()
    set_seed(opts.seed)
    device = distributed.init(resolve_device(opts.device))
    timer = StageTimer(opts.show_progress and distributed.rank_and_size()[0] == 0)
    base = WarmStart.load(opts.warm_start) if opts.warm_start else None
    config_used = dict(config_used or {})
    if opts.hash_user_ids:
        key = load_key()
        dataset.events = pseudonymise_frame(dataset.events, key)
        config_used["user_ids"] = {"hash": "hmac-sha256", "key_fingerprint": key_fingerprint(key)}
    config = {**config_used, **opts.manifest(), "warm_start": base.manifest() if base else None}
    writer = ArtifactWriter(out, config=config, seed=opts.seed)
    ctx = BuildContext(opts, writer, timer, device, dataset=dataset, cleaning=cleaning, base=base)
    ctx.summary["warm_start"] = config["warm_start"]
    names = [n for n, _ in STAGES if n != "reranker" or opts.reranker is not None]
    return run(ctx, names)


def open_context(path: str | Path, opts: BuildOptions | None = None, config: dict | None = None,
                 show_progress: bool = False, skip: str | None = None) -> BuildContext:
    """A context over a built artifact, whose files are copied into a pending one (``skip``: a folder
    left out, to be written anew) — for the stages that change a built artifact."""
    art = Artifact.open(path)
    m = art.manifest
    writer = ArtifactWriter.update(art, config=config if config is not None else m.get("config"), skip=skip)
    holdout = m.get("config", {}).get("holdout", DEFAULT_HOLDOUT)
    opts = opts or BuildOptions(holdout=holdout)
    ctx = BuildContext(opts, writer, StageTimer(show_progress), resolve_device(opts.device))
    if art.has(layout.SUMMARY):
        ctx.summary = art.load_json(layout.SUMMARY)
    return ctx
