"""Reranker training, phase two: the text learns a correction; it is kept only where it earns it."""

import numpy as np
import pytest
import torch

from recsys.rerank.config import RerankTrainConfig
from recsys.rerank.model import Reranker, RerankerConfig
from recsys.rerank.train import train_reranker

from .hand_lists import FEATURES, TITLES, hand_lists


def test_phase_two_learns_from_text_and_leaves_the_feature_part_alone(tiny_bert):
    torch.manual_seed(0)
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=16))
    lists = hand_lists()
    lists.features[:] = 0.0  # no feature says anything: only the TITLES can
    for row in range(len(lists)):
        TITLES[lists.items[row, -1]] = "the one they take"
    model = r.model
    hidden = model.bert.config.hidden_size
    fit = train_reranker(r, lists, lists, TITLES, RerankTrainConfig(epochs=3, feature_steps=5, lr=1e-3, head_lr=1e-2,
                                                                   lists_per_step=4, negatives=5))
    features_after = [p.detach().clone() for p in model.features.parameters()]
    features_after += [h.weight[:, hidden:].detach().clone() for h in (model.click, model.purchase)]
    assert [h["epoch"] for h in fit["history"]] == [0, 1, 2, 3]
    assert fit["best_valid_ndcg@10"] > fit["history"][0]["valid_ndcg@10"]  # the text taught it something
    assert torch.count_nonzero(model.click.weight[:, :hidden]) > 0
    # the feature part is phase one's: a second run of phase two from the same start changes none of it
    torch.manual_seed(0)
    r2 = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=16))
    train_reranker(r2, lists, lists, TITLES, RerankTrainConfig(epochs=0, feature_steps=5))
    start = [*r2.model.features.parameters(), *(h.weight[:, hidden:] for h in (r2.model.click, r2.model.purchase))]
    assert len(start) == len(features_after)
    for a, b in zip(features_after, start):
        assert torch.equal(a, b)


@pytest.mark.parametrize("keep_text", [False, True])
def test_keep_text_keeps_a_text_epoch_that_loses_to_the_features(tiny_bert, keep_text):
    torch.manual_seed(0)
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=16))
    lists = hand_lists()  # the 'seen' feature finds every positive: phase one reads NDCG@10 1.0, no epoch can beat it
    hidden = r.model.bert.config.hidden_size
    fit = train_reranker(r, lists, lists, TITLES, RerankTrainConfig(epochs=2, feature_steps=100, lr=1e-3, head_lr=1e-2,
                                                                   lists_per_step=4, keep_text=keep_text))
    history = fit["history"]
    assert history[0]["valid_ndcg@10"] == pytest.approx(1.0)
    assert fit["text_phase"]["kept"] is keep_text
    if keep_text:  # the best of epochs 1-2 is kept, and its text columns have learnt something
        assert fit["best_valid_ndcg@10"] == max(h["valid_ndcg@10"] for h in history[1:])
        assert torch.count_nonzero(r.model.click.weight[:, :hidden]) > 0
    else:  # the feature-only start is kept: the text columns are still silent
        assert fit["best_valid_ndcg@10"] == pytest.approx(1.0)
        assert torch.count_nonzero(r.model.click.weight[:, :hidden]) == 0


def test_the_summary_says_what_cross_validation_chose(tiny_bert):
    torch.manual_seed(0)
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=16))
    said = []
    fit = train_reranker(r, hand_lists(), hand_lists(seed=1), TITLES,
                         RerankTrainConfig(epochs=0, feature_steps=50, feature_folds=3), said.append)
    cv = fit["history"][0]["cross_validation"]
    assert cv["folds"] == 3 and cv["fold_fused_ndcg@10"] == round(1 / np.log2(7), 4)  # each positive at rank 6 of 6
    assert f"3-fold cross-validation chose {cv['steps']} steps, NDCG@10 {cv['fold_ndcg@10']:.4f}" in said[0]
