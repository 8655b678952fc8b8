"""``recsys add-items``: put new products into a built artifact between refreshes, without training.

A new item's vector is what the item tower gives its text alone: the text model's vector
through the trained projection, plus an ID embedding that starts at zero (the same state ID
dropout trained the tower for). The vector is appended to the FAISS index with the index's own
``add`` (an IVF index keeps its trained quantiser), the item id map grows at the end (old ids keep
their indices), and the ALS factors get a zero row (ALS knows nothing of the item until the next
build). Ids already in the artifact are left unchanged and counted; their new text is picked up
by the next build.

The artifact is rewritten atomically: a failure leaves the previous one intact.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from recsys.artifacts import Artifact, ArtifactWriter
from recsys.catalog import item_text
from recsys.errors import ConfigError, DataError
from recsys.prepare import load_prepared_tables

from .als import ALSCandidates
from .charngram import CharNgramEncoder
from .index import VectorIndex
from .model import TwoTower
from .text import text_key
from .warm import transfer

log = logging.getLogger(__name__)


def _encoder(art: Artifact, text_model: str | None, device: str | None):
    if art.has("text/charngram/config.json"):
        return CharNgramEncoder.load(art)
    from .build import _encoder as load

    name = text_model or art.manifest.get("config", {}).get("text_model")
    return load(None if name == "all-MiniLM-L6-v2" else name, device or "cpu")


def add_items(path: str | Path, items: pl.DataFrame, *, text_encoder=None, text_model: str | None = None,
              device: str | None = None, source: str = "items") -> dict:
    """Add the rows of ``items`` (``item_id`` plus the artifact's text fields) whose ids are new.

    ``text_encoder``: an already loaded encoder (else the artifact's own: its fitted char-ngram
    state, or its text model by name, or ``text_model``). Returns what was done.
    """
    art = Artifact.open(path)
    if art.has("text/finetuned.npy"):
        raise ConfigError(f"{path}: built with --finetune-text-layers, whose tuned text layers are not kept; new "
                          "items' text vectors would not match; rebuild with the new items instead")
    if "item_id" not in items.columns:
        raise DataError(f"{source}: missing column 'item_id' (found: {', '.join(items.columns)})")
    t = load_prepared_tables(art)
    old_map, n_old = t["items"], len(t["items"])
    fresh = items.filter(~pl.col("item_id").is_in(pl.Series(old_map.ids.tolist(), dtype=pl.Utf8).implode()))
    result = {"artifact": str(path), "rows": items.height, "added": fresh.height, "already_present": items.height - fresh.height}
    if fresh.height == 0:
        result["items"] = n_old
        return result
    fields = art.manifest.get("data", {}).get("text_fields") or []
    missing = [f for f in fields if f not in fresh.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(map(repr, missing))}; the artifact's item text is made "
                        f"of {', '.join(fields)}: add those columns (empty values are fine)")
    texts = item_text(fresh, fields)
    if texts.fill_null("").str.len_chars().max() == 0:
        raise DataError(f"{source}: none of the new items has any text in the fields {', '.join(fields)}; a new item "
                        "is placed by its text alone, so give each a title (or the catalogue's other text fields)")
    fresh = fresh.with_columns(texts)
    encoder = text_encoder or _encoder(art, text_model, device)
    old_text = art.load_array("text/vectors.npy")
    new_text = encoder.encode(fresh["text"].fill_null("").to_list())
    if new_text.shape[1] != old_text.shape[1]:
        raise ConfigError(f"text model {encoder.name}: {new_text.shape[1]}-d vectors, the artifact's are "
                          f"{old_text.shape[1]}-d; use the text model the artifact was built with "
                          f"({art.manifest.get('config', {}).get('text_model')})")
    text = np.concatenate([old_text, new_text.astype(old_text.dtype)])
    from safetensors.torch import load_file

    old = TwoTower.load(art.file("model/config.json").parent, torch.as_tensor(old_text))
    model = TwoTower(old.cfg, torch.as_tensor(text))
    transfer(model, load_file(str(art.file("model/weights.safetensors"))))  # new ID rows stay at zero
    model.eval()
    with torch.inference_mode():
        new_vecs = torch.nn.functional.normalize(model.items(torch.arange(n_old, len(text))), dim=-1).numpy()
    item_vectors = np.concatenate([art.load_array("index/item_vectors.npy"), new_vecs.astype(np.float32)])
    index = VectorIndex.load(art.file("index/items.faiss"), use_gpu=False)
    index.add(new_vecs)
    items_map = old_map.extend(fresh["item_id"].to_list())
    with ArtifactWriter.update(art) as w:
        items_map.save(w.path("data/items.parquet"))
        w.save_table("data/catalog.parquet", pl.concat([t["catalog"], fresh], how="diagonal_relaxed"))
        keys = art.load_table("text/keys.parquet")["key"].to_list() + [text_key(x) for x in fresh["text"].fill_null("")]
        w.save_table("text/keys.parquet", pl.DataFrame({"key": keys}))
        w.save_array("text/vectors.npy", text)
        model.save(w.path("model/config.json").parent)
        w.save_array("index/item_vectors.npy", item_vectors)
        index.save(w.path("index/items.faiss"))
        if art.has("als/config.json"):
            als = ALSCandidates.load(art.file("als/config.json").parent)
            als.item_factors = np.concatenate([als.item_factors, np.zeros((fresh.height, als.item_factors.shape[1]),
                                                                          als.item_factors.dtype)])
            als.save(w.path("als/config.json").parent)
        if art.has("needs/names.json"):  # each new item serves its nearest need
            from .needs import Needs

            needs = Needs.load(art)
            needs.assign = np.concatenate([needs.assign, (new_vecs @ needs.centroids.T).argmax(axis=1)])
            for n in needs.names:
                n["size"] = int((needs.assign == n["id"]).sum())
            needs.save(w)
        w.manifest["data"] = {**w.manifest.get("data", {}), "items": len(items_map)}
        w.manifest["added_items"] = art.manifest.get("added_items", []) + [
            {"count": fresh.height, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]
    result["items"] = len(items_map)
    log.info("added %d items to %s (%d already present)", fresh.height, path, result["already_present"])
    return result
