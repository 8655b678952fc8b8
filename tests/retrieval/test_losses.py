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


def in_batch(users, cand, ids, log_q, **kw):
    """The classic in-batch loss: the first B candidates are the rows' positives."""
    b = users.shape[0]
    return sampled_softmax_loss(users, cand[:b], ids[:b], log_q[:b], cand, ids, log_q, **kw)


def test_hand_computed_without_correction():
    loss = in_batch(U, V, torch.tensor([0, 1, 2]), torch.zeros(3), temperature=1.0)
    # row 0 logits: [1, 0, 1]; row 1: [0, 1, 1]
    expected = (ce([1, 0, 1], 0) + ce([0, 1, 1], 1)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_logq_subtracts_log_sampling_probability():
    log_q = torch.tensor([math.log(0.5), math.log(0.1), math.log(0.2)])
    loss = in_batch(U, V, torch.tensor([0, 1, 2]), log_q, temperature=1.0)
    r0 = [1 - math.log(0.5), 0 - math.log(0.1), 1 - math.log(0.2)]
    r1 = [0 - math.log(0.5), 1 - math.log(0.1), 1 - math.log(0.2)]
    assert loss.item() == pytest.approx((ce(r0, 0) + ce(r1, 1)) / 2, rel=1e-6)


def test_accidental_hit_is_masked():
    # the random negative is item 0, row 0's own positive: it must not count as a negative for row 0
    loss = in_batch(U, V, torch.tensor([0, 1, 0]), torch.zeros(3), temperature=1.0)
    expected = (ce([1, 0], 0) + ce([0, 1, 1], 1)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_weights_and_temperature():
    w = torch.tensor([8.0, 1.0])  # a purchase and a view
    loss = in_batch(U, V, torch.tensor([0, 1, 2]), torch.zeros(3), weights=w, temperature=0.5)
    expected = (8 * ce([2, 0, 2], 0) + 1 * ce([0, 2, 2], 1)) / 9
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_candidate_log_q():
    freq = item_frequency(np.array([0, 0, 0, 1]), 4)  # add-one: [4, 2, 1, 1], total 8
    lq = candidate_log_q(torch.tensor([0, 1]), torch.tensor([3, 2, 1]), freq, n_items=4)
    assert lq.tolist() == pytest.approx([math.log(2 * 4 / 8), math.log(2 * 2 / 8)] + [math.log(3 / 4)] * 3)


def test_a_pool_smaller_than_the_batch():
    # row 1's positive is the only in-batch negative in the pool, then one random negative (item 2)
    loss = sampled_softmax_loss(U, V[:2], torch.tensor([0, 1]), torch.zeros(2), V[1:], torch.tensor([1, 2]),
                                torch.zeros(2), temperature=1.0)
    # row 0: positive 1, candidates [0, 1]; row 1: positive 1, its own copy left out, negative 1
    expected = (ce([1, 0, 1], 0) + ce([1, 1], 0)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_a_row_whose_every_candidate_is_its_positive_has_finite_gradients():
    u = U.clone().requires_grad_(True)
    loss = sampled_softmax_loss(u, V[:2], torch.tensor([0, 1]), torch.zeros(2), V[:1], torch.tensor([0]),
                                torch.zeros(1), temperature=1.0)
    loss.backward()
    assert torch.isfinite(u.grad).all()
    assert loss.item() == pytest.approx((0 + ce([1, 0], 0)) / 2, rel=1e-5)  # row 0 has nothing to beat


def test_one_positive_per_user_row():
    with pytest.raises(ValueError, match="positives: 1 rows for 2 users; give one positive per user row"):
        sampled_softmax_loss(U, V[:1], torch.tensor([0]), torch.zeros(1), V, torch.tensor([0, 1, 2]), torch.zeros(3))


def test_seen_items_are_masked_per_position_except_the_target():
    import torch

    from recsys.retrieval.train import seen_pairs

    # one window, left-padded: [pad, 3, 1, 3] predicting [1, 3, 2] at positions 1..3
    inp = {"items": torch.tensor([[0, 3, 1, 3]]), "valid": torch.tensor([[False, True, True, True]])}
    mask = torch.tensor([[False, True, True, True]])
    pos = torch.tensor([1, 3, 2])
    seen = torch.zeros(3, 5, dtype=torch.bool)
    seen[seen_pairs(inp, mask, pos)] = True
    assert seen.tolist() == [
        [False, False, False, True, False],  # after item 3: 3 is seen; the target 1 is not
        [False, True, False, False, False],  # after 3, 1: the target 3 is a repeat and stays
        [False, True, False, True, False],   # after 3, 1, 3: both seen; the target 2 is new
    ]
