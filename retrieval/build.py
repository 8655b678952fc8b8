"""``build-index``: ingest -> clean -> split -> text -> train -> encode -> index -> artifact.

The artifact folder holds the prepared data (id maps, catalog, split), the text-vector cache,
the model (safetensors + its config), the item vectors, the FAISS index and the manifest.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch

from recsys.artifacts import Artifact, ArtifactWriter
from recsys.cleaning import CleaningConfig
from recsys.device import resolve_device, set_seed
from recsys.errors import ArtifactError, ConfigError
from recsys.eval.protocols import make_task, rank, score_rankings, with_indices
from recsys.prepare import Prepared, load_prepared_tables, prepare, save_prepared
from recsys.schema import Dataset
from recsys.splits import leave_one_out

from . import distributed
from .als import ALSCandidates, ALSConfig, confidence_matrix
from .charngram import NAME as CHAR_NGRAM
from .charngram import CharNgramEncoder
from .finetune import FinetunedText
from .index import VectorIndex
from .model import TwoTower
from .needs import Needs
from .sequences import build_sequences
from .text import TextEncoder, encode_with_cache, text_key
from .towers import TowerConfig
from .train import TrainConfig, pretrain, train
from .warm import WarmStart, transfer

log = logging.getLogger(__name__)
UNK_WARN = 0.05  # warn when more than 5% of the catalogue's tokens are unknown to the text model


@dataclass
class BuildOptions:
    """What a build does beyond the data: model sizes, training, text model, index, device."""

    holdout: str = "loo"
    tower: TowerConfig = field(default_factory=TowerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    text_model: str | None = None
    text_encoder: TextEncoder | None = None  # an already loaded encoder (tests pass a tiny one)
    finetune_text_layers: int = 0
    index_kind: str = "auto"
    als: ALSConfig | None = field(default_factory=ALSConfig)  # None: no ALS candidates
    reranker: object | None = None  # recsys.rerank.pipeline.RerankOptions; None: no reranker
    device: str | None = None
    seed: int = 0
    show_progress: bool = True
    warm_start: str | Path | None = None  # an earlier artifact to continue training from (see .warm)
    n_needs: int | None = None  # latent needs (k-means clusters of items); None: from the catalogue's size

    def manifest(self) -> dict:
        return {"holdout": self.holdout, "tower": self.tower.to_dict(), "train": self.train.to_dict(),
                "text_model": self.text_model or "all-MiniLM-L6-v2", "finetune_text_layers": self.finetune_text_layers,
                "index_kind": self.index_kind, "n_needs": self.n_needs, "als": None if self.als is None else asdict(self.als),
                "reranker": None if self.reranker is None else {"model": self.reranker.model or "all-MiniLM-L6-v2",
                                                                "config": self.reranker.config.to_dict(),
                                                                "train": self.reranker.train.to_dict()},
                "device": self.device, "seed": self.seed}


class Stages:
    """Times each stage and reports it (a log line, and a progress line when enabled)."""

    def __init__(self, show: bool):
        self.show, self.times = show, {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        if self.show:
            from tqdm.auto import tqdm

            tqdm.write(f"[{name}] ...")
        yield
        self.times[name] = round(time.perf_counter() - start, 2)
        log.info("stage %s: %.1f s", name, self.times[name])

    def say(self, message: str) -> None:
        if self.show:
            from tqdm.auto import tqdm

            tqdm.write(f"  {message}")
        log.info(message)


def _text_cache(out: Path, model_name: str, dim: int) -> dict[str, np.ndarray]:
    """Text vectors of the previous artifact at ``out`` made with the same text model."""
    try:
        art = Artifact.open(out)
    except ArtifactError:
        return {}
    if art.manifest.get("config", {}).get("text_model") != model_name or not art.has("text/keys.parquet"):
        return {}
    keys = art.load_table("text/keys.parquet")["key"].to_list()
    vecs = art.load_array("text/vectors.npy")
    return dict(zip(keys, vecs)) if vecs.ndim == 2 and vecs.shape[1] == dim else {}


def _encoder(text_model: str | None, device: str):
    if text_model == CHAR_NGRAM:
        return CharNgramEncoder()
    return TextEncoder(text_model, device=device)


def model_scorer(model: TwoTower, history: pl.DataFrame, n_users: int, weights):
    seq = build_sequences(history, n_users, weights, model.cfg.n_gap_buckets)
    items = model.item_vectors()
    return lambda users: model.user_vectors(seq, users) @ items.T


def build(dataset: Dataset, out: str | Path, cleaning: CleaningConfig | None = None,
          opts: BuildOptions | None = None, config_used: dict | None = None) -> dict:
    """Run every stage and write the artifact atomically; returns the summary.

    Under ``torchrun`` every rank prepares the data and trains its shard (see :mod:`.distributed`);
    rank 0 alone goes on to ALS, the index and the artifact; the other ranks return ``{"rank": r}``.
    """
    opts = opts or BuildOptions()
    out = Path(out)
    set_seed(opts.seed)
    device = distributed.init(resolve_device(opts.device))
    stages = Stages(opts.show_progress and distributed.rank_and_size()[0] == 0)
    base = WarmStart.load(opts.warm_start) if opts.warm_start else None
    with stages("ingest+clean+split"):
        prepared = prepare(dataset, cleaning, holdout=opts.holdout,
                           base=(base.users, base.items, base.catalog) if base else None)
    with stages("text"):
        if base:
            base.check_text_model(opts.text_model)
        encoder = (base.charngram if base and base.charngram else opts.text_encoder
                   or _encoder(opts.text_model or (base.text_model if base else None), device))
        if opts.finetune_text_layers and not isinstance(encoder, TextEncoder):
            raise ConfigError(f"--finetune-text-layers {opts.finetune_text_layers}: the text model {encoder.name} has "
                              "no layers to tune; use a BERT-family --text-model or --finetune-text-layers 0")
        texts = prepared.catalog["text"].fill_null("").to_list()
        if hasattr(encoder, "fit") and not (base and base.charngram):
            encoder.fit(texts)  # fitted on this catalogue: its vectors are not reusable across builds
            cache = {}
        else:
            cache = _text_cache(base.path if base else out, encoder.name, encoder.dim)
        text_vectors, n_new = encode_with_cache(encoder, texts, cache, show_progress=opts.show_progress)
        unk = encoder.unk_rate([t for t in texts if t][:20000])
        stages.say(f"{len(texts)} item texts, {n_new} encoded anew, unknown-token rate {unk:.1%}")
        if unk > UNK_WARN:
            log.warning("%.0f%% of the catalogue's tokens are unknown to the text model %s; point --text-model at "
                        "a model for this language (e.g. a multilingual BERT folder) or use --text-model char-ngram",
                        100 * unk, encoder.name)
    sizes = base.tower if base else opts.tower
    tower = TowerConfig(**{**sizes.to_dict(), "n_event_types": max(sizes.n_event_types, len(dataset.weights.names()) + 1)})
    torch.manual_seed(opts.seed)
    model = TwoTower(tower, torch.as_tensor(text_vectors)).to(device)
    if base:
        transfer(model, base.state)
        stages.say(f"warm start from {base.path}: {len(prepared.users) - len(base.users)} new users, "
                   f"{len(prepared.items) - len(base.items)} new items")
    if opts.finetune_text_layers:
        if not device.startswith("cuda"):
            log.warning("fine-tuning %d text layers on the CPU is slow (it is meant for a GPU)", opts.finetune_text_layers)
        model.items.finetune = FinetunedText.from_encoder(encoder, texts, opts.finetune_text_layers).to(device)
    with stages("train"):
        fit = _fit(model, prepared, opts, stages)
        model.items.freeze_text()  # tuned layers -> their text vectors (no text model needed to serve)
    rank, size = distributed.rank_and_size()
    distributed.finish()
    weights_sha = distributed.state_checksum(model.state_dict())
    if rank:
        return {"rank": rank, "world_size": size, "weights_sha256": weights_sha}
    als = None
    if opts.als is not None:
        with stages("als"):
            als, als_events = _fit_als(prepared, opts)
            stages.say(f"ALS: {opts.als.factors} factors on {als_events:,} events")
    with stages("encode"):
        item_vectors = model.item_vectors()
    with stages("index"):
        index = VectorIndex(kind=opts.index_kind, seed=opts.seed).build(item_vectors)
        approx = _approx_recall(index, item_vectors, opts.seed)
    with stages("needs"):
        trained_items = np.zeros(len(prepared.items), dtype=bool)
        trained_items[with_indices(prepared.split.train, prepared.users, prepared.items)["item_idx"].to_numpy()] = True
        needs = Needs.fit(item_vectors, texts, k=opts.n_needs, seed=opts.seed, trained=trained_items)
        stages.say(f"{needs.k} needs, e.g. " + "; ".join(n["name"] for n in needs.names[:3]))
    config = {**(config_used or {}), **opts.manifest(), "text_model": encoder.name,
              "warm_start": base.manifest() if base else None}
    with stages("write"), ArtifactWriter(out, config=config, seed=opts.seed) as w:
        save_prepared(w, prepared)
        w.save_table("text/keys.parquet", pl.DataFrame({"key": [text_key(t) for t in texts]}))
        w.save_array("text/vectors.npy", text_vectors)
        if isinstance(encoder, CharNgramEncoder):
            encoder.save(w)
        if opts.finetune_text_layers:
            w.save_array("text/finetuned.npy", model.items.text.cpu().numpy())
        model.save(w.path("model/config.json").parent)
        w.save_array("index/item_vectors.npy", item_vectors)
        index.save(w.path("index/items.faiss"))
        needs.save(w)
        als_dir = "als"
        if als is not None:
            _save_als(w, als, "als")
            if _validation_split(prepared, opts).valid.height:
                # choices made on the validation stage must not see it: an ALS on the training events alone
                als_dir = validation_als(w, _validation_split(prepared, opts).train)
        fusion = _tune(w, prepared, opts, stages, als_dir)
        if fusion:
            w.save_json("fusion.json", fusion)
        rerank_fit = _fit_reranker(w, prepared, opts, stages, als_dir) if opts.reranker is not None else None
        shutil.rmtree(w.tmp / "als_valid", ignore_errors=True)  # only for those choices: not served
        summary = {
            "dataset": dataset.name, "rows_in": prepared.report.rows_in, "rows_kept": prepared.events.height,
            "users": len(prepared.users), "items": len(prepared.items), "id_only_items": prepared.id_only_items,
            "holdout": opts.holdout, "device": device, "processes": size, "weights_sha256": weights_sha, "epochs": len(fit["history"]), "best_epoch": fit["best_epoch"],
            f"valid_recall@{opts.train.eval_k}": round(fit["best_valid"], 4), "valid_metric": f"recall@{opts.train.eval_k}",
            "pretrain_loss": fit["pretrain"],
            "full_softmax": fit["full_softmax"], "mask_seen": fit["mask_seen"], "index": index.kind_built,
            "index_bytes_per_item": round(index.bytes_per_item(), 1), "needs": needs.k, "index_recall@10_vs_exact": approx,
            "als": als is not None, "fusion": fusion, "reranker": rerank_fit, "text_model": encoder.name,
            "texts_encoded": n_new, "unk_rate": round(unk, 4), "warm_start": config["warm_start"],
            "history": fit["history"],
        }
        summary["stage_seconds"] = stages.times
        w.save_json("summary.json", summary)
    summary["stage_seconds"] = stages.times
    summary["artifact"] = str(out)
    return summary


def _fit(model: TwoTower, prepared: Prepared, opts: BuildOptions, stages: Stages) -> dict:
    """Pre-train, then train with early stopping on validation Recall@k.

    With ``holdout="none"`` the last event of each user is held out only to choose the number
    of epochs; the model is then trained again on everything for that many epochs.
    """
    weights = prepared.dataset.weights
    n_users = len(prepared.users)
    split = prepared.split if opts.holdout != "none" else leave_one_out(prepared.events)
    protocol = {"loo": "loo", "temporal": "temporal", "last_basket": "last_basket", "none": "loo"}[opts.holdout]
    task = make_task(protocol, split, prepared.users, prepared.items, "valid")
    seq = build_sequences(task.history, n_users, weights, model.cfg.n_gap_buckets)

    def validate(m: TwoTower) -> float:
        if task.users.size == 0:
            return 0.0
        ranked = rank(task, model_scorer(m, task.history, n_users, weights), opts.train.eval_k)
        return score_rankings(task, ranked, ks=(opts.train.eval_k,))[0][f"recall@{opts.train.eval_k}"]

    if opts.train.mask_seen is None:  # decided by the split: mask seen items where they are never served
        opts = replace(opts, train=replace(opts.train, mask_seen=task.exclude_seen))
    initial = copy.deepcopy(model.state_dict())
    # a warm start continues from trained towers: no contrastive pre-training
    pre = pretrain(model, seq, opts.train, stages.say) if opts.train.pretrain_epochs and not opts.warm_start else []
    fit = train(model, seq, opts.train, validate if task.users.size else None, stages.say)
    if opts.holdout == "none":
        everything = with_indices(prepared.events, prepared.users, prepared.items)
        full_seq = build_sequences(everything, n_users, weights, model.cfg.n_gap_buckets)
        again = TrainConfig(**{**opts.train.to_dict(), "epochs": max(1, fit["best_epoch"]), "patience": 10**6})
        stages.say(f"retraining on every event for {again.epochs} epochs")
        torch.manual_seed(opts.seed)
        model.load_state_dict(initial)
        if opts.train.pretrain_epochs and not opts.warm_start:
            pretrain(model, full_seq, opts.train, stages.say)
        train(model, full_seq, again, None, stages.say)
    fit["pretrain"] = [round(x, 4) for x in pre]
    fit["mask_seen"] = opts.train.mask_seen
    return fit


def als_history(prepared_split_tables: dict, holdout: str) -> pl.DataFrame:
    """The events ALS learns from: everything but the test split (all of it with ``holdout="none"``)."""
    parts = [prepared_split_tables["train"], prepared_split_tables["valid"]]
    if holdout == "none":
        parts.append(prepared_split_tables["test"])
    return pl.concat(parts)


def _fit_als(prepared: Prepared, opts: BuildOptions) -> tuple[ALSCandidates, int]:
    """ALS on :func:`als_history` of the split, with each user's event count."""
    split = {"train": prepared.split.train, "valid": prepared.split.valid, "test": prepared.split.test}
    events = with_indices(als_history(split, opts.holdout), prepared.users, prepared.items)
    n_users, n_items = len(prepared.users), len(prepared.items)
    conf = confidence_matrix(events, n_users, n_items, prepared.dataset.weights, prepared.dataset.value_kind)
    als = ALSCandidates(opts.als, use_gpu=None if opts.device in (None, "auto") else opts.device.startswith("cuda"))
    als.fit(conf)
    # how many events each user's factors were solved from: a user with more at query time is folded in
    als.user_event_counts = np.bincount(events["user_idx"].to_numpy(), minlength=n_users).astype(np.int64)
    return als, events.height


