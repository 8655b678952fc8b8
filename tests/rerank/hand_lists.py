"""Hand-made reranker lists shared by the reranker's tests."""

import numpy as np
import torch

from recsys.fusion import feature_names
from recsys.rerank.lists import RerankLists

FEATURES = feature_names(["two_tower", "als", "repeat", "popular"])
FUSED = FEATURES.index("fused")
SEEN = FEATURES.index("seen")
TITLES = [f"item {i}" for i in range(40)]


def hand_lists(n_lists=12, n=6, seed=0):
    """Hand-made lists: the fused order puts the positive last; only the 'seen' feature marks it."""
    rng = np.random.default_rng(seed)
    items = np.stack([rng.permutation(40)[:n] for _ in range(n_lists)])
    feats = np.zeros((n_lists, n, len(FEATURES)), np.float32)
    feats[:, :, FUSED] = np.linspace(1.0, 0.5, n)  # best first by the fused score
    feats[:, -1, SEEN] = 1.0
    click = np.zeros((n_lists, n), np.float32)
    click[:, -1] = 1.0
    return RerankLists(np.arange(n_lists), [None] * n_lists, ["ctx"] * n_lists, items, feats, click, click.copy())


def normalise(model, lists: RerankLists) -> None:
    """The model's feature scaling from ``lists``' candidates, as training sets it."""
    x = lists.features[lists.items >= 0]
    model.feat_mean.copy_(torch.as_tensor(x.mean(0)))
    model.feat_std.copy_(torch.as_tensor(x.std(0) + 1e-6))
