"""A small built artifact (synthetic shop, char-ngram text, ALS, no reranker) for the service tests."""

import pytest

from recsys.pipeline import BuildOptions, build
from recsys.retrieval.charngram import CharNgramEncoder
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig
from recsys.synthetic import generate_synthetic


def build_shop(out, seed: int = 4):
    d = generate_synthetic(n_users=120, n_items=60, n_needs=4, seed=seed)
    build(d.dataset, out, opts=BuildOptions(
        holdout="temporal", tower=TowerConfig(dim=16, max_len=20, n_layers=1), text_encoder=CharNgramEncoder(dim=16),
        train=TrainConfig(epochs=2, pretrain_epochs=0), show_progress=False))
    return d


@pytest.fixture(scope="session")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    d = build_shop(root / "art")
    return root / "art", d


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the test item (``item.rep_call``), for fixtures that act on failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
