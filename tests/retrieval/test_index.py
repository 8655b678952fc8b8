"""The FAISS index against an exact search (in the spirit of faiss.contrib's tests)."""

import logging

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.retrieval.index import VectorIndex, normalize


def exact(x, q, k):
    s = normalize(q) @ normalize(x).T
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def clustered(n, d=32, centers=50, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, d))
    return (c[rng.integers(0, centers, n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


def recall(found, truth):
    return np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)])


def test_flat_is_exact():
    x, q = clustered(2000), clustered(50, seed=1)
    idx = VectorIndex(kind="auto", exact_below=5000).build(x)
    assert idx.kind_built == "flat"
    ids, scores = idx.search(q, 10)
    assert (ids == exact(x, q, 10)).mean() > 0.99  # only float ties may reorder
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


@pytest.mark.parametrize("kind, floor", [("hnsw", 0.95), ("ivf", 0.9)])
def test_approximate_against_exact(kind, floor):
    x, q = clustered(20000), clustered(200, seed=2)
    idx = VectorIndex(kind=kind, nprobe=16).build(x)
    ids, _ = idx.search(q, 10)
    assert recall(ids, exact(x, q, 10)) >= floor


def test_auto_switches_to_hnsw_above_threshold():
    assert VectorIndex(exact_below=1000).resolved_kind(999) == "flat"
    assert VectorIndex(exact_below=1000).resolved_kind(1000) == "hnsw"


def test_save_load_add(tmp_path):
    x = clustered(500)
    idx = VectorIndex(kind="flat").build(x)
    idx.save(tmp_path / "items.faiss")
    back = VectorIndex.load(tmp_path / "items.faiss")
    q = clustered(5, seed=3)
    assert np.array_equal(back.search(q, 5)[0], idx.search(q, 5)[0])
    new_ids = back.add(q)  # new items are found at once
    assert new_ids.tolist() == [500, 501, 502, 503, 504]
    assert back.search(q, 1)[0][:, 0].tolist() == new_ids.tolist()
    assert 32 * 4 <= back.bytes_per_item() < 32 * 4 + 64


def test_gpu_request_falls_back_with_warning(caplog):
    from recsys.device import faiss_gpu_count

    if faiss_gpu_count():
        pytest.skip("a GPU is present")
    with caplog.at_level(logging.WARNING, logger="recsys.retrieval.index"):
        idx = VectorIndex(kind="flat", use_gpu=True).build(clustered(100))
    assert not idx.on_gpu
    assert "faiss has no GPU here" in caplog.text


def test_bad_kind_and_k_larger_than_catalogue():
    with pytest.raises(ConfigError, match="index kind 'lsh': use one of auto, flat, ivf, hnsw"):
        VectorIndex(kind="lsh")
    ids, _ = VectorIndex(kind="flat").build(clustered(3)).search(clustered(1), 10)
    assert ids.shape == (1, 3)
