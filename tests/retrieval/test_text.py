import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.retrieval.text import TextEncoder, encode_with_cache, text_key


def test_tiny_encoder_shapes_and_empty_text(tiny_bert):
    enc = TextEncoder(tiny_bert, device="cpu", batch_size=2, int8=False)
    v = enc.encode(["red running shoes", "", "a much longer text about coffee beans and grinders"])
    assert v.shape == (3, 32) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[[0, 2]], axis=1), 1.0, atol=1e-5)
    assert not v[1].any()  # empty text: zero vector (an ID-only item)
    # batching and length-sorting do not change the result
    again = TextEncoder(tiny_bert, device="cpu", batch_size=64, int8=False).encode(["a much longer text about coffee beans and grinders"])
    assert np.allclose(again[0], v[2], atol=1e-5)


def test_cache_reuses_vectors(tiny_bert):
    enc = TextEncoder(tiny_bert, device="cpu")
    first, n1 = encode_with_cache(enc, ["a", "b"])
    cache = {text_key(t): first[i] for i, t in enumerate(["a", "b"])}
    second, n2 = encode_with_cache(enc, ["b", "c", "a"], cache)
    assert (n1, n2) == (2, 1)  # only "c" is new
    assert np.array_equal(second[0], first[1]) and np.array_equal(second[2], first[0])


def test_bad_model_path(tmp_path):
    with pytest.raises(ConfigError, match=r"--text-model .*nothing-here: cannot load it"):
        TextEncoder(str(tmp_path / "nothing-here"))


@pytest.mark.slow
def test_default_minilm_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = TextEncoder(device="cpu")
    assert enc.dim == 384 and enc.name == "all-MiniLM-L6-v2"
    v = enc.encode(["espresso coffee beans", "arabica coffee roast", "trail running shoes"])
    assert v[0] @ v[1] > v[0] @ v[2]
    # the default vocabulary barely covers Chinese: 6 of 13 tokens are [UNK]
    assert enc.unk_rate(["华为 Mate 60 Pro 智能手机 5G 黑色"]) == pytest.approx(6 / 13)


def test_int8_on_the_cpu_stays_close_to_fp32(tiny_bert):
    texts = ["red running shoes", "espresso beans", "a garden rake with a long handle"]
    fp32 = TextEncoder(tiny_bert, device="cpu", int8=False)
    int8 = TextEncoder(tiny_bert, device="cpu")
    assert (fp32.precision, int8.precision) == ("fp32", "int8")  # int8 is the CPU's default
    cos = (fp32.encode(texts) * int8.encode(texts)).sum(1)
    assert cos.min() > 0.9


def test_a_recurring_text_is_encoded_once(tiny_bert):
    enc = TextEncoder(tiny_bert, device="cpu")
    calls = []
    real = enc.encode
    enc.encode = lambda texts, show_progress=False: calls.append(list(texts)) or real(texts)
    out, n = encode_with_cache(enc, ["mug", "mug", "", "cup", "mug"])
    assert n == 3 and calls == [["mug", "", "cup"]] and np.array_equal(out[0], out[4])
