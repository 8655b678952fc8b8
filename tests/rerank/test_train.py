"""Reranker training, phase one: the heads learn the retrieval features; the text part starts silent."""

import numpy as np
import pytest
import torch

from recsys.fusion import feature_names
from recsys.rerank.lists import RerankLists
from recsys.rerank.model import Reranker, RerankerConfig
from recsys.rerank.train import RerankTrainConfig, fit_features, list_ndcg, rerank_lists, train_reranker

FEATURES = feature_names(["two_tower", "als", "repeat", "popular"])

FUSED = FEATURES.index("fused")
SEEN = FEATURES.index("seen")


def _lists(n_lists=12, n=6, seed=0):
    """Hand-made lists: the fused order puts the positive last; only the 'seen' feature marks it."""
    rng = np.random.default_rng(seed)
    items = np.stack([rng.permutation(40)[:n] for _ in range(n_lists)])
    feats = np.zeros((n_lists, n, len(FEATURES)), np.float32)
    feats[:, :, FUSED] = np.linspace(1.0, 0.5, n)  # best first by the fused score
    feats[:, -1, SEEN] = 1.0
    click = np.zeros((n_lists, n), np.float32)
    click[:, -1] = 1.0
    return RerankLists(np.arange(n_lists), [None] * n_lists, ["ctx"] * n_lists, items, feats, click, click.copy())


@pytest.mark.parametrize("loss", ["pointwise", "listwise"])
def test_features_alone_move_the_marked_item_to_the_top(tiny_bert, loss):
    torch.manual_seed(0)
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=16))
    lists = _lists()
    titles = [f"item {i}" for i in range(40)]
    x = lists.features[lists.items >= 0]
    r.model.feat_mean.copy_(torch.as_tensor(x.mean(0)))
    r.model.feat_std.copy_(torch.as_tensor(x.std(0) + 1e-6))
    # fused order: the positive at rank 6 of 6, NDCG@10 = 1 / log2(7)
    assert list_ndcg(lists.items, lists) == pytest.approx(1 / np.log2(7))
    fit_features(r.model, lists, np.arange(len(lists)), RerankTrainConfig(loss=loss, feature_steps=100))
    hidden = r.model.bert.config.hidden_size
    assert torch.count_nonzero(r.model.click.weight[:, :hidden]) == 0  # the text part is still silent
    assert list_ndcg(rerank_lists(r, lists, titles, depth=6), lists) == pytest.approx(1.0)


def test_phase_two_learns_from_text_and_leaves_the_feature_part_alone(tiny_bert):
    torch.manual_seed(0)
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=16))
    lists = _lists()
    lists.features[:] = 0.0  # no feature says anything: only the titles can
    titles = [f"item {i}" for i in range(40)]
    for row in range(len(lists)):
        titles[lists.items[row, -1]] = "the one they take"
    model = r.model
    hidden = model.bert.config.hidden_size
    fit = train_reranker(r, lists, lists, titles, RerankTrainConfig(epochs=3, feature_steps=5, lr=1e-3, head_lr=1e-2,
                                                                   lists_per_step=4, negatives=5))
    features_after = [p.detach().clone() for p in model.features.parameters()]
    features_after += [h.weight[:, hidden:].detach().clone() for h in (model.click, model.purchase)]
    assert [h["epoch"] for h in fit["history"]] == [0, 1, 2, 3]
    assert fit["best_valid_ndcg@10"] > fit["history"][0]["valid_ndcg@10"]  # the text taught it something
    assert torch.count_nonzero(model.click.weight[:, :hidden]) > 0
    # the feature part is phase one's: a second run of phase two from the same start changes none of it
    torch.manual_seed(0)
    r2 = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=16))
    train_reranker(r2, lists, lists, titles, RerankTrainConfig(epochs=0, feature_steps=5))
    start = [*r2.model.features.parameters(), *(h.weight[:, hidden:] for h in (r2.model.click, r2.model.purchase))]
    assert len(start) == len(features_after)
    for a, b in zip(features_after, start):
        assert torch.equal(a, b)


def test_phase_one_keeps_the_fused_order_when_the_features_mislead(tiny_bert):
    torch.manual_seed(0)
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=16))
    train = _lists()  # in training the 'seen' item is the one taken...
    held = _lists(seed=1)
    held.click[:] = 0.0
    held.click[:, 0] = 1.0  # ...in the held-out lists it is never, and the fused order is already perfect
    x = train.features[train.items >= 0]
    r.model.feat_mean.copy_(torch.as_tensor(x.mean(0)))
    r.model.feat_std.copy_(torch.as_tensor(x.std(0) + 1e-6))
    _, step = fit_features(r.model, train, np.arange(len(train)), RerankTrainConfig(feature_steps=100), held=held)
    assert step == 0
    titles = [f"item {i}" for i in range(40)]
    assert np.array_equal(rerank_lists(r, held, titles, depth=6), held.items)  # the fused order, unchanged


@pytest.mark.parametrize("keep_text", [False, True])
def test_keep_text_keeps_a_text_epoch_that_loses_to_the_features(tiny_bert, keep_text):
    torch.manual_seed(0)
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=16))
    lists = _lists()  # the 'seen' feature finds every positive: phase one reads NDCG@10 1.0, no epoch can beat it
    titles = [f"item {i}" for i in range(40)]
    hidden = r.model.bert.config.hidden_size
    fit = train_reranker(r, lists, lists, titles, RerankTrainConfig(epochs=2, feature_steps=100, lr=1e-3, head_lr=1e-2,
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
