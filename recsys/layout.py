"""Every file of an artifact folder, named once.

An artifact is a folder written atomically by :class:`~recsys.artifacts.ArtifactWriter`::

    manifest.json              schema version, config, data fingerprint, seed, packages, every file's sha256
    summary.json               what the build measured (stage times, validation scores, reranker fit)
    fusion.json                fusion weights chosen on the validation stage, per serving mode
    evaluation.json            the funnel `recsys evaluate` measured last (what the inspector's model page shows)
    data/                      users.parquet, items.parquet (id maps), catalog.parquet, train/valid/test.parquet
    text/                      keys.parquet + vectors.npy (text-vector cache), finetuned.npy, charngram/
    model/                     the two-tower model: config.json, weights.safetensors
    index/                     items.faiss (FAISS's own format), item_vectors.npy
    needs/                     centroids.npy, assign.npy, names.json
    sources/<name>/            each candidate source's own files (e.g. sources/als/)
    stages/<stage>/<part>/     models fitted for one evaluation stage only (see recsys.pipeline.provider)
    reranker/                  config.json, weights.safetensors, bert/, tokenizer/

Code names files through these constants and functions only; a test checks that no other module
spells an artifact path.
"""

from __future__ import annotations

SCHEMA_VERSION = 2

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
FUSION = "fusion.json"
EVALUATION = "evaluation.json"  # the last `recsys evaluate` funnel on the stored test split

# file names inside a component's folder
CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
FIT = "fit.json"  # what a fitted model learnt from (recsys.sources.FitInfo)

DATA = "data"
USERS = f"{DATA}/users.parquet"
ITEMS = f"{DATA}/items.parquet"
CATALOG = f"{DATA}/catalog.parquet"
SPLIT_PARTS = ("train", "valid", "test")

TEXT = "text"
TEXT_KEYS = f"{TEXT}/keys.parquet"
TEXT_VECTORS = f"{TEXT}/vectors.npy"
TEXT_FINETUNED = f"{TEXT}/finetuned.npy"
CHARNGRAM = f"{TEXT}/charngram"

MODEL = "model"
MODEL_CONFIG = f"{MODEL}/{CONFIG}"
MODEL_WEIGHTS = f"{MODEL}/{WEIGHTS}"
MODEL_FIT = f"{MODEL}/{FIT}"

INDEX = "index"
INDEX_FILE = f"{INDEX}/items.faiss"
ITEM_VECTORS = f"{INDEX}/item_vectors.npy"

NEEDS = "needs"
NEEDS_CENTROIDS = f"{NEEDS}/centroids.npy"
NEEDS_ASSIGN = f"{NEEDS}/assign.npy"
NEEDS_NAMES = f"{NEEDS}/names.json"

RERANKER = "reranker"
RERANKER_CONFIG = f"{RERANKER}/{CONFIG}"
RERANKER_BERT = "bert"
RERANKER_TOKENIZER = "tokenizer"

SOURCES = "sources"
STAGES = "stages"


def split_table(part: str) -> str:
    """``data/<part>.parquet`` for a part of the held-out split ("train", "valid" or "test")."""
    if part not in SPLIT_PARTS:
        raise ValueError(f"split part {part!r}: use one of {', '.join(SPLIT_PARTS)}")
    return f"{DATA}/{part}.parquet"


def source_dir(name: str) -> str:
    """The folder of candidate source ``name``: ``sources/<name>``."""
    return f"{SOURCES}/{name}"


def stage_dir(stage: str, part: str) -> str:
    """Where a model fitted for evaluation stage ``stage`` only is kept: ``stages/<stage>/<part>``
    (``part`` is ``model`` for the two-tower, a source's name otherwise)."""
    return f"{STAGES}/{stage}/{part}"


def under(folder: str, name: str) -> str:
    """``folder/name``: a file inside one of the folders above."""
    return f"{folder}/{name}"
