"""``recsys needs``: the needs the model predicts for a user next, expressed and latent."""

from __future__ import annotations

import json
from pathlib import Path

import click

from recsys.cli.query import ARTIFACTS, load_engine


@click.command("needs")
@ARTIFACTS
@click.option("--user", required=True, help="The user's external id.")
@click.option("--history", default=None, metavar="ITEM[:EVENT],...",
              help="Fresh events given at query time (they count at once; they serve a new user).")
@click.option("--top", type=click.IntRange(1, 50), default=3, show_default=True, help="Needs of each kind.")
@click.option("--latent-share", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="A need is latent when at most this share of the user's recent events belongs to it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def needs(artifacts: Path, user: str, history: str | None, top: int, latent_share: float, as_json: bool) -> None:
    """The user's likely next needs: those already expressed, and the latent ones (likely next, barely
    present in the history), each with its probability and the history items that point to it."""
    from recsys.retrieval.needs import user_needs

    rec, user_ids = load_engine(artifacts, rerank=False)
    fresh = rec.parse_history(history) if history else []
    out = user_needs(rec, user_ids(user), fresh, top=top, latent_share=latent_share)
    out["user_id"] = user
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False))
        return
    click.echo(f"user {user}: {out['history_events']} recent events, {out['needs']} needs in the catalogue")
    for kind in ("expressed", "latent"):
        click.echo(f"{kind} needs:")
        for n in out[kind]:
            pointing = "; ".join(f"{p['title'] or p['item_id']} ({p['similarity']:.2f})" for p in n["pointing"])
            click.echo(f"  {n['probability']:.3f}  {n['name']}  (history share {n['history_share']:.0%}; "
                       f"e.g. {', '.join(n['examples'][:2])}; pointed to by: {pointing})")
