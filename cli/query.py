"""``recsys query``: recommendations for one user from a built artifact."""

from __future__ import annotations

import json
from pathlib import Path

import click
import polars as pl


@click.command("query")
@click.option("--artifacts", type=click.Path(path_type=Path), default=Path("artifacts/default"), show_default=True,
              help="An artifact folder written by `recsys build-index`.")
@click.option("--user", required=True, help="The user's external id.")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many items.")
@click.option("--include-seen", is_flag=True, help="Keep items the user already interacted with.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def query(artifacts: Path, user: str, k: int, include_seen: bool, as_json: bool) -> None:
    """The ranked list for --user: item id, title, score and where it came from."""
    from recsys.retrieval.retriever import TwoTowerRetriever

    r = TwoTowerRetriever.load(artifacts)
    ids, scores = r.recommend([user], k=k, exclude_seen=not include_seen)
    titles = dict(r.catalog.select("item_id", pl.col("text").fill_null("")).iter_rows())
    items = [
        {"item_id": str(i), "title": titles.get(str(i), ""), "score": round(float(s), 6),
         "provenance": {"two_tower": {"rank": rank, "score": round(float(s), 6)}}}
        for rank, (i, s) in enumerate(zip(ids[0], scores[0]), start=1) if i is not None
    ]
    if as_json:
        click.echo(json.dumps({"user_id": user, "items": items}, ensure_ascii=False))
        return
    click.echo(f"top {len(items)} for user {user}:")
    for rank, item in enumerate(items, start=1):
        click.echo(f"{rank:>3}. {item['item_id']:<12} {item['score']:.4f}  {item['title'][:70]}")
