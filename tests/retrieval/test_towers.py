"""Tower shapes, causal and padding masks, ID dropout."""

import numpy as np
import pytest
import torch

from recsys.errors import ConfigError
from recsys.retrieval.towers import ItemTower, TowerConfig, UserTower, attention_mask, gap_buckets

CFG = TowerConfig(dim=16, max_len=8, n_layers=2, n_heads=2, dropout=0.0, id_dropout=0.5)


def towers(n_items=20, text_dim=12):
    torch.manual_seed(0)
    return ItemTower(CFG, torch.randn(n_items, text_dim)), UserTower(CFG).eval()


def seq(items, events, gaps, length=8):
    """Left-pad to ``length``."""
    pad = length - len(items)
    mk = lambda xs: torch.tensor([[0] * pad + list(xs)])  # noqa: E731
    return mk(items), mk(events), mk(gaps), torch.tensor([[False] * pad + [True] * len(items)])


def user_vector(it, ut, items, events, gaps, length=8, all_positions=False):
    i, e, g, v = seq(items, events, gaps, length)
    return ut(it(i), e, g, v, all_positions=all_positions)


def test_shapes():
    it, ut = towers()
    assert it(torch.tensor([[1, 2, 3]])).shape == (1, 3, 16)
    assert it.all_items().shape == (20, 16)
    assert torch.allclose(it.all_items().norm(dim=-1), torch.ones(20))
    assert user_vector(it, ut, [1, 2, 3], [0, 1, 2], [0, 3, 4]).shape == (1, 16)
    assert user_vector(it, ut, [1, 2, 3], [0, 1, 2], [0, 3, 4], all_positions=True).shape == (1, 8, 16)


def test_causal_later_events_do_not_change_earlier_outputs():
    it, ut = towers()
    it.eval()
    a = user_vector(it, ut, [1, 2, 3, 4], [0, 0, 0, 0], [0, 1, 1, 1], all_positions=True)
    b = user_vector(it, ut, [1, 2, 3, 9], [0, 0, 0, 3], [0, 1, 1, 7], all_positions=True)
    assert torch.allclose(a[0, :7], b[0, :7], atol=1e-6)  # positions before the changed newest one
    assert not torch.allclose(a[0, 7], b[0, 7])


def test_padding_does_not_leak_and_gives_no_nan():
    it, ut = towers()
    it.eval()
    short = user_vector(it, ut, [5, 6], [1, 2], [0, 2], length=8)
    assert torch.isfinite(short).all()
    # the same history with different junk under the padding gives the same vector
    i, e, g, v = seq([5, 6], [1, 2], [0, 2])
    i2 = i.clone()
    i2[0, :6] = 17
    assert torch.allclose(ut(it(i), e, g, v), ut(it(i2), e, g, v), atol=1e-6)


def test_id_dropout_only_in_training():
    it, _ = towers()
    with torch.no_grad():
        it.ids.weight.fill_(1.0)
    items = torch.arange(20).repeat(50)
    it.train()
    torch.manual_seed(1)
    dropped = (it(items) - it.proj(it.text[items])).abs().sum(-1) == 0
    assert 0.4 < dropped.float().mean().item() < 0.6  # id_dropout = 0.5
    it.eval()
    assert ((it(items) - it.proj(it.text[items])).abs().sum(-1) > 0).all()


def test_unseen_items_start_from_text_alone():
    it, _ = towers()
    it.eval()
    assert torch.allclose(it(torch.tensor([3])), it.proj(it.text[torch.tensor([3])]))  # ID embedding starts at 0


def test_mask_blocks_future_and_padding():
    m = attention_mask(torch.tensor([[False, True, True]]))[0]
    # row 0 (a pad) sees only itself; rows 1-2 see real keys up to themselves
    assert m.tolist() == [[False, True, True], [True, False, True], [True, False, False]]


@pytest.mark.parametrize("seconds, bucket", [(-1, 0), (0, 1), (59, 1), (60, 2), (180, 3), (86400, 11)])
def test_gap_buckets(seconds, bucket):
    assert gap_buckets(np.array([seconds]))[0] == bucket


def test_an_id_only_tower_reads_no_text():
    from dataclasses import replace

    torch.manual_seed(0)
    text = torch.randn(20, 12)
    it = ItemTower(replace(CFG, use_text=False, id_dropout=0.0), text).eval()
    items = torch.arange(20)
    assert torch.equal(it(items), it.ids.weight)  # the vector is the item's id embedding, nothing else
    assert it.proj is None and all(p.requires_grad for p in it.parameters())  # no parameter without a gradient
    it.text = torch.zeros_like(text)  # other texts: the same vectors
    assert torch.equal(it(items), it.ids.weight) and it.ids.weight.abs().sum() > 0  # not the zeros text+id starts from
    with_text = ItemTower(CFG, text).eval()
    assert torch.equal(with_text.ids.weight, torch.zeros(20, 16)) and not torch.equal(with_text(items), with_text.ids.weight)


@pytest.mark.parametrize("kwargs, message", [
    ({"dim": 0}, "[tower] dim = 0: give an integer of at least 1 (--dim, or dim in a config file's [tower])"),
    ({"max_len": -1}, "[tower] max_len = -1: give an integer of at least 1 (--max-len, or max_len in a config file's "
                      "[tower])"),
    ({"dropout": 1.0}, "[tower] dropout = 1.0: give a rate from 0 up to (not including) 1 (dropout in a config "
                       "file's [tower])"),
    ({"dim": 63}, "[tower] n_heads = 2: give a divisor of dim = 63, or a dim that 2 divides (n_heads in a config "
                  "file's [tower])"),
])
def test_a_tower_setting_out_of_range_is_one_line(kwargs, message):
    with pytest.raises(ConfigError) as e:
        TowerConfig(**kwargs)
    assert str(e.value) == message
