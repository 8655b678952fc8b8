"""``recsys evaluate``: score a built artifact on its stored held-out split and print the funnel."""

from __future__ import annotations

import json
from pathlib import Path

import click

from recsys.cli.options import THREADS
from recsys.defaults import DEFAULT_ARTIFACTS, RERANK_DEPTH
from recsys.errors import ConfigError


def parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        ks = ()
    if not ks or ks[0] < 1:
        raise ConfigError(f"--k {text!r}: give positive cut-offs separated by commas, e.g. 10,20,100")
    return ks


@click.command("evaluate")
@click.option("--artifacts", type=click.Path(path_type=Path), default=DEFAULT_ARTIFACTS, show_default=True,
              help="An artifact folder written by `recsys build-index` with a held-out split.")
@click.option("--k", "ks", default="10,20,100", show_default=True, help="Cut-offs, comma-separated.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: a GPU when there is one).")
@click.option("--no-rerank", is_flag=True, help="Leave the reranker out (the fused list is final).")
@click.option("--rerank-depth", type=click.IntRange(1, 10_000), default=RERANK_DEPTH, show_default=True,
              help="How many fused candidates the reranker reorders.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--save/--no-save", default=True, show_default=True,
              help="Keep the result in the artifact (evaluation.json, shown on `recsys serve`'s model page).")
@THREADS
def evaluate(artifacts: Path, ks: str, device: str | None, no_rerank: bool, rerank_depth: int, as_json: bool,
             save: bool, threads: int | None) -> None:
    """Recall@N of each candidate source and of the fused list, NDCG@k / Recall@k of the final
    list, with paired bootstrap 95% intervals for the differences (full-catalogue ranking)."""
    from recsys.artifacts import Artifact
    from recsys.eval.funnel import funnel_table
    from recsys.pipeline import evaluate_artifact, store_evaluation
    from recsys.threads import configure

    configure(threads)

    cut = parse_ks(ks)
    art = Artifact.open(artifacts)
    f = evaluate_artifact(art, cut, device, rerank=not no_rerank, rerank_depth=rerank_depth)
    if save:
        store_evaluation(artifacts, f, {"ks": list(cut), "rerank": not no_rerank, "rerank_depth": rerank_depth})
    if as_json:
        click.echo(json.dumps({"artifacts": str(artifacts), **f.to_dict()}))
        return
    seen = "kept" if f.include_seen else "excluded"
    click.echo(f"{artifacts}: {f.task.protocol} split, {f.task.users.size} test users, seen items {seen}\n")
    click.echo(funnel_table(f))
