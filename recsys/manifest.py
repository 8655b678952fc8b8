"""An artifact's manifest, checked before anything it lists is read, and optionally signed.

- :func:`validate`: the manifest is an object whose fields have the types they must
  (``schema_version``, ``created_at``, ``config``, ``files`` with a sha256 and a size for each), and
  whose file names stay inside the artifact folder (no absolute path, no ``..``). Each problem is
  one :class:`~recsys.errors.ArtifactError` naming the field.
- :func:`sign` / :func:`check_signature`: with ``$RECSYS_ARTIFACT_KEY`` set, a build writes an
  HMAC-SHA256 of the manifest (which holds every file's sha256) into it, and loading refuses an
  artifact whose signature is missing or wrong: an artifact edited and re-hashed by someone without
  the key is caught, not only a damaged one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
from pathlib import Path, PurePosixPath

from .errors import ArtifactError

KEY_ENV = "RECSYS_ARTIFACT_KEY"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
CREATED = "%Y-%m-%dT%H:%M:%SZ"


def validate(m, path: Path) -> dict:
    """``m`` when it is a well-formed manifest of the artifact at ``path``; else an ArtifactError."""
    fix = "rebuild the artifact"
    if not isinstance(m, dict):
        raise ArtifactError(f"{path}: the manifest is a JSON {type(m).__name__}, not an object; {fix}")
    for key, kind in (("schema_version", int), ("created_at", str), ("config", dict), ("files", dict)):
        if not isinstance(m.get(key), kind) or isinstance(m.get(key), bool):
            raise ArtifactError(f"{path}: manifest field {key!r} is missing or not a {kind.__name__}; {fix}")
    for key in ("created_at", "built_at"):
        try:
            if key in m:
                dt.datetime.strptime(str(m[key]), CREATED)
        except ValueError:
            raise ArtifactError(f"{path}: manifest field {key!r} {str(m[key])[:40]!r} is not a time like "
                                f"2026-01-31T12:00:00Z; {fix}") from None
    for name, meta in m["files"].items():
        where = f"{path}: manifest file {name[:120]!r}"
        parts = PurePosixPath(name).parts
        if not name or name.startswith(("/", "\\")) or ".." in parts or "\\" in name or ":" in name:
            raise ArtifactError(f"{where}: not a path inside the artifact folder; {fix}")
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) or not SHA256.match(meta["sha256"]):
            raise ArtifactError(f"{where}: no sha256 (64 hex digits) recorded for it; {fix}")
        if not isinstance(meta.get("bytes"), int) or meta["bytes"] < 0:
            raise ArtifactError(f"{where}: no size recorded for it; {fix}")
    return m


def _key() -> bytes | None:
    key = os.environ.get(KEY_ENV, "")
    return key.encode() if key else None


def _digest(m: dict, key: bytes) -> str:
    body = json.dumps({k: v for k, v in m.items() if k != "signature"}, sort_keys=True, default=str).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def sign(m: dict) -> dict:
    """``m`` with its HMAC-SHA256 signature when ``$RECSYS_ARTIFACT_KEY`` is set (else as is)."""
    key = _key()
    if key is None:
        return m
    if len(key) < 16:
        raise ArtifactError(f"${KEY_ENV}: give a secret of at least 16 characters to sign artifacts with")
    return {**m, "signature": {"hmac-sha256": _digest(m, key),
                               "key": hashlib.sha256(b"recsys-artifact-key:" + key).hexdigest()[:12]}}


def check_signature(m: dict, path: Path) -> None:
    """With ``$RECSYS_ARTIFACT_KEY`` set, the manifest must carry a signature made with that key."""
    key = _key()
    if key is None:
        return
    sig = m.get("signature")
    if not isinstance(sig, dict) or not isinstance(sig.get("hmac-sha256"), str):
        raise ArtifactError(f"{path}: the artifact is not signed, and ${KEY_ENV} asks for signed artifacts; "
                            f"rebuild it with ${KEY_ENV} set")
    if not hmac.compare_digest(sig["hmac-sha256"], _digest(m, key)):
        raise ArtifactError(f"{path}: the manifest's signature does not match (the artifact was changed after it "
                            f"was signed, or signed with another key); rebuild it with this ${KEY_ENV}")
