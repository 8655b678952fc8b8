"""Shared fixtures: the real data folder (skipped when absent) and small synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip when it is absent."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (it lies beside the checkout in the project's workspace)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic():
    from recsys.synthetic import generate_synthetic

    return generate_synthetic(n_users=300, n_items=160, n_needs=8, seed=7)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A tiny random BERT with a real WordPiece vocabulary, saved to a folder (loads in milliseconds)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from recsys.pretrained import default_model_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = BertTokenizerFast.from_pretrained(str(default_model_path()))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
