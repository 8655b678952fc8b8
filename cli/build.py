"""``recsys build-index``: build the retrieval artifact end to end and print a one-screen summary."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from recsys.cli.options import THREADS, data_options, pop_data_options
from recsys.splits import HOLDOUTS


@click.command("build-index")
@data_options
@click.option("--holdout", type=click.Choice(HOLDOUTS), default=None,
              help="Held-out split stored for `recsys evaluate` (default: the named dataset's own, e.g. last_basket "
                   "for instacart; loo for your files). 'none' trains on everything for production.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Artifact folder (default: artifacts/<dataset>).")
@click.option("--text-model", default=None,
              help="Text encoder: a local folder or hub id of a BERT-family model (default: all-MiniLM-L6-v2, "
                   "offline), or char-ngram: a language-agnostic encoder that needs no weights.")
@click.option("--finetune-text-layers", type=int, default=0, show_default=True,
              help="On a GPU, fine-tune this many top layers of the text encoder.")
@click.option("--text-precision", type=click.Choice(["auto", "int8", "fp32"]), default="auto", show_default=True,
              help="Text encoding precision: int8 (dynamic quantisation, about 3x faster on a CPU) or fp32; auto "
                   "is int8 on a CPU, fp32 on a GPU.")
@click.option("--epochs", type=int, default=None, help="Most supervised epochs (default 40; fewer where the data rarely repeats an item and "
                   "windows overlap: see --max-len); early stopping picks the best.")
@click.option("--pretrain-epochs", type=int, default=None, help="Self-supervised pre-training epochs (0 = off).")
@click.option("--batch-size", type=click.IntRange(2, 1 << 16), default=None,
              help="Training batch (default 32), split across the processes under torchrun.")
@click.option("--max-len", type=int, default=None, help="Events of history the user tower reads (default 50, or 20 in windows every 5 "
                   "where under 10% of events return to an item the user had).")
@click.option("--dim", type=int, default=None, help="Vector size of both towers.")
@click.option("--window-stride", type=click.IntRange(1, 10_000), default=None,
              help="Training windows step back this many events (default: --max-len, no overlap, or a quarter of it "
                   "where the data rarely repeats an item); smaller "
                   "overlaps them, so each event is also predicted from a longer context.")
@click.option("--index-kind", type=click.Choice(["auto", "flat", "ivf", "hnsw"]), default="auto", show_default=True)
@click.option("--als-factors", type=int, default=64, show_default=True, help="ALS latent factors.")
@click.option("--als-weighting", type=click.Choice(["none", "bm25", "tfidf"]), default="none", show_default=True,
              help="Re-weighting of the ALS confidence matrix.")
@click.option("--no-als", is_flag=True, help="No ALS candidate source.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: a GPU when there is one).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--no-reranker", is_flag=True, help="Skip training the cross-encoder reranker.")
@click.option("--reranker-model", default=None,
              help="Reranker starting point: a BERT-family folder or hub id (default: all-MiniLM-L6-v2, offline).")
@click.option("--reranker-epochs", type=click.IntRange(1, 100), default=None, help="Reranker fine-tuning epochs (default 2).")
@click.option("--warm-start", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Continue training from this earlier artifact (daily refresh): old ids keep their indices, "
                   "old weights are the starting point.")
@click.option("--needs", "n_needs", type=click.IntRange(2, 10_000), default=None,
              help="How many latent needs to group the catalogue into (default: round(sqrt(items / 2)) in [4, 200]).")
@click.option("--hash-user-ids", is_flag=True,
              help="Store user ids pseudonymised: HMAC-SHA256 keyed by $RECSYS_ID_KEY (never stored).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@THREADS
def build_index(holdout, out, text_model, finetune_text_layers, text_precision, epochs, pretrain_epochs, batch_size, max_len, dim,
                window_stride, index_kind,
                als_factors, als_weighting, no_als, device, seed, quiet, no_reranker, reranker_model, reranker_epochs,
                warm_start, n_needs, hash_user_ids, as_json, threads, **kwargs) -> None:
    """Ingest, clean, split, train the two-tower model and ALS, and write the FAISS index.

    With no data argument it builds on the embedded default dataset (MovieLens-100k).
    """
    from recsys.defaults import ARTIFACTS_ROOT
    from recsys.inputs import resolve_data
    from recsys.threads import configure

    configure(threads)
    from recsys.pipeline import RerankOptions, build, build_options
    from recsys.rerank.config import RerankTrainConfig
    from recsys.retrieval.als import ALSConfig

    data = pop_data_options(kwargs)
    ds, cleaning, used = resolve_data(data)
    if quiet:
        logging.getLogger("transformers").setLevel(logging.ERROR)
    reranker = None if no_reranker else RerankOptions(
        model=reranker_model, train=RerankTrainConfig(**({"epochs": reranker_epochs} if reranker_epochs else {}), seed=seed))
    opts = build_options(
        data.config(), data.config_path, tower={"max_len": max_len, "dim": dim},
        train={"epochs": epochs, "pretrain_epochs": pretrain_epochs, "seed": seed, "batch_size": batch_size,
               "window_stride": window_stride},
        holdout=holdout or used["default_holdout"], text_model=text_model,
        finetune_text_layers=finetune_text_layers, text_precision=text_precision, index_kind=index_kind,
        sources={"als": None if no_als else ALSConfig(factors=als_factors, weighting=als_weighting, seed=seed)},
        reranker=reranker, device=device, seed=seed, show_progress=not quiet, warm_start=warm_start, n_needs=n_needs,
        hash_user_ids=hash_user_ids)
    summary = build(ds, out or ARTIFACTS_ROOT / ds.name, cleaning, opts, used)
    if summary.get("rank"):  # a torchrun worker other than rank 0: rank 0 writes and reports
        return
    if as_json:
        click.echo(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2, default=str))
        return
    click.echo(_screen(summary))


def _procs(s: dict) -> str:
    return f" x {s['processes']} processes" if s.get("processes", 1) > 1 else ""


def _screen(s: dict) -> str:
    times = ", ".join(f"{k} {v:.1f}s" for k, v in s["stage_seconds"].items())
    lines = [
        f"built {s['artifact']}",
        f"  data      {s['dataset']}: {s['rows_kept']:,} of {s['rows_in']:,} rows kept; {s['users']:,} users, "
        f"{s['items']:,} items ({s['id_only_items']} ID-only)",
        f"  split     {s['holdout']}",
        *([f"  warm      from {s['warm_start']['path']} ({s['users'] - s['warm_start']['users']:,} new users, "
           f"{s['items'] - s['warm_start']['items']:,} new items)"] if s.get("warm_start") else []),
        f"  text      {s['text_model']}: {s['texts_encoded']:,} texts encoded, unknown tokens {s['unk_rate']:.1%}",
        f"  training  {s['epochs']} epochs on {s['device']}{_procs(s)} (kept epoch {s['best_epoch']}), validation {s['valid_metric']} "
        f"{s['valid_' + s['valid_metric']]:.4f} (best {s.get('valid_best', s['valid_' + s['valid_metric']]):.4f}); pre-training loss {s['pretrain_loss'] or 'off'}",
        *([f"  history   last {h['max_len']} events, windows every {h['window_stride']}, up to {h['most_epochs']} "
           f"epoch{'s' if h['most_epochs'] != 1 else ''} "
           f"({h['rule']}{': from the data' if h['shaped'] else ''})"] if (h := s.get("shape")) else []),
        f"  index     {s['index']}, {s['index_bytes_per_item']:.0f} bytes/item, recall@10 vs exact "
        f"{s['index_recall@10_vs_exact']}",
        f"  sources   {', '.join(s.get('sources', []))}; {s.get('needs')} latent needs",
        "  reranker  " + (f"validation NDCG@10 {s['reranker']['best_valid_ndcg@10']} (fused order "
                           f"{s['reranker']['fused_valid_ndcg@10']}), {s['reranker']['train_lists']} training lists"
                           if s.get("reranker") else "off"),
        f"  times     {times}",
    ]
    return "\n".join(lines)
