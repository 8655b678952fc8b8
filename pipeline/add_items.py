"""``recsys add-items``: put new products into a built artifact between refreshes, without training.

A new item's vector is what the item tower gives its text alone: the text model's vector
through the trained projection, plus an ID embedding that starts at zero (the same state ID
dropout trained the tower for). The vector is appended to the FAISS index with the index's own
``add`` (an IVF index keeps its trained quantiser), the item id map grows at the end (old ids keep
their indices), each source makes room for the new items (ALS: zero factor rows, as it knows
nothing of them until the next build), and each new item joins its nearest need. Ids already in
the artifact are left unchanged and counted; their new text is picked up by the next build.

The artifact is rewritten atomically (a context from :func:`.stages.open_context`, committed by
the write stage): a failure leaves the previous one intact.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from recsys import layout
from recsys.catalog import item_text
from recsys.errors import ConfigError, DataError
from recsys.retrieval.index import VectorIndex
from recsys.retrieval.model import TwoTower
from recsys.retrieval.needs import Needs
from recsys.retrieval.recommender import load_sources
from recsys.retrieval.text import text_key
from recsys.retrieval.warm import transfer
from recsys.sources import Space

from .stages import BuildContext, open_context, run
from .text import artifact_encoder

log = logging.getLogger(__name__)


def add_items_stage(ctx: BuildContext, items: pl.DataFrame, encoder, source: str) -> dict:
    """Add the rows of ``items`` whose ids are new to the pending artifact of ``ctx``."""
    art = ctx.pending()
    t = ctx.tables()
    old_map, n_old = t["items"], len(t["items"])
    fresh = items.filter(~pl.col("item_id").is_in(pl.Series(old_map.ids.tolist(), dtype=pl.Utf8).implode()))
    result = {"rows": items.height, "added": fresh.height, "already_present": items.height - fresh.height,
              "items": n_old}
    if fresh.height == 0:
        return result
    fields = art.manifest.get("data", {}).get("text_fields") or []
    if not fields:
        raise DataError(f"{source}: the artifact was built without item text (no catalogue fields), and a "
                        "new item is placed by its text alone; rebuild it with a catalogue (--items FILE, or "
                        "--items-from-events COLUMNS), then add items")
    missing = [f for f in fields if f not in fresh.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(map(repr, missing))}; the artifact's item text is made "
                        f"of {', '.join(fields)}: add those columns (empty values are fine)")
    texts = item_text(fresh, fields)
    if texts.fill_null("").str.len_chars().max() == 0:
        raise DataError(f"{source}: none of the new items has any text in the fields {', '.join(fields)}; a new item "
                        "is placed by its text alone, so give each a title (or the catalogue's other text fields)")
    fresh = fresh.with_columns(texts)
    encoder = encoder or artifact_encoder(art)
    old_text = art.load_array(layout.TEXT_VECTORS)
    new_text = encoder.encode(fresh["text"].fill_null("").to_list())
    if new_text.shape[1] != old_text.shape[1]:
        raise ConfigError(f"text model {encoder.name}: {new_text.shape[1]}-d vectors, the artifact's are "
                          f"{old_text.shape[1]}-d; use the text model the artifact was built with "
                          f"({art.manifest.get('config', {}).get('text_model')})")
    text = np.concatenate([old_text, new_text.astype(old_text.dtype)])
    old = TwoTower.load(art.file(layout.MODEL_CONFIG).parent, torch.as_tensor(old_text))
    model = TwoTower(old.cfg, torch.as_tensor(text))
    transfer(model, old.state_dict())  # new ID rows stay at zero
    model.fit_info = old.fit_info
    model.eval()
    with torch.inference_mode():
        new_vecs = torch.nn.functional.normalize(model.items(torch.arange(n_old, len(text))), dim=-1).numpy()
    item_vectors = np.concatenate([art.load_array(layout.ITEM_VECTORS), new_vecs.astype(np.float32)])
    index = VectorIndex.load(art.file(layout.INDEX_FILE), use_gpu=False)
    index.add(new_vecs)
    items_map = old_map.extend(fresh["item_id"].to_list())
    space = Space(len(t["users"]), n_old, t["weights"], t["value_kind"])
    w = ctx.writer
    for name, src in load_sources(art, space, model=old, index=index).items():
        if src.add_items(fresh.height):
            src.save(w.path(layout.under(layout.source_dir(name), layout.FIT)).parent)
    items_map.save(w.path(layout.ITEMS))
    w.save_table(layout.CATALOG, pl.concat([t["catalog"], fresh], how="diagonal_relaxed"))
    keys = art.load_table(layout.TEXT_KEYS)["key"].to_list() + [text_key(x) for x in fresh["text"].fill_null("")]
    w.save_table(layout.TEXT_KEYS, pl.DataFrame({"key": keys}))
    w.save_array(layout.TEXT_VECTORS, text)
    model.save(w.path(layout.MODEL_CONFIG).parent)
    w.save_array(layout.ITEM_VECTORS, item_vectors)
    index.save(w.path(layout.INDEX_FILE))
    if art.has(layout.NEEDS_NAMES):  # each new item serves its nearest need
        needs = Needs.load(art)
        needs.assign = np.concatenate([needs.assign, (new_vecs @ needs.centroids.T).argmax(axis=1)])
        for n in needs.names:
            n["size"] = int((needs.assign == n["id"]).sum())
        needs.save(w)
    w.manifest["data"] = {**w.manifest.get("data", {}), "items": len(items_map)}
    w.manifest["added_items"] = art.manifest.get("added_items", []) + [
        {"count": fresh.height, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]
    result["items"] = len(items_map)
    return result


def add_items(path: str | Path, items: pl.DataFrame, *, text_encoder=None, text_model: str | None = None,
              device: str | None = None, source: str = "items") -> dict:
    """Add the rows of ``items`` (``item_id`` plus the artifact's text fields) whose ids are new.

    ``text_encoder``: an already loaded encoder (else the artifact's own: its fitted char-ngram
    state, or its text model by name, or ``text_model``). Returns what was done.
    """
    if "item_id" not in items.columns:
        raise DataError(f"{source}: missing column 'item_id' (found: {', '.join(items.columns)})")
    ctx = open_context(path)
    art = ctx.pending()
    if art.has(layout.TEXT_FINETUNED):
        ctx.writer.abort()
        raise ConfigError(f"{path}: built with --finetune-text-layers, whose tuned text layers are not kept; new "
                          "items' text vectors would not match; rebuild with the new items instead")
    try:
        encoder = text_encoder or artifact_encoder(art, text_model, device or "cpu")
        result = {"artifact": str(path), **add_items_stage(ctx, items, encoder, source)}
    except BaseException:
        ctx.writer.abort()
        raise
    if result["added"] == 0:
        ctx.writer.abort()
        return result
    run(ctx, ["write"])
    log.info("added %d items to %s (%d already present)", result["added"], path, result["already_present"])
    return result
