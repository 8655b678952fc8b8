"""The character n-gram encoder reads any script: similar Chinese titles land close together."""

import numpy as np
import pytest

from recsys.retrieval.charngram import CharNgramEncoder

TITLES = [
    "华为 Mate 60 Pro 智能手机 5G 黑色", "华为 P60 智能手机 白色 🎉", "小米 14 智能手机 5G",
    "美的 电饭煲 3L 家用", "苏泊尔 电饭煲 4L", "九阳 豆浆机 家用",
    "Espresso coffee beans 1kg", "Arabica coffee roast beans", "",
]


def test_fit_encode_and_neighbours():
    enc = CharNgramEncoder(dim=6).fit(TITLES)
    v = enc.encode(TITLES)
    assert v.shape == (9, 6) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:-1], axis=1), 1.0, atol=1e-5)
    assert not v[-1].any()  # empty text: zero vector
    new = enc.encode(["荣耀 智能手机 5G 蓝色", "美的 电饭煲 5L"])  # items not in the fitted catalogue
    sims = new @ v[:-1].T
    assert sims[0].argmax() in (0, 1, 2)  # a phone finds the phones
    assert sims[1].argmax() in (3, 4)  # a rice cooker finds the rice cookers
    assert enc.unk_rate(TITLES) == 0.0


def test_same_fit_same_vectors():
    a = CharNgramEncoder(dim=4).fit(TITLES).encode(TITLES)
    b = CharNgramEncoder(dim=4).fit(TITLES).encode(TITLES)
    assert np.array_equal(a, b)


def test_encode_before_fit():
    with pytest.raises(ValueError, match=r"call fit\(catalogue texts\) first"):
        CharNgramEncoder().encode(["x"])


def test_a_catalogue_without_text_gives_zero_vectors():
    enc = CharNgramEncoder(dim=4).fit(["", "", ""])
    assert enc.encode(["", "new title"]).tolist() == [[0.0] * 4, [0.0] * 4]
