"""Run the docstring examples of the core modules."""

import doctest
import importlib

import pytest

MODULES = ["recsys.pipeline.tune", "recsys.reorder", "recsys.retrieval.losses", "recsys.retrieval.layers", "recsys.retrieval.train", "recsys.pipeline.two_tower", "recsys.retrieval.sequences", "recsys.retrieval.needs", "recsys.retrieval.distributed", "recsys.retrieval.als", "recsys.fusion", "recsys.retrieval.personal", "recsys.rerank.features", "recsys.cooccurrence", "recsys.rerank.train", "recsys.rerank.feature_phase", "recsys.retrieval.towers", "recsys.eval.metrics", "recsys.eval.protocols", "recsys.schema", "recsys.io", "recsys.timestamps", "recsys.catalog", "recsys.idmap", "recsys.artifacts", "recsys.synthetic", "recsys.splits"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
