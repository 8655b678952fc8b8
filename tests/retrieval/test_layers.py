"""The hand-written transformer layers against torch's own, and the fast dropout's statistics."""

import pytest
import torch
from torch import nn

from recsys.retrieval.layers import Encoder, dropout
from recsys.retrieval.towers import attention_mask


def torch_encoder(dim=16, heads=2, n_layers=2, p=0.5):
    layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, p, batch_first=True, norm_first=True, activation="gelu")
    return nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)


def test_same_parameter_names_and_same_output_as_torch_layers():
    torch.manual_seed(0)
    ref = torch_encoder().eval()
    for prm in ref.parameters():  # torch's clones start identical; make every layer differ
        nn.init.normal_(prm, std=0.3)
    ours = Encoder(16, 2, 2, 0.5).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)  # an artifact saved before loads as it is
    valid = torch.tensor([[False, False, True, True, True], [True, True, True, True, True]])
    x = torch.randn(2, 5, 16)
    blocked = attention_mask(valid)
    expected = ref(x, mask=blocked.repeat_interleave(2, dim=0))
    assert torch.allclose(ours(x, blocked), expected, atol=1e-5)


def test_a_seed_starts_the_same_weights_as_torch_layers():
    torch.manual_seed(3)
    ref = torch_encoder().state_dict()
    torch.manual_seed(3)
    ours = Encoder(16, 2, 2, 0.5).state_dict()
    assert list(ours) == list(ref)
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


def test_dropout_keeps_the_asked_share_and_keeps_the_mean():
    torch.manual_seed(1)
    x = torch.ones(200_000)
    y = dropout(x, 0.5, training=True)
    assert sorted(set(y.tolist())) == [0.0, 2.0]
    assert abs(float((y > 0).float().mean()) - 0.5) < 0.005
    assert abs(float(y.mean()) - 1.0) < 0.01


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_dropout_edges(p):
    x = torch.ones(10)
    assert torch.equal(dropout(x, p, training=True), x * (1 - p))


def test_dropout_passes_gradients_through_kept_elements_only():
    torch.manual_seed(2)
    x = torch.ones(1000, requires_grad=True)
    y = dropout(x, 0.25, training=True)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x·mask·s)/dx = mask·s, which is y where x = 1
