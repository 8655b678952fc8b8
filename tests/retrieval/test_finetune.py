"""Fine-tuning the text encoder's top layers inside the item tower (tiny random BERT)."""

import numpy as np
import pytest
import torch

from recsys import layout
from recsys.artifacts import Artifact
from recsys.errors import ConfigError
from recsys.pipeline import BuildOptions, build
from recsys.retrieval.charngram import CharNgramEncoder
from recsys.retrieval.finetune import FinetunedText
from recsys.retrieval.text import TextEncoder
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig
from recsys.synthetic import generate_synthetic

TEXTS = ["red running shoes", "", "a much longer text about coffee beans and an espresso grinder", "dog leash"]


def test_untrained_layers_reproduce_the_frozen_encoder(tiny_bert):
    enc = TextEncoder(str(tiny_bert), device="cpu", max_length=32, int8=False)
    ft = FinetunedText.from_encoder(enc, TEXTS, n_layers=1).eval()
    got = ft.encode_all()
    want = enc.encode(TEXTS)
    assert got.shape == want.shape == (4, 32)
    assert np.abs(got - want).max() < 2e-3  # the cached states are half precision
    assert not got[1].any()  # an empty text stays a zero vector
    # any shape of indices, repeats included
    out = ft(torch.tensor([[3, 0], [3, 3]]))
    assert out.shape == (2, 2, 32) and torch.allclose(out[0, 0], out[1, 1])


def test_layer_count_and_encoder_are_checked(tiny_bert):
    enc = TextEncoder(str(tiny_bert), device="cpu", int8=False)
    with pytest.raises(ConfigError, match=r"--finetune-text-layers 3: the text model has 2 layers; give 1\.\.2"):
        FinetunedText.from_encoder(enc, TEXTS, n_layers=3)
    d = generate_synthetic(n_users=20, n_items=16, n_needs=3, seed=1)
    opts = BuildOptions(holdout="temporal", finetune_text_layers=1, text_encoder=CharNgramEncoder(dim=8), show_progress=False)
    with pytest.raises(ConfigError, match="the text model char-ngram has no layers to tune"):
        build(d.dataset, "unused", opts=opts)


def test_build_tunes_the_top_layer_and_stores_its_vectors(tiny_bert, tmp_path):
    d = generate_synthetic(n_users=80, n_items=40, n_needs=4, seed=4)
    enc = TextEncoder(str(tiny_bert), device="cpu", max_length=16, int8=False)
    opts = BuildOptions(holdout="temporal", finetune_text_layers=1, text_encoder=enc, show_progress=False,
                        tower=TowerConfig(dim=16, max_len=10, n_layers=1), sources={"als": None},
                        train=TrainConfig(epochs=2, pretrain_epochs=0, text_lr=1e-3, patience=5))
    before = {k: v.clone() for k, v in enc.model.encoder.layer[-1].state_dict().items()}
    build(d.dataset, tmp_path / "art", opts=opts)
    art = Artifact.open(tmp_path / "art")
    base, tuned = art.load_array(layout.TEXT_VECTORS), art.load_array(layout.TEXT_FINETUNED)
    assert base.shape == tuned.shape == (40, 32)
    assert np.abs(base - tuned).max() > 1e-3  # the top layer moved
    # the encoder given in is untouched: a copy of its top layer was tuned
    after = enc.model.encoder.layer[-1].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert art.manifest["config"]["finetune_text_layers"] == 1
    assert not any(k.startswith("items.finetune") for k in _weights(art))


def _weights(art):
    from safetensors.torch import load_file

    return load_file(str(art.file(layout.MODEL_WEIGHTS)))
