import logging

import numpy as np
import pytest

from recsys.device import cuda_available, resolve_device, set_seed
from recsys.errors import ConfigError


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


def test_denormals_are_flushed_inside_and_kept_outside():
    import torch

    from recsys.device import flush_denormals

    tiny = torch.tensor([1e-39])  # below float32's smallest normal number (1.2e-38)
    with flush_denormals():
        assert (tiny * 1.0).item() == 0.0
    assert (tiny * 1.0).item() == pytest.approx(1e-39, rel=1e-3)


def test_a_device_that_is_not_one_is_a_one_line_error():
    with pytest.raises(ConfigError) as e:
        resolve_device("foo")
    assert str(e.value) == "--device 'foo': not a device; give cpu, cuda or cuda:N (N: the GPU's number, from 0)"
    with pytest.raises(ConfigError, match=r"^seed -1: give a whole number from 0 to 4294967295$"):
        set_seed(-1)
