"""``recsys train-reranker``: train the cross-encoder for an artifact built without one (or again)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from recsys.cli.options import THREADS
from recsys.defaults import DEFAULT_ARTIFACTS


@click.command("train-reranker")
@click.option("--artifacts", type=click.Path(path_type=Path), default=DEFAULT_ARTIFACTS, show_default=True,
              help="An artifact folder written by `recsys build-index`.")
@click.option("--reranker-model", default=None,
              help="Starting point: a BERT-family folder or hub id (default: all-MiniLM-L6-v2, offline).")
@click.option("--epochs", type=click.IntRange(1, 100), default=2, show_default=True)
@click.option("--loss", type=click.Choice(["pointwise", "listwise"]), default="listwise", show_default=True,
              help="Per-head binary cross-entropy, or a softmax over each candidate list.")
@click.option("--layers", type=click.IntRange(0, 48), default=3, show_default=True,
              help="Keep only the first N encoder layers (0: all); fewer layers rerank faster.")
@click.option("--max-length", type=click.IntRange(8, 512), default=None,
              help="Token budget of the user context (default 48); shorter reranks faster.")
@click.option("--lists", type=click.Choice(["validation", "training"]), default="validation", show_default=True,
              help="Learn from the validation period's lists (candidates from models that never saw their labels; "
                   "a fifth held out: half to stop early, half to decide whether it is served), or from decision points "
                   "inside the training period.")
@click.option("--include-seen/--exclude-seen", default=None,
              help="Lists with the user's own items as candidates, or without (default: with for last-basket splits "
                   "only). With them, purchases of items viewed before become training examples.")
@click.option("--fp32", is_flag=True, help="Serve it in fp32 on a CPU too (default: int8 linear layers there).")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: a GPU when there is one).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the training summary as JSON.")
@THREADS
def train_reranker(artifacts: Path, reranker_model, epochs, loss, layers, max_length, lists, include_seen, fp32,
                   device, seed, quiet, as_json, threads) -> None:
    """Fine-tune the click/purchase cross-encoder on the artifact's split and add it."""
    from tqdm.auto import tqdm

    from recsys.device import resolve_device
    from recsys.pipeline import RerankOptions
    from recsys.pipeline import train_reranker as add_reranker
    from recsys.rerank.config import RerankTrainConfig
    from recsys.rerank.model import RerankerConfig
    from recsys.threads import configure

    configure(threads)

    if quiet:
        logging.getLogger("transformers").setLevel(logging.ERROR)
    cfg = RerankerConfig(n_layers=layers, int8_on_cpu=not fp32, **({"max_length": max_length} if max_length else {}))
    opts = RerankOptions(model=reranker_model, config=cfg, lists=lists, include_seen=include_seen,
                         train=RerankTrainConfig(epochs=epochs, loss=loss, seed=seed), device=resolve_device(device))
    fit = add_reranker(artifacts, opts, progress=None if quiet else tqdm.write)
    if as_json:
        click.echo(json.dumps({k: v for k, v in fit.items()}, default=str))
        return
    click.echo(f"reranker added to {artifacts}: validation NDCG@10 {fit['best_valid_ndcg@10']} "
               f"(fused order {fit['fused_valid_ndcg@10']}), {fit['train_lists']} training lists, "
               f"{fit['history'][-1]['seconds'] if fit['history'] else 0:.0f} s of training")
