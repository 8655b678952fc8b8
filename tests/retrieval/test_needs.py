"""Latent needs: k-means over item vectors, c-TF-IDF names, the expressed/latent split."""

import numpy as np
import pytest

from recsys.retrieval.needs import Needs, tokens

TEXTS = ["espresso beans roast", "arabica beans grinder", "latte mug espresso",
         "trail shoes marathon", "running socks trail", "marathon gps watch",
         "diapers wipes pack", "stroller bottle wipes", "formula bottle diapers"]


@pytest.fixture
def needs():
    rng = np.random.default_rng(0)
    centres = np.eye(3, 16, dtype=np.float32)
    vectors = np.repeat(centres, 3, axis=0) + 0.05 * rng.standard_normal((9, 16)).astype(np.float32)
    return Needs.fit(vectors, TEXTS, k=3, seed=0), vectors


def test_items_of_a_group_share_a_need_named_from_their_words(needs):
    n, _ = needs
    assert [len(set(n.assign[i:i + 3].tolist())) for i in (0, 3, 6)] == [1, 1, 1]
    assert len(set(n.assign.tolist())) == 3
    coffee = n.names[int(n.assign[0])]
    assert coffee["size"] == 3 and set(coffee["terms"][:3]) <= {"espresso", "beans", "roast", "arabica", "grinder",
                                                                 "latte", "mug"}
    assert {"espresso", "beans"} <= set(coffee["terms"])  # the words two of its items share come first
    assert coffee["examples"] and set(coffee["examples"]) <= {0, 1, 2}


def test_probabilities_follow_the_user_vector(needs):
    n, vectors = needs
    user = vectors[3:6].mean(axis=0, keepdims=True)
    user /= np.linalg.norm(user)
    prob = n.predict(user, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), temperature=0.1)
    assert prob.shape == (1, 3) and prob.sum() == pytest.approx(1.0)
    assert prob[0].argmax() == n.assign[3]


def test_expressed_and_latent_split():
    n = Needs(np.eye(4, dtype=np.float32), np.array([0, 0, 1, 2, 3]), [{"id": c} for c in range(4)])
    share = n.expressed(np.array([0, 1, 0, 2]))  # need 0: 3 of 4 events, need 1: 1 of 4, needs 2 and 3: none
    assert share.tolist() == [3 / 4, 1 / 4, 0.0, 0.0]
    prob = np.array([0.1, 0.2, 0.3, 0.4])
    assert n.split(prob, share, top=3, latent_share=0.05) == {"expressed": [1, 0], "latent": [3, 2]}
    assert n.split(prob, share, top=1, latent_share=0.3) == {"expressed": [0], "latent": [3]}


def test_tokens_read_any_script():
    assert tokens("华为 Mate 60 Pro 智能手机 5G 🎉") == ["华为", "mate", "pro", "智能手机"]