def _validation_split(prepared: Prepared, opts: BuildOptions):
    """The split choices are made on: the stored one, or with --holdout none each user's last event."""
    return prepared.split if opts.holdout != "none" else leave_one_out(prepared.events)


def _save_als(w: ArtifactWriter, als: ALSCandidates, folder: str) -> None:
    als.save(w.path(f"{folder}/config.json").parent)
    w.save_array(f"{folder}/user_event_counts.npy", als.user_event_counts)


def validation_als(w: ArtifactWriter, train_events: pl.DataFrame) -> str:
    """For a pending artifact with ALS: the same ALS fitted on ``train_events`` alone, written to
    ``als_valid/`` (the caller removes it before commit). Returns the folder to read ALS from."""
    art = w.pending()
    if not art.has("als/config.json"):
        return "als"
    t = load_prepared_tables(art)
    cfg = ALSCandidates.load(art.file("als/config.json").parent).cfg
    events = with_indices(train_events, t["users"], t["items"])
    n_users, n_items = len(t["users"]), len(t["items"])
    als = ALSCandidates(cfg, use_gpu=False).fit(confidence_matrix(events, n_users, n_items, t["weights"], t["value_kind"]))
    als.user_event_counts = np.bincount(events["user_idx"].to_numpy(), minlength=n_users).astype(np.int64)
    _save_als(w, als, "als_valid")
    return "als_valid"


