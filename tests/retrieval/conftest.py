import pytest


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A tiny random BERT with a real WordPiece vocabulary, saved to a folder (loads in milliseconds)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from recsys.retrieval.text import default_model_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = BertTokenizerFast.from_pretrained(str(default_model_path()))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
