"""The text stage: the catalogue's item texts through the text encoder, reusing cached vectors.

The encoder is the default all-MiniLM-L6-v2, any BERT-family folder or hub id (``--text-model``),
the language-agnostic ``char-ngram`` encoder (fitted on this catalogue), or, on a warm start, the
earlier artifact's. Vectors of texts the previous artifact at the same path (or the warm-start
artifact) encoded with the same model are reused; ``recsys add-items`` encodes new items' texts
with the same function.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from recsys import layout
from recsys.artifacts import Artifact
from recsys.defaults import is_default_text_model
from recsys.errors import ArtifactError, ConfigError
from recsys.retrieval.charngram import NAME as CHAR_NGRAM
from recsys.retrieval.charngram import CharNgramEncoder
from recsys.retrieval.finetune import FinetunedText
from recsys.retrieval.text import TextEncoder, encode_with_cache, text_key

log = logging.getLogger(__name__)
UNK_WARN = 0.05  # warn when more than 5% of the catalogue's tokens are unknown to the text model


def load_encoder(text_model: str | None, device: str, int8: bool | None = None):
    """The text encoder called ``text_model`` (None: the default); ``int8`` as :class:`TextEncoder`'s."""
    if text_model == CHAR_NGRAM:
        return CharNgramEncoder()
    return TextEncoder(None if is_default_text_model(text_model) else text_model, device=device, int8=int8)


def artifact_encoder(art: Artifact, text_model: str | None = None, device: str = "cpu"):
    """The encoder an artifact was built with: its fitted char-ngram state, or its text model by name
    (``text_model`` when that name cannot be loaded here) at the artifact's precision."""
    if art.has(layout.under(layout.CHARNGRAM, layout.CONFIG)):
        return CharNgramEncoder.load(art)
    config = art.manifest.get("config", {})
    return load_encoder(text_model or config.get("text_model"), device, config.get("text_precision") == "int8")


def precision(encoder) -> str:
    return getattr(encoder, "precision", "fp32")


def cached_vectors(path: Path, encoder) -> dict[str, np.ndarray]:
    """Text vectors of the artifact at ``path`` made by the same text model at the same precision
    (text key -> vector)."""
    try:
        art = Artifact.open(path)
    except ArtifactError:
        return {}
    config = art.manifest.get("config", {})
    if (config.get("text_model") != encoder.name or config.get("text_precision", "fp32") != precision(encoder)
            or not art.has(layout.TEXT_KEYS)):
        return {}
    dim = encoder.dim
    keys = art.load_table(layout.TEXT_KEYS)["key"].to_list()
    vecs = art.load_array(layout.TEXT_VECTORS)
    return dict(zip(keys, vecs)) if vecs.ndim == 2 and vecs.shape[1] == dim else {}


def encode_catalogue(texts: list[str], opts, device: str, base, out: Path,
                     say: Callable[[str], None]) -> tuple[object, np.ndarray, dict]:
    """(encoder, vectors, info) for the catalogue's ``texts``; ``base`` is a warm start or None."""
    if base:
        base.check_text_model(opts.text_model)
    int8 = {"auto": None, "int8": True, "fp32": False}[opts.text_precision]
    if opts.finetune_text_layers:
        if opts.text_precision == "int8":
            raise ConfigError(f"--finetune-text-layers {opts.finetune_text_layers} with --text-precision int8: "
                              "tuned layers need fp32; drop one of the two")
        int8 = False  # layers to tune stay in fp32
    encoder = (base.charngram if base and base.charngram else opts.text_encoder
               or load_encoder(opts.text_model or (base.text_model if base else None), device, int8))
    if opts.finetune_text_layers and not isinstance(encoder, TextEncoder):
        raise ConfigError(f"--finetune-text-layers {opts.finetune_text_layers}: the text model {encoder.name} has "
                          "no layers to tune; use a BERT-family --text-model or --finetune-text-layers 0")
    if hasattr(encoder, "fit") and not (base and base.charngram):
        encoder.fit(texts)  # fitted on this catalogue: its vectors are not reusable across builds
        cache = {}
    else:
        cache = cached_vectors(base.path if base else out, encoder)
    vectors, n_new = encode_with_cache(encoder, texts, cache, show_progress=opts.show_progress)
    unk = encoder.unk_rate([t for t in texts if t][:20000])
    empty = sum(1 for t in texts if not t)
    say(f"{len(texts)} item texts, {n_new} encoded anew, unknown-token rate {unk:.1%}")
    if unk > UNK_WARN:
        log.warning("%.0f%% of the catalogue's tokens are unknown to the text model %s; point --text-model at "
                    "a model for this language (e.g. a multilingual BERT folder) or use --text-model char-ngram",
                    100 * unk, encoder.name)
    if texts and empty == len(texts):
        log.warning("no item has any text: items are placed by their interactions alone, and new items cannot be "
                    "placed; give a catalogue (--items FILE, or --items-from-events COLUMNS) with titles")
    info = {"text_model": encoder.name, "text_precision": precision(encoder), "texts_encoded": n_new,
            "unk_rate": round(unk, 4), "items_without_text": empty, "keys": [text_key(t) for t in texts]}
    return encoder, vectors, info


def finetune_layers(encoder, texts: list[str], n_layers: int, device: str):
    """The top ``n_layers`` of the text encoder, to be tuned inside the item tower."""
    if not device.startswith("cuda"):
        log.warning("fine-tuning %d text layers on the CPU is slow (it is meant for a GPU)", n_layers)
    return FinetunedText.from_encoder(encoder, texts, n_layers).to(device)