def _tune(w: ArtifactWriter, prepared: Prepared, opts: BuildOptions, stages: Stages, als_dir: str = "als") -> dict:
    """Fusion weights for both serving modes, chosen on the validation stage (see :mod:`.tune`)."""
    from .recommender import Recommender
    from .tune import tune_fusion

    split = _validation_split(prepared, opts)
    if opts.als is None or split.valid.height == 0:
        return {}
    task = make_task("loo" if opts.holdout == "none" else opts.holdout, split, prepared.users, prepared.items, "valid")
    with stages("fusion"):
        rec = Recommender(w.pending(), opts.device, history=split.train, use_reranker=False, als_dir=als_dir)
        out = {"exclude_seen": tune_fusion(rec, task, include_seen=False, seed=opts.seed),
               "include_seen": tune_fusion(rec, task, include_seen=True, seed=opts.seed)}
        for mode, r in out.items():
            stages.say(f"fusion weights ({mode.replace('_', ' ')}): {r['weights']}, validation NDCG@10 "
                       f"{r['valid_ndcg@10']} (all 1: {r['default_ndcg@10']})")
    return out


def _fit_reranker(w: ArtifactWriter, prepared: Prepared, opts: BuildOptions, stages: Stages,
                  als_dir: str = "als") -> dict:
    """Train the cross-encoder on the validation period's lists (see :mod:`recsys.rerank.pipeline`)."""
    from recsys.rerank.pipeline import fit_reranker

    from .recommender import Recommender

    split = _validation_split(prepared, opts)
    with stages("reranker"):
        rec = Recommender(w.pending(), opts.device, history=split.train, use_reranker=False, als_dir=als_dir)
        tables = {"train": split.train, "valid": split.valid}
        ropts = replace(opts.reranker, device=resolve_device(opts.device))
        reranker, fit = fit_reranker(rec, tables, ropts, include_seen=opts.holdout == "last_basket",
                                     progress=stages.say)
        reranker.save(w.path("reranker/config.json").parent)
    return {k: v for k, v in fit.items() if k != "history"} | {"history": fit["history"]}


