"""The stage provider: each stage's history and targets, and no list built from a model that saw them."""

import datetime as dt

import polars as pl
import pytest

from recsys.artifacts import Artifact
from recsys.errors import ArtifactError
from recsys.pipeline import BuildOptions, RerankOptions, build, evaluate_artifact, provider, stage_data
from recsys.rerank.config import RerankTrainConfig
from recsys.rerank.model import RerankerConfig
from recsys.retrieval import recommender
from recsys.retrieval import sources as registry
from recsys.retrieval.charngram import CharNgramEncoder
from recsys.retrieval.sources import ALSSource
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig
from recsys.sources import CandidateSource, empty_lists
from recsys.splits import make_split
from recsys.synthetic import generate_synthetic

KEYS = ["user_id", "item_id", "timestamp"]


def _events():
    t = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    rows = [(u, f"i{k}", t + dt.timedelta(hours=k + n)) for n, u in enumerate(("a", "b")) for k in range(4)]
    return pl.DataFrame({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows], "event": ["view"] * 8,
                         "timestamp": [r[2] for r in rows], "session_id": [None] * 8, "value": [None] * 8},
                        schema_overrides={"session_id": pl.Utf8, "value": pl.Float64})


@pytest.mark.parametrize("holdout, stage, parts, history, targets", [
    ("loo", "valid", ("train",), 4, ["i2", "i2"]),
    ("loo", "test", ("train", "valid"), 6, ["i3", "i3"]),
    ("none", "valid", ("loo_train",), 4, ["i2", "i2"]),
])
def test_each_stage_sees_what_comes_before_its_targets(holdout, stage, parts, history, targets):
    split = make_split(_events(), holdout)
    s = stage_data({"train": split.train, "valid": split.valid, "test": split.test}, holdout, stage)
    assert s.parts == parts and s.history.height == history and s.targets["item_id"].to_list() == targets
    assert s.history.join(s.targets, on=KEYS, how="inner").height == 0
    assert s.allows(("train",)) == ("train" in parts) and not s.allows(("train", "valid", "test"))


def test_a_production_build_has_no_test_stage():
    split = make_split(_events(), "none")
    with pytest.raises(ArtifactError, match="built with --holdout none, so it holds no test split to score"):
        stage_data({"train": split.train, "valid": split.valid, "test": split.test}, "none", "test")


class Spy(CandidateSource):
    """A source that learns: it remembers the events it was fitted on, by what it says it learnt."""

    name = "spy"
    learns = True
    fitted: dict = {}

    def fit(self, events, parts=()):
        super().fit(events, parts)
        Spy.fitted[("spy", tuple(parts), events.height)] = events.select("user_idx", "item_idx", "timestamp")
        return self

    def candidates(self, batch, n, include_seen, allowed=None):
        return empty_lists(len(batch), n)


@pytest.mark.parametrize("holdout", ["temporal", "none"])
def test_no_stage_list_comes_from_a_model_that_saw_its_targets(holdout, tiny_bert, tmp_path, monkeypatch):
    """Every engine the build (fusion tuning, reranker lists) and evaluate use comes from the provider,
    and each of its models learnt only from events before the stage's targets."""
    monkeypatch.setattr(registry, "SOURCES", [*registry.SOURCES, Spy])
    real_als_fit = ALSSource.fit

    def als_fit(self, events, parts=()):
        Spy.fitted[("als", tuple(parts), events.height)] = events.select("user_idx", "item_idx", "timestamp")
        return real_als_fit(self, events, parts)

    monkeypatch.setattr(ALSSource, "fit", als_fit)
    engines, built = [], []
    real_engine, real_init = provider.stage_engine, recommender.Recommender.__init__

    def stage_engine(art, stage, *args, **kwargs):
        rec = real_engine(art, stage, *args, **kwargs)
        engines.append((stage, rec))
        return rec

    def init(self, *args, **kwargs):
        built.append(self)
        real_init(self, *args, **kwargs)

    for module in ("recsys.pipeline.stages", "recsys.pipeline.evaluate"):
        monkeypatch.setattr(f"{module}.stage_engine", stage_engine)
    monkeypatch.setattr(recommender.Recommender, "__init__", init)
    d = generate_synthetic(n_users=60, n_items=40, n_needs=4, seed=8)
    opts = BuildOptions(holdout=holdout, tower=TowerConfig(dim=16, max_len=10, n_layers=1),
                        train=TrainConfig(epochs=1, pretrain_epochs=0), text_encoder=CharNgramEncoder(dim=8),
                        reranker=RerankOptions(model=str(tiny_bert), config=RerankerConfig(max_length=16),
                                               train=RerankTrainConfig(epochs=1, feature_steps=5),
                                               include_seen=True),  # each user's last event is on a seen item
                        show_progress=False)
    build(d.dataset, tmp_path / "art", opts=opts)
    if holdout != "none":
        evaluate_artifact(Artifact.open(tmp_path / "art"), ks=(10,), rerank=False)
    assert {s.name for s, _ in engines} == ({"valid"} if holdout == "none" else {"valid", "test"})
    assert len(engines) == (2 if holdout == "none" else 3)  # fusion, reranker (, evaluate)
    assert sorted(map(id, built)) == sorted(id(rec) for _, rec in engines)  # no engine from elsewhere
    for stage, rec in engines:
        ids = rec.users.to_internal(stage.targets["user_id"]), rec.items.to_internal(stage.targets["item_id"])
        targets = stage.targets.select(pl.Series("user_idx", ids[0]), pl.Series("item_idx", ids[1]), "timestamp")
        assert stage.allows(rec.model.fit_info.parts), (stage.name, rec.model.fit_info)
        if holdout == "none":  # the served two-tower learnt everything: the stage's own model stands in
            assert rec.model.fit_info.parts == ("loo_train",)
        for name in ("als", "spy"):
            info = rec.sources[name].fit_info
            assert stage.allows(info.parts)
            learnt = Spy.fitted[(name, info.parts, info.events)]
            assert learnt.join(targets, on=["user_idx", "item_idx", "timestamp"], how="inner").height == 0
            assert learnt.height == stage.history.height or info.parts != stage.parts
