"""Privacy: pseudonymised user ids (a keyed hash).

- ``--hash-user-ids``: user ids are replaced by ``HMAC-SHA256(key, id)`` (hex, 32 characters)
  before anything is stored — in the artifact (build-index) and in the event store (serve). The
  key comes from ``$RECSYS_ID_KEY`` and is never written anywhere; the manifest records only
  that ids are hashed and a fingerprint of the key, so that a mismatched key is caught.

Forgetting a user is an artifact operation: see :mod:`recsys.pipeline.forget`.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import polars as pl

from .errors import ConfigError

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
    """The keyed hash (HMAC-SHA256) of ``user_id``, its first 32 hex digits.

    >>> pseudonymise("u1", b"0123456789abcdef")[:8], len(pseudonymise("u1", b"0123456789abcdef"))
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

    @property
    def hashed(self) -> bool:
        """True when the artifact stores pseudonyms: stored ids cannot be typed back in."""
        return self.key is not None

    def __call__(self, user_id: str) -> str:
        return pseudonymise(user_id, self.key) if self.key else str(user_id)
