"""Artifact folders: written atomically, described by a manifest, verified on load.

A build writes into a hidden temporary folder beside the target; only :meth:`ArtifactWriter.commit`
moves it into place, after writing ``manifest.json`` with every file's sha256. A build that
fails (or is killed) leaves the previous artifact untouched. Nothing is stored or loaded with
pickle: arrays are ``.npy`` (``allow_pickle=False``), tables Parquet, the rest JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from . import __version__, layout
from .errors import ArtifactError
from .manifest import check_signature, sign, validate

log = logging.getLogger(__name__)

SCHEMA_VERSION = layout.SCHEMA_VERSION
MANIFEST = layout.MANIFEST
_PACKAGES = ("numpy", "scipy", "polars", "pyarrow", "torch", "transformers", "faiss-cpu", "faiss-gpu",
             "implicit", "lightgbm", "click", "safetensors")


def package_versions() -> dict[str, str]:
    """Versions of Python and the installed packages the engine uses (no imports needed)."""
    out = {"python": platform.python_version(), "recsys": __version__}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine_info(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, Any]:
    """The machine a build ran on: the platform, the CPU's model and widest vector instructions,
    and its CPU count. Floating-point kernels differ between CPUs, so the same data, settings and
    packages can give models that differ in their last bits (and fusion's close choices with them);
    this says where an artifact's figures came from. ``cpuinfo``: Linux's CPU description (absent
    elsewhere: the model is then ``platform.processor()``)."""
    fields: dict[str, str] = {}
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first CPU's
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or platform.machine()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    simd = next((name for name, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("sve", "sve"), ("neon", "asimd"))
                 if flag in flags), None)
    return {"platform": platform.platform(), "arch": platform.machine(), "cpu": model, "simd": simd,
            "cpus": os.cpu_count()}


def machine_line(info: dict[str, Any]) -> str:
    """:func:`machine_info` in the words a benchmark table's heading gives it (older results without
    the architecture or the vector instructions read without them).

    >>> machine_line({"arch": "x86_64", "cpus": 2, "cpu": "Intel(R) Xeon(R) Gold 6338", "simd": "avx512"})
    'x86_64, 2 CPUs (Intel(R) Xeon(R) Gold 6338, avx512)'
    >>> machine_line({"cpus": 16, "cpu": "Neoverse-V2", "simd": None})
    '16 CPUs (Neoverse-V2, no known vector extension)'
    """
    head = ", ".join(str(x) for x in (info.get("arch"), f"{info.get('cpus')} CPUs") if x)
    return f"{head} ({info.get('cpu')}, {info.get('simd') or 'no known vector extension'})"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def frame_fingerprint(df: pl.DataFrame) -> str:
    """A sha256 of a frame's content (column names, types and values, in row order)."""
    h = hashlib.sha256()
    h.update(json.dumps({c: str(t) for c, t in df.schema.items()}).encode())
    for start in range(0, df.height, 1_000_000):
        h.update(df.slice(start, 1_000_000).write_csv(include_header=False).encode())
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ArtifactWriter:
    """Write an artifact folder atomically.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> with ArtifactWriter(root / "model", config={"k": 1}, seed=0) as w:
    ...     w.save_json("hello.json", {"a": 1})
    >>> Artifact.open(root / "model").load_json("hello.json")
    {'a': 1}
    """

    def __init__(self, out_dir: str | Path, *, config: dict | None = None, seed: int | None = None,
                 data: dict | None = None, cleaning: dict | None = None, kind: str = "recsys"):
        self.out_dir = Path(out_dir).absolute()
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ArtifactError(f"--out {out_dir}: exists and is not a folder; choose a folder path")
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self._clean_stale()
        self.tmp = self.out_dir.parent / f".{self.out_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self.manifest: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "kind": kind, "config": config or {}, "seed": seed,
            "data": data or {}, "cleaning": cleaning, "extra": {},
        }
        self.committed = False

    def _clean_stale(self) -> None:
        """Remove temporary folders left by builds that were killed (their process is gone)."""
        for p in self.out_dir.parent.glob(f".{self.out_dir.name}.tmp-*"):
            try:
                pid = int(p.name.rsplit(".tmp-", 1)[1].split("-")[0])
                os.kill(pid, 0)
            except ProcessLookupError:
                shutil.rmtree(p, ignore_errors=True)
            except (ValueError, PermissionError, IndexError):
                continue

    def path(self, name: str) -> Path:
        """Where to write file ``name`` (may contain sub-folders) inside the pending artifact."""
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def save_array(self, name: str, array: np.ndarray) -> None:
        if np.asarray(array).dtype == object:
            raise ArtifactError(f"{name}: object arrays would need pickle; store strings in a table instead")
        np.save(self.path(name), np.asarray(array), allow_pickle=False)

    def save_table(self, name: str, df: pl.DataFrame) -> None:
        df.write_parquet(self.path(name), statistics=False)

    def save_json(self, name: str, obj: Any) -> None:
        self.path(name).write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    @classmethod
    def update(cls, art: Artifact, config: dict | None = None, skip: str | None = None) -> ArtifactWriter:
        """A writer that replaces ``art`` atomically, starting from a copy of its files (those under
        the folder ``skip`` left out) and its manifest's config, seed, data and cleaning."""
        m = art.manifest
        w = cls(art.path, config=config if config is not None else m.get("config"), seed=m.get("seed"),
                data=m.get("data"), cleaning=m.get("cleaning"))
        w.manifest["built_at"] = m.get("built_at", m.get("created_at"))  # a rewrite does not learn newer events
        for name in m.get("files", {}):
            if not (skip and name.startswith(skip.rstrip("/") + "/")):
                shutil.copy2(art.path / name, w.path(name))
        return w

    def pending(self) -> Artifact:
        """A read view of the files written so far (not yet committed, not verified)."""
        files = {p.relative_to(self.tmp).as_posix(): {} for p in self.tmp.rglob("*") if p.is_file()}
        return Artifact(self.tmp, {**self.manifest, "files": files})

    def commit(self) -> Path:
        files = {}
        for p in sorted(self.tmp.rglob("*")):
            if p.is_file() and p.name != MANIFEST:
                files[p.relative_to(self.tmp).as_posix()] = {"sha256": file_sha256(p), "bytes": p.stat().st_size}
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.manifest.update(files=files, packages=package_versions(), machine=machine_info(), created_at=now)
        self.manifest.setdefault("built_at", now)  # when the models learnt their data: kept by rewrites
        self.manifest.pop("signature", None)
        self.manifest = sign(self.manifest)
        (self.tmp / MANIFEST).write_text(json.dumps(self.manifest, indent=2, sort_keys=True, default=str) + "\n")
        for p in self.tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        _fsync_dir(self.tmp)
        old = None
        if self.out_dir.exists():
            old = self.out_dir.parent / f".{self.out_dir.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.replace(self.out_dir, old)
        os.replace(self.tmp, self.out_dir)
        _fsync_dir(self.out_dir.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self.committed = True
        log.info("artifact written to %s (%d files)", self.out_dir, len(files))
        return self.out_dir

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self.committed:
            self.commit()
        elif exc_type is not None:
            self.abort()


def _recover(path: Path) -> None:
    """If a commit was interrupted between its two renames, put the previous artifact back."""
    if path.exists():
        return
    olds = sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds:
        os.replace(olds[-1], path)
        log.warning("restored %s from an interrupted build", path)


class Artifact:
    """A verified, read-only artifact folder."""

    def __init__(self, path: Path, manifest: dict):
        self.path, self.manifest = path, manifest

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> Artifact:
        path = Path(path)
        _recover(path)
        if not path.is_dir():
            raise ArtifactError(f"{path}: no artifact folder here; build one with `recsys build-index --out {path}`")
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise ArtifactError(f"{path}: no {MANIFEST}; this is not a recsys artifact (rebuild it)")
        try:
            manifest = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
            raise ArtifactError(f"{mpath}: unreadable manifest ({e.msg if hasattr(e, 'msg') else e}); rebuild the artifact") from None
        version = manifest.get("schema_version") if isinstance(manifest, dict) else None
        if isinstance(manifest, dict) and version != SCHEMA_VERSION:
            raise ArtifactError(
                f"{path}: artifact schema version {version}, this recsys {__version__} reads version "
                f"{SCHEMA_VERSION}; rebuild it with this version"
            )
        validate(manifest, path)
        check_signature(manifest, path)
        art = cls(path, manifest)
        if verify:
            art.verify()
        return art

    def verify(self) -> None:
        root = self.path.resolve()
        for name, meta in self.manifest.get("files", {}).items():
            p = self.path / name
            if not p.resolve().is_relative_to(root):  # a link out of the folder
                raise ArtifactError(f"{self.path}: file {name} lies outside the artifact folder; rebuild the artifact")
            if not p.is_file():
                raise ArtifactError(f"{self.path}: file {name} listed in the manifest is missing; rebuild the artifact")
            if file_sha256(p) != meta["sha256"]:
                raise ArtifactError(
                    f"{self.path}: checksum mismatch for {name} (the file was changed or is corrupt); rebuild the artifact"
                )

    def file(self, name: str) -> Path:
        if name not in self.manifest.get("files", {}):
            raise ArtifactError(f"{self.path}: has no file {name}; rebuild it with a recsys that writes it")
        return self.path / name

    def has(self, name: str) -> bool:
        return name in self.manifest.get("files", {})

    def load_array(self, name: str, mmap: bool = False) -> np.ndarray:
        try:
            return np.load(self.file(name), allow_pickle=False, mmap_mode="r" if mmap else None)
        except ValueError as e:  # object arrays (they would need pickle) and malformed files
            raise ArtifactError(f"{self.path}: {name} is not a plain array file ({str(e)[:80]}); rebuild the "
                                "artifact") from None

    def load_table(self, name: str) -> pl.DataFrame:
        return pl.read_parquet(self.file(name))

    def load_json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text())
