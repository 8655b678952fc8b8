"""The GPU paths: each test skips, with its reason, where its piece (CUDA, faiss GPU, implicit GPU) is missing."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.device import cuda_available, faiss_gpu_count

needs_cuda = pytest.mark.skipif(not cuda_available(), reason="no CUDA device here (torch.cuda.is_available() is False)")


@needs_cuda
def test_two_tower_trains_on_cuda_with_bf16(synthetic):
    import torch

    from recsys.prepare import prepare
    from recsys.retrieval.model import TwoTower
    from recsys.retrieval.sequences import build_sequences
    from recsys.retrieval.towers import TowerConfig
    from recsys.retrieval.train import TrainConfig, train

    p = prepare(synthetic.dataset, holdout="none")
    from recsys.eval.protocols import with_indices

    seq = build_sequences(with_indices(p.events, p.users, p.items), len(p.users), synthetic.dataset.weights)
    model = TwoTower(TowerConfig(dim=16, max_len=10, n_layers=1), torch.randn(len(p.items), 8)).to("cuda")
    fit = train(model, seq, TrainConfig(epochs=1, pretrain_epochs=0))
    assert model.device.type == "cuda" and np.isfinite(fit["history"][0]["loss"])
    assert model.item_vectors().shape == (len(p.items), 16)


@pytest.mark.skipif(faiss_gpu_count() == 0, reason="faiss has no GPU here (install the 'gpu' extra on a CUDA machine)")
def test_faiss_gpu_index_agrees_with_cpu():
    from recsys.retrieval.index import VectorIndex

    rng = np.random.default_rng(0)
    x, q = rng.standard_normal((2000, 32)).astype(np.float32), rng.standard_normal((50, 32)).astype(np.float32)
    gpu = VectorIndex(kind="flat", use_gpu=True).build(x)
    cpu = VectorIndex(kind="flat", use_gpu=False).build(x)
    assert gpu.on_gpu
    assert np.array_equal(gpu.search(q, 10)[0], cpu.search(q, 10)[0])


def _implicit_gpu() -> bool:
    try:
        from implicit.gpu import HAS_CUDA
    except ImportError:
        return False
    return bool(HAS_CUDA)


@pytest.mark.skipif(not _implicit_gpu(), reason="implicit was built without CUDA here (implicit.gpu.HAS_CUDA is False)")
def test_implicit_gpu_als_fits():
    from recsys.retrieval.als import ALSCandidates, ALSConfig

    rng = np.random.default_rng(0)
    m = sp.random(200, 100, density=0.05, random_state=0, format="csr", dtype=np.float32)
    m.data[:] = 1 + rng.random(m.nnz).astype(np.float32)
    als = ALSCandidates(ALSConfig(factors=8, iterations=3), use_gpu=True).fit(m)
    assert als.item_factors.shape == (100, 8) and np.isfinite(als.item_factors).all()


@needs_cuda
def test_reranker_runs_bf16_on_cuda_and_agrees_with_cpu(tiny_bert):
    import copy

    import torch

    from recsys.fusion import feature_names
    from recsys.rerank.model import Reranker, RerankerConfig

    torch.manual_seed(0)
    cpu = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(max_length=16, features=feature_names(["two_tower"])))
    gpu = Reranker(copy.deepcopy(cpu.model), cpu.tokenizer, "cuda")
    pairs = [("bought: red running shoes", "trail running shoes"), ("viewed: coffee", "green tea"), ("", "socks")]
    assert next(gpu.model.parameters()).device.type == "cuda"
    assert np.abs(gpu.predict(pairs) - cpu.predict(pairs)).max() < 0.02  # bf16 autocast against fp32
