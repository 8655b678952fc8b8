"""A source registered in one line reaches the fused list, fusion tuning, the reranker's features,
the funnel and the command line's help."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from recsys.artifacts import Artifact
from recsys.catalog import item_groups
from recsys.pipeline import BuildOptions, RerankOptions, build, evaluate_artifact, load
from recsys.rerank.config import RerankTrainConfig
from recsys.rerank.model import RerankerConfig
from recsys.retrieval import sources as registry
from recsys.retrieval.charngram import CharNgramEncoder
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig
from recsys.sources import CandidateSource, empty_lists
from recsys.synthetic import generate_synthetic


class FirstItems(CandidateSource):
    """A toy: the catalogue's first items the user has not seen, in index order, scored 1/rank."""

    name = "first_items"
    fusion_grid = (0.5, 1.0)

    def candidates(self, batch, n, include_seen, allowed=None):
        ids, scores = empty_lists(len(batch), n)
        for r, seen in enumerate(batch.seen()):
            items = np.setdiff1d(np.arange(self.space.n_items), [] if include_seen else seen)[:n]
            ids[r, :items.size], scores[r, :items.size] = items, 1.0 / np.arange(1, items.size + 1)
        return ids, scores


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(registry, "SOURCES", list(registry.SOURCES))
    return registry.register(FirstItems)


def test_a_registered_source_is_fused_tuned_reranked_and_scored(toy, tiny_bert, tmp_path):
    d = generate_synthetic(n_users=60, n_items=40, n_needs=4, seed=3)
    opts = BuildOptions(holdout="temporal", tower=TowerConfig(dim=16, max_len=10, n_layers=1),
                        train=TrainConfig(epochs=1, pretrain_epochs=0), text_encoder=CharNgramEncoder(dim=8),
                        reranker=RerankOptions(model=str(tiny_bert), config=RerankerConfig(max_length=16),
                                               train=RerankTrainConfig(epochs=1, feature_steps=10)),
                        show_progress=False)
    summary = build(d.dataset, tmp_path / "art", opts=opts)
    assert summary["sources"] == ["two_tower", "als", "similar", "repeat", "reorder", "reengage", "transitions", "popular", "first_items"]
    assert set(summary["fusion"]["exclude_seen"]["weights"]) == {"als", "similar", "transitions", "first_items"}  # tuned on its grid
    rec = load(tmp_path / "art", rerank="always")
    assert rec.reranker.cfg.features[-8:-5] == ("first_items_inv_rank", "first_items_score", "first_items_present")
    user = rec.users.ids[0]
    got = rec.explain_one(user, k=rec.n_items, include_seen=False)
    assert any("first_items" in item["provenance"] for item in got["items"])
    first = min(rec.items.index(i["item_id"]) for i in got["items"] if "first_items" in i["provenance"])
    assert first == int(np.setdiff1d(np.arange(rec.n_items), rec.seen(rec.users.index(user)))[0])
    funnel = evaluate_artifact(Artifact.open(tmp_path / "art"), ks=(10, 20))
    assert "first_items" in funnel.sources and "first_items" in funnel.metrics
    # the reorder source read the catalogue's category: one rate per category, and not one for all
    rates, groups = rec.sources["reorder"].rates[:, 1], item_groups(rec.catalog, rec.items.ids)
    assert groups.min() >= 0 and all(np.unique(rates[groups == g]).size == 1 for g in np.unique(groups))
    assert np.unique(rates).size > 1
    assert "recall@20 merged - first_items" in funnel.intervals


def test_the_command_line_names_the_registered_sources(toy):
    import importlib

    from recsys.cli import query
    from recsys.errors import DataError

    importlib.reload(query)  # the help text is made from the registry when the module loads
    try:
        out = CliRunner().invoke(query.query, ["--help"]).output
        assert "(sources: two_tower, als, similar, repeat, reorder, reengage, transitions, popular, first_items)" in " ".join(out.split())
        with pytest.raises(DataError, match="SOURCE one of two_tower, als, similar, repeat, reorder, reengage, transitions, popular, first_items and"):
            query.parse_fusion_weights("nope=1")
        assert query.parse_fusion_weights("first_items=0.5") == (("first_items", 0.5),)
    finally:
        registry.SOURCES.remove(FirstItems)
        importlib.reload(query)


def test_a_source_name_is_registered_once(toy):
    with pytest.raises(Exception, match="candidate source 'first_items': give it a name that is not one of"):
        registry.register(FirstItems)
    assert json.dumps(registry.names())


def test_the_readme_example_source_builds_and_serves(monkeypatch, tmp_path):
    """The "Extending" example of the README, as written there."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n# retrieval/sources/trending.py\n(.*?)```", text, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the project's own README
    monkeypatch.setattr(registry, "SOURCES", [*registry.SOURCES, scope["TrendingSource"]])
    d = generate_synthetic(n_users=40, n_items=30, n_needs=3, seed=4)
    build(d.dataset, tmp_path / "art", opts=BuildOptions(
        holdout="temporal", tower=TowerConfig(dim=8, max_len=10, n_layers=1), train=TrainConfig(epochs=1, pretrain_epochs=0),
        text_encoder=CharNgramEncoder(dim=8), show_progress=False))
    rec = load(tmp_path / "art")
    lists = rec.source_lists(rec.stored_batch(np.arange(rec.n_users)))
    ids, scores = lists["trending"]
    counts = np.where(ids >= 0, scores, 0.0)  # counts, best first, then padding
    assert (ids[:, 0] >= 0).all() and (np.diff(counts, axis=1) <= 0).all()
    assert "trending" in rec.fuse(lists).sources
