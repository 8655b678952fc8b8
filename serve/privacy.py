"""Privacy: pseudonymised user ids (a keyed hash) and forgetting a user.

- ``--hash-user-ids``: user ids are replaced by ``HMAC-SHA256(key, id)`` (hex, 32 characters)
  before anything is stored — in the artifact (build-index) and in the event store (serve). The
  key comes from ``$RECSYS_ID_KEY`` and is never written anywhere; the manifest records only
  that ids are hashed and a fingerprint of the key, so that a mismatched key is caught.
- :func:`forget_in_artifact`: the user's rows leave the artifact's event tables, the id map
  keeps a tombstone at the user's index (no other index moves), and the user's ALS factors are
  zeroed. The two-tower model holds no per-user weights (the user vector is computed from the
  history at query time), so nothing else in the artifact describes the user.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import numpy as np
import polars as pl

from recsys.errors import ConfigError, DataError

KEY_ENV = "RECSYS_ID_KEY"


def load_key() -> bytes:
    key = os.environ.get(KEY_ENV, "")
    if len(key) < 16:
        raise ConfigError(f"--hash-user-ids: set ${KEY_ENV} to a secret of at least 16 characters (it is the key of "
                          "the keyed hash; keep it, the same key must serve the artifact)")
    return key.encode()


def key_fingerprint(key: bytes) -> str:
    return hashlib.sha256(b"recsys-key-fingerprint:" + key).hexdigest()[:12]


def pseudonymise(user_id: str, key: bytes) -> str:
    """>>> pseudonymise("u1", b"0123456789abcdef")[:8], len(pseudonymise("u1", b"0123456789abcdef"))
    ('5162bddb', 32)
    """
    return hmac.new(key, str(user_id).encode(), hashlib.sha256).hexdigest()[:32]


def pseudonymise_frame(events: pl.DataFrame, key: bytes) -> pl.DataFrame:
    return events.with_columns(pl.col("user_id").map_elements(lambda u: pseudonymise(u, key), return_dtype=pl.Utf8))


class UserIds:
    """The artifact's way of naming users: plain, or hashed with the key from ``$RECSYS_ID_KEY``."""

    def __init__(self, manifest: dict):
        hashed = manifest.get("config", {}).get("user_ids")
        self.key = None
        if hashed:
            self.key = load_key()
            if key_fingerprint(self.key) != hashed.get("key_fingerprint"):
                raise ConfigError(f"${KEY_ENV}: not the key this artifact's user ids were hashed with (fingerprint "
                                  f"{hashed.get('key_fingerprint')}); set the same key")

    def __call__(self, user_id: str) -> str:
        return pseudonymise(user_id, self.key) if self.key else str(user_id)


def forget_in_artifact(path, stored_id: str) -> dict:
    """Remove ``stored_id``'s rows from the artifact at ``path`` (rewritten atomically)."""
    from recsys.artifacts import Artifact, ArtifactWriter
    from recsys.idmap import IDMap

    art = Artifact.open(path)
    users = IDMap.load(art.file("data/users.parquet"), kind="user")
    idx = users.to_internal([stored_id], missing="ignore")[0]
    if idx < 0:
        raise DataError(f"--user {stored_id!r}: not in the artifact at {path} (already forgotten, or never seen)")
    removed = {}
    with ArtifactWriter.update(art) as w:
        for name in ("train", "valid", "test"):
            t = art.load_table(f"data/{name}.parquet")
            kept = t.filter(pl.col("user_id") != stored_id)
            removed[name] = t.height - kept.height
            w.save_table(f"data/{name}.parquet", kept)
        ids = users.ids.copy()
        ids[idx] = f"__forgotten_{idx}"
        IDMap(ids, kind="user").save(w.path("data/users.parquet"))
        for folder in ("als",):
            if art.has(f"{folder}/user_factors.npy"):
                factors = art.load_array(f"{folder}/user_factors.npy").copy()
                factors[idx] = 0.0
                np.save(w.path(f"{folder}/user_factors.npy"), factors, allow_pickle=False)
                counts = art.load_array(f"{folder}/user_event_counts.npy").copy()
                counts[idx] = 0
                np.save(w.path(f"{folder}/user_event_counts.npy"), counts, allow_pickle=False)
        w.manifest["forgotten_users"] = art.manifest.get("forgotten_users", 0) + 1
    return {"user_index": int(idx), "rows_removed": removed}