def _approx_recall(index: VectorIndex, vectors: np.ndarray, seed: int, n: int = 200) -> float | None:
    """Recall@10 of the index against exact search on random item vectors as queries."""
    if index.kind_built == "flat":
        return 1.0
    rng = np.random.default_rng(seed)
    q = vectors[rng.choice(len(vectors), min(n, len(vectors)), replace=False)]
    exact = VectorIndex(kind="flat", use_gpu=False).build(vectors).search(q, 10)[0]
    found = index.search(q, 10)[0]
    return round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)])), 4)


def retune(path: str | Path, show_progress: bool = False) -> dict:
    """Choose the fusion weights of a built artifact again (atomically rewritten, as build-index
    would have chosen them); returns the new ``fusion.json``."""
    from recsys.splits import Split

    art = Artifact.open(path)
    m = art.manifest
    holdout = m.get("config", {}).get("holdout", "loo")
    with ArtifactWriter.update(art) as w:
        t = load_prepared_tables(w.pending())
        split = Split(t["train"], t["valid"], t["test"], {})
        if holdout == "none":
            split = leave_one_out(t["train"])
        if split.valid.height == 0:
            return {}
        from .recommender import Recommender
        from .tune import tune_fusion

        task = make_task("loo" if holdout == "none" else holdout, split, t["users"], t["items"], "valid")
        als_dir = validation_als(w, split.train)
        rec = Recommender(w.pending(), history=split.train, use_reranker=False, als_dir=als_dir)
        out = {"exclude_seen": tune_fusion(rec, task, include_seen=False, seed=m.get("seed") or 0),
               "include_seen": tune_fusion(rec, task, include_seen=True, seed=m.get("seed") or 0)}
        w.save_json("fusion.json", out)
        shutil.rmtree(w.tmp / "als_valid", ignore_errors=True)
    return out
