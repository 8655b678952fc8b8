"""Sampled softmax with logQ correction: values worked out by hand."""

import math

import numpy as np
import pytest
import torch

from recsys.retrieval.losses import candidate_log_q, item_frequency, sampled_softmax_loss

U = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
V = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # two positives, one random negative


def ce(logits, target):
    return -logits[target] + math.log(sum(math.exp(x) for x in logits))


def test_hand_computed_without_correction():
    loss = sampled_softmax_loss(U, V, torch.tensor([0, 1, 2]), torch.zeros(3), temperature=1.0)
    # row 0 logits: [1, 0, 1]; row 1: [0, 1, 1]
    expected = (ce([1, 0, 1], 0) + ce([0, 1, 1], 1)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_logq_subtracts_log_sampling_probability():
    log_q = torch.tensor([math.log(0.5), math.log(0.1), math.log(0.2)])
    loss = sampled_softmax_loss(U, V, torch.tensor([0, 1, 2]), log_q, temperature=1.0)
    r0 = [1 - math.log(0.5), 0 - math.log(0.1), 1 - math.log(0.2)]
    r1 = [0 - math.log(0.5), 1 - math.log(0.1), 1 - math.log(0.2)]
    assert loss.item() == pytest.approx((ce(r0, 0) + ce(r1, 1)) / 2, rel=1e-6)


def test_accidental_hit_is_masked():
    # the random negative is item 0, row 0's own positive: it must not count as a negative for row 0
    loss = sampled_softmax_loss(U, V, torch.tensor([0, 1, 0]), torch.zeros(3), temperature=1.0)
    expected = (ce([1, 0], 0) + ce([0, 1, 1], 1)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_weights_and_temperature():
    w = torch.tensor([8.0, 1.0])  # a purchase and a view
    loss = sampled_softmax_loss(U, V, torch.tensor([0, 1, 2]), torch.zeros(3), weights=w, temperature=0.5)
    expected = (8 * ce([2, 0, 2], 0) + 1 * ce([0, 2, 2], 1)) / 9
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_candidate_log_q():
    freq = item_frequency(np.array([0, 0, 0, 1]), 4)  # add-one: [4, 2, 1, 1], total 8
    lq = candidate_log_q(torch.tensor([0, 1]), torch.tensor([3, 2, 1]), freq, n_items=4)
    assert lq.tolist() == pytest.approx([math.log(2 * 4 / 8), math.log(2 * 2 / 8)] + [math.log(3 / 4)] * 3)


def test_too_few_candidates():
    with pytest.raises(ValueError, match="candidates: 1 rows, need at least the 2 positives first"):
        sampled_softmax_loss(U, V[:1], torch.tensor([0]), torch.zeros(1))


def test_seen_items_are_masked_per_position_except_the_target():
    import torch

    from recsys.retrieval.train import _seen_before

    # one window, left-padded: [pad, 3, 1, 3] predicting [1, 3, 2] at positions 1..3
    inp = {"items": torch.tensor([[0, 3, 1, 3]]), "valid": torch.tensor([[False, True, True, True]])}
    mask = torch.tensor([[False, True, True, True]])
    pos = torch.tensor([1, 3, 2])
    seen = _seen_before(inp, mask, pos, 5)
    assert seen.tolist() == [
        [False, False, False, True, False],  # after item 3: 3 is seen; the target 1 is not
        [False, True, False, False, False],  # after 3, 1: the target 3 is a repeat and stays
        [False, True, False, True, False],   # after 3, 1, 3: both seen; the target 2 is new
    ]
