import logging

import numpy as np

from recsys.device import cuda_available, resolve_device, set_seed


def test_cuda_request_falls_back_with_a_warning(caplog):
    if cuda_available():
        assert resolve_device("cuda") == "cuda"
        return
    with caplog.at_level(logging.WARNING, logger="recsys.device"):
        assert resolve_device("cuda") == "cpu"
    assert "CUDA is not available; using the CPU" in caplog.text
    assert resolve_device(None) == "cpu"
    assert resolve_device("cpu") == "cpu"


def test_seed_makes_numpy_and_torch_repeat():
    import torch

    set_seed(11)
    a = (np.random.rand(3), torch.rand(3))
    set_seed(11)
    b = (np.random.rand(3), torch.rand(3))
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])
