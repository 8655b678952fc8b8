"""``recsys add-items``: add new products to a built artifact from their text, without training."""

from __future__ import annotations

import json
from pathlib import Path

import click

from recsys.io import parse_mapping


@click.command("add-items")
@click.option("--artifacts", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="An artifact folder written by `recsys build-index`.")
@click.option("--items", "items_path", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True,
              help="Catalog file of the new items: item_id plus the text fields the artifact was built with.")
@click.option("--items-map", multiple=True, metavar="COL=FILE_COL", help="Map a catalog column to a file column.")
@click.option("--text-model", default=None,
              help="The text model, when the artifact's cannot be loaded by the name it recorded.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def add_items(artifacts: Path, items_path: Path, items_map, text_model, as_json) -> None:
    """Compute the new items' vectors from their text and add them to the index (atomically).

    Ids already in the artifact are left unchanged (the next build picks up changed texts).
    """
    from recsys.io import load_items
    from recsys.pipeline import add_items as run

    items = load_items(items_path, mapping=parse_mapping(items_map, "--items-map"))
    out = run(artifacts, items, text_model=text_model, source=str(items_path))
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"added {out['added']} items to {artifacts} ({out['already_present']} already present, left "
               f"unchanged); the index now holds {out['items']:,} items")
