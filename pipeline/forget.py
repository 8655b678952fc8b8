"""Forgetting a user in a built artifact (``recsys forget``; the event store is the service's part).

The user's rows leave the artifact's event tables, the id map keeps a tombstone at the user's
index (no other index moves), and every source drops what it keeps about the user (ALS: the
user's factors are zeroed). The two-tower model holds no per-user weights (the user vector is
computed from the history at query time). Then every other file is scrubbed of the id
(:func:`scrub_files`): rows that name the user leave every other table and every JSON document
(the cleaning report's examples in the manifest, the build summary, ...), and a string that is
the id is replaced. The artifact is rewritten atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from recsys import layout
from recsys.errors import DataError
from recsys.idmap import IDMap
from recsys.retrieval.recommender import load_sources
from recsys.sources import Space

from .stages import open_context, run

FORGOTTEN = "__forgotten"
ASSETS = tuple(f"{folder}/" for folder in (layout.under(layout.RERANKER, layout.RERANKER_BERT),  # model files and
                                          layout.under(layout.RERANKER, layout.RERANKER_TOKENIZER),  # vocabularies:
                                          layout.CHARNGRAM))  # no user data
_DROP = object()


def _names_user(key) -> bool:
    return isinstance(key, str) and "user" in key.lower()


def scrub(obj, ids: frozenset[str], user_field: bool = False):
    """``obj`` (decoded JSON) without ``ids`` where a field named for users holds them (or a cleaning
    rule's ``flagged`` list when its ``flags`` are users): a record (an object of plain values) whose
    user field is one leaves its list; any other such value becomes ``"__forgotten"``. Fields not
    named for users are left alone (an item may share a user's id).

    >>> scrub({"examples": [{"user_id": "7", "item_id": "7"}, {"user_id": "8", "item_id": "7"}],
    ...        "top_users": ["7", "9"], "items": ["7"]}, frozenset({"7"}))
    {'examples': [{'item_id': '7', 'user_id': '8'}], 'items': ['7'], 'top_users': ['__forgotten', '9']}
    """
    if isinstance(obj, str):
        return FORGOTTEN if user_field and obj in ids else obj
    if isinstance(obj, list):
        out = [scrub(v, ids, user_field) for v in obj]
        return [v for v in out if v is not _DROP]
    if isinstance(obj, dict):
        plain = all(not isinstance(v, (dict, list)) for v in obj.values())
        if plain and any(_names_user(k) and v in ids for k, v in obj.items() if isinstance(v, str)):
            return _DROP
        users = {k for k in obj if _names_user(k)} | ({"flagged"} if obj.get("flags") == "users" else set())
        out = {k: scrub(v, ids, user_field or k in users) for k, v in sorted(obj.items())}
        return {k: v for k, v in out.items() if v is not _DROP}
    return obj


def scrub_files(folder: Path, ids: frozenset[str], skip: set[str]) -> list[str]:
    """Scrub ``ids`` from every JSON document, table column and string array named for users under
    ``folder`` (but the files in ``skip`` and the model assets); returns the files changed."""
    changed = []
    for p in sorted(folder.rglob("*")):
        name = p.relative_to(folder).as_posix()
        if not p.is_file() or name in skip or name.startswith(ASSETS):
            continue
        if p.suffix == ".json":
            before = json.loads(p.read_text())
            after = scrub(before, ids)
            if after != scrub(before, frozenset()):  # (key order aside) the file held an id
                p.write_text(json.dumps(after, indent=2, sort_keys=True) + "\n")
                changed.append(name)
        elif p.suffix == ".parquet":
            df = pl.read_parquet(p)
            cols = [c for c, t in df.schema.items() if t == pl.Utf8 and _names_user(c)]
            hit = pl.any_horizontal([pl.col(c).is_in(list(ids)).fill_null(False) for c in cols]) if cols else None
            if hit is not None and df.select(hit.any()).item():
                df.filter(~hit).write_parquet(p, statistics=False)
                changed.append(name)
        elif p.suffix == ".npy" and _names_user(p.name):
            a = np.load(p, allow_pickle=False)
            if a.dtype.kind in "US" and np.isin(a, list(ids)).any():
                np.save(p, np.where(np.isin(a, list(ids)), FORGOTTEN, a).astype(a.dtype), allow_pickle=False)
                changed.append(name)
    return changed


def forget_in_artifact(path, stored_id: str, raw_id: str | None = None) -> dict:
    """Remove ``stored_id``'s rows from the artifact at ``path`` and scrub it (and ``raw_id``, the
    id as the input files held it, when user ids are hashed) from every file; returns the user's
    index, the rows removed and the files scrubbed."""
    ctx = open_context(path)
    art = ctx.pending()
    try:
        t = ctx.tables()
        users = t["users"]
        idx = users.to_internal([stored_id], missing="ignore")[0]
        if idx < 0:
            raise DataError(f"--user {stored_id!r}: not in the artifact at {path} (already forgotten, or never seen)")
        w = ctx.writer
        removed = {}
        for part in layout.SPLIT_PARTS:
            kept = t[part].filter(pl.col("user_id") != stored_id)
            removed[part] = t[part].height - kept.height
            w.save_table(layout.split_table(part), kept)
        ids = users.ids.copy()
        ids[idx] = f"__forgotten_{idx}"
        IDMap(ids, kind="user").save(w.path(layout.USERS))
        space = Space(len(users), len(t["items"]), t["weights"], t["value_kind"])
        for name, src in load_sources(art, space).items():
            if src.forget(int(idx)):
                src.save(w.path(layout.under(layout.source_dir(name), layout.FIT)).parent)
        ids = frozenset(i for i in (stored_id, raw_id) if i)
        keep = {layout.USERS, *(layout.split_table(part) for part in layout.SPLIT_PARTS)}
        scrubbed = scrub_files(w.tmp, ids, keep)
        w.manifest["cleaning"] = scrub(w.manifest.get("cleaning"), ids)
        w.manifest["forgotten_users"] = art.manifest.get("forgotten_users", 0) + 1
    except BaseException:
        ctx.writer.abort()
        raise
    run(ctx, ["write"])
    return {"user_index": int(idx), "rows_removed": removed, "files_scrubbed": scrubbed}
