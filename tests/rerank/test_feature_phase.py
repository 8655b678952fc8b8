"""Reranker training, phase one: the heads learn the retrieval features; the text part stays silent."""

import numpy as np
import pytest
import torch

from recsys.rerank.config import RerankTrainConfig
from recsys.rerank.feature_phase import cross_validated_steps, fit_features
from recsys.rerank.lists import list_ndcg
from recsys.rerank.model import Reranker, RerankerConfig
from recsys.rerank.train import rerank_lists

from .hand_lists import FEATURES, TITLES, hand_lists, normalise


@pytest.mark.parametrize("loss", ["pointwise", "listwise"])
def test_features_alone_move_the_marked_item_to_the_top(tiny_bert, loss):
    torch.manual_seed(0)
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=16))
    lists = hand_lists()
    normalise(r.model, lists)
    # fused order: the positive at rank 6 of 6, NDCG@10 = 1 / log2(7)
    assert list_ndcg(lists.items, lists) == pytest.approx(1 / np.log2(7))
    fit_features(r.model, lists, np.arange(len(lists)), RerankTrainConfig(loss=loss, feature_steps=100))
    hidden = r.model.bert.config.hidden_size
    assert torch.count_nonzero(r.model.click.weight[:, :hidden]) == 0  # the text part is still silent
    assert list_ndcg(rerank_lists(r, lists, TITLES, depth=6), lists) == pytest.approx(1.0)


@pytest.mark.parametrize("folds", [1, 5])  # the held lists choose the step, or the training lists' folds do
def test_phase_one_keeps_the_fused_order_when_the_features_mislead(tiny_bert, folds):
    torch.manual_seed(0)
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=16))
    train = hand_lists()  # in training the 'seen' item is the one taken...
    held = hand_lists(seed=1)
    held.click[:] = 0.0
    held.click[:, 0] = 1.0  # ...in the held-out lists it is never, and the fused order is already perfect
    normalise(r.model, train)
    fit = fit_features(r.model, train, np.arange(len(train)), RerankTrainConfig(feature_steps=100, feature_folds=folds),
                       held=held)
    assert fit.step == 0
    assert (fit.folds is None) is (folds == 1)
    assert np.array_equal(rerank_lists(r, held, TITLES, depth=6), held.items)  # the fused order, unchanged


def test_phase_one_counts_its_steps_on_the_training_lists_by_cross_validation(tiny_bert):
    torch.manual_seed(0)
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=16))
    train = hand_lists()
    normalise(r.model, train)
    cfg = RerankTrainConfig(feature_steps=100, feature_folds=3)
    curve = cross_validated_steps(r.model, train, np.arange(len(train)), cfg, every=25)
    assert curve.shape == (5,)  # steps 0, 25, 50, 75, 100
    assert curve[0] == pytest.approx(1 / np.log2(7))  # the fused order: each positive at rank 6 of 6
    assert curve.max() == pytest.approx(1.0)  # what the other folds learnt ('seen') ranks each fold's lists
    fit = fit_features(r.model, train, np.arange(len(train)), cfg, held=hand_lists(seed=1))
    assert fit.step == 25 * int(np.argmax(curve)) > 0
    assert fit.folds == {"folds": 3, "steps": fit.step, "fold_ndcg@10": 1.0,
                         "fold_fused_ndcg@10": round(1 / np.log2(7), 4)}  # 0.3562, as the build summary records it
    held = hand_lists(seed=1)
    assert list_ndcg(rerank_lists(r, held, TITLES, depth=6), held) == pytest.approx(1.0)


def test_phase_one_keeps_the_fused_order_when_the_other_folds_gain_nothing(tiny_bert):
    torch.manual_seed(0)
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=16))
    train = hand_lists()
    train.click[:] = 0.0
    train.click[:, 0] = 1.0  # the fused order is already perfect; 'seen' marks a candidate never taken
    train.purchase[:] = train.click
    normalise(r.model, train)
    held = hand_lists(seed=1)  # where 'seen' would win: the held lists do not choose the steps
    fit = fit_features(r.model, train, np.arange(len(train)), RerankTrainConfig(feature_steps=100, feature_folds=3),
                       held=held)
    assert fit.step == 0
    assert fit.folds == {"folds": 3, "steps": 0, "fold_ndcg@10": 1.0, "fold_fused_ndcg@10": 1.0}
    assert np.array_equal(rerank_lists(r, held, TITLES, depth=6), held.items)
