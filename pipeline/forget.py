"""Forgetting a user in a built artifact (``recsys forget``; the event store is the service's part).

The user's rows leave the artifact's event tables, the id map keeps a tombstone at the user's
index (no other index moves), and every source drops what it keeps about the user (ALS: the
user's factors are zeroed). The two-tower model holds no per-user weights (the user vector is
computed from the history at query time). The artifact is rewritten atomically.
"""

from __future__ import annotations

import polars as pl

from recsys import layout
from recsys.errors import DataError
from recsys.idmap import IDMap
from recsys.retrieval.recommender import load_sources
from recsys.sources import Space

from .stages import open_context, run


def forget_in_artifact(path, stored_id: str) -> dict:
    """Remove ``stored_id``'s rows from the artifact at ``path``; returns its index and the rows removed."""
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
        w.manifest["forgotten_users"] = art.manifest.get("forgotten_users", 0) + 1
    except BaseException:
        ctx.writer.abort()
        raise
    run(ctx, ["write"])
    return {"user_index": int(idx), "rows_removed": removed}
