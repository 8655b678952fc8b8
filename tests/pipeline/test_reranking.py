"""The reranker in the CLI: built by build-index, used by query/recommend/evaluate, added by train-reranker."""

import json

import pytest
from click.testing import CliRunner

from recsys import layout
from recsys.artifacts import Artifact
from recsys.cli.main import cli


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_bert):
    from recsys.synthetic import generate_synthetic

    d = generate_synthetic(n_users=60, n_items=48, n_needs=4, seed=2)
    root = tmp_path_factory.mktemp("shop")
    d.dataset.events.write_csv(root / "events.csv")
    d.dataset.items.write_csv(root / "items.csv")
    base = ["build-index", "--events", str(root / "events.csv"), "--items", str(root / "items.csv"),
            "--text-model", str(tiny_bert), "--epochs", "1", "--pretrain-epochs", "0", "--dim", "16", "--max-len", "10",
            "--holdout", "temporal", "--quiet"]
    with_rr = root / "with"
    result = CliRunner().invoke(cli, base + ["--out", str(with_rr), "--reranker-model", str(tiny_bert),
                                             "--reranker-epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    without = root / "without"
    assert CliRunner().invoke(cli, base + ["--out", str(without), "--no-reranker"]).exit_code == 0
    return with_rr, without, json.loads(result.output)


def test_build_trains_the_reranker(built):
    with_rr, without, summary = built
    # epoch 0 (the heads on the retrieval features alone), then the one fine-tuning epoch asked for
    assert summary["reranker"]["train_lists"] > 0 and [h["epoch"] for h in summary["reranker"]["history"]] == [0, 1]
    assert Artifact.open(with_rr).has(layout.under(layout.RERANKER, layout.WEIGHTS))
    assert not Artifact.open(without).has(layout.under(layout.RERANKER, layout.WEIGHTS))


def _validation(monkeypatch, reranked: float, fused: float) -> None:
    """Make the artifact's build summary say the reranker scored ``reranked`` on validation against
    the fused order's ``fused`` (a tiny random reranker may land on either side of it)."""
    real = Artifact.load_json
    monkeypatch.setattr(Artifact, "load_json", lambda self, name: {"reranker": {
        "best_valid_ndcg@10": reranked, "fused_valid_ndcg@10": fused}} if name == layout.SUMMARY else real(self, name))


def test_query_reranks_and_no_rerank_compares(built, monkeypatch):
    with_rr, _, _ = built
    _validation(monkeypatch, 0.2, 0.1)  # it won on validation: query serves it
    user = Artifact.open(with_rr).load_table(layout.split_table("train"))["user_id"][0]
    body = json.loads(CliRunner().invoke(cli, ["query", "--artifacts", str(with_rr), "--user", user, "--json"]).stdout)
    assert body["reranked"]
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    for rank, item in enumerate(body["items"], start=1):
        rr = item["provenance"]["reranker"]
        assert rr["rank"] == rank and rr["score"] == item["score"]
        assert rr["score"] == pytest.approx(0.3 * rr["p_click"] + 0.7 * rr["p_purchase"], abs=1e-5)
        assert set(item["provenance"]) - {"reranker"}  # the retrieval sources stay listed
    plain = json.loads(CliRunner().invoke(cli, ["query", "--artifacts", str(with_rr), "--user", user, "--json",
                                                "--no-rerank"]).stdout)
    assert not plain["reranked"] and all("reranker" not in i["provenance"] for i in plain["items"])


def test_evaluate_reports_the_reranked_list(built):
    with_rr, _, _ = built
    result = CliRunner().invoke(cli, ["evaluate", "--artifacts", str(with_rr), "--k", "10,50", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert {"merged", "reranked"} <= set(body["metrics"])
    assert "ndcg@10 reranked - merged" in body["intervals"]
    # reranking reorders the top 50 of the fused list: recall@50 cannot change
    assert body["metrics"]["reranked"]["recall@50"] == body["metrics"]["merged"]["recall@50"]


def test_train_reranker_adds_one_atomically(built, tiny_bert, tmp_path):
    _, without, _ = built
    before = Artifact.open(without).manifest["files"]
    bad = CliRunner().invoke(cli, ["train-reranker", "--artifacts", str(without), "--reranker-model",
                                   str(tmp_path / "nope"), "--quiet"])
    assert bad.exit_code == 2 and bad.output.startswith(f"Error: --reranker-model {tmp_path / 'nope'}: cannot load it")
    assert Artifact.open(without).manifest["files"] == before  # the failed run left the artifact as it was
    ok = CliRunner().invoke(cli, ["train-reranker", "--artifacts", str(without), "--reranker-model", str(tiny_bert),
                                  "--epochs", "1", "--quiet", "--json"])
    assert ok.exit_code == 0, ok.output
    art = Artifact.open(without)
    assert art.has(layout.under(layout.RERANKER, layout.WEIGHTS)) and art.manifest["config"]["reranker"]["train"]["epochs"] == 1
    assert all(art.manifest["files"][name]["sha256"] == meta["sha256"] for name, meta in before.items()
               if name != layout.SUMMARY)


def test_a_reranker_that_loses_on_validation_is_not_served(built, monkeypatch, caplog):
    from recsys.pipeline import load

    with_rr, _, summary = built
    assert {"best_valid_ndcg@10", "fused_valid_ndcg@10"} <= set(summary["reranker"])
    _validation(monkeypatch, 0.2, 0.1)
    assert load(with_rr).reranker is not None
    _validation(monkeypatch, 0.1, 0.2)
    assert load(with_rr).reranker is None and load(with_rr, rerank="always").reranker is not None
    assert "did not beat the fused order on validation (NDCG@10 0.1 vs 0.2)" in caplog.text


def test_the_serving_decision_reads_the_lists_that_did_not_choose_the_step(built, monkeypatch):
    from recsys.pipeline import load
    from recsys.pipeline.reranking import reranker_helps

    with_rr, _, summary = built
    fit = summary["reranker"]
    assert fit["decide_lists"] > 0 and {"decide_ndcg@10", "decide_fused_ndcg@10", "decide_interval", "learnt"} <= set(fit)
    # best on the lists that chose its step, behind on the others: the fused list is served
    chosen_by = {"best_valid_ndcg@10": 0.3, "fused_valid_ndcg@10": 0.1}
    assert not reranker_helps({"reranker": {**chosen_by, "decide_ndcg@10": 0.1, "decide_fused_ndcg@10": 0.2,
                                            "decide_lists": 50}})
    assert reranker_helps({"reranker": {**chosen_by, "decide_ndcg@10": 0.25, "decide_fused_ndcg@10": 0.2, "decide_lists": 50}})
    # ahead on two lists is no evidence: the fused list is served
    assert not reranker_helps({"reranker": {**chosen_by, "decide_ndcg@10": 0.25, "decide_fused_ndcg@10": 0.2,
                                            "decide_lists": 2}})
    real = Artifact.load_json
    monkeypatch.setattr(Artifact, "load_json", lambda self, name: {"reranker": {
        **chosen_by, "decide_ndcg@10": 0.1, "decide_fused_ndcg@10": 0.2}} if name == layout.SUMMARY else real(self, name))
    assert load(with_rr).reranker is None


def test_a_learnt_reranker_is_served_unless_the_deciding_lists_show_it_behind():
    from recsys.pipeline.reranking import reranker_decision

    # cross-validation kept feature steps: behind by 0.02 on 90 lists, but within noise -> served
    fit = {"decide_lists": 90, "decide_ndcg@10": 0.1562, "decide_fused_ndcg@10": 0.1763, "learnt": True,
           "decide_interval": [-0.0612, 0.0198]}
    assert reranker_decision({"reranker": fit}) == (True, "not behind the fused order on the 90 lists that decide "
                                                    "(NDCG@10 0.1562 vs 0.1763, difference in [-0.0612, 0.0198])")
    # behind with an interval below zero -> the fused list
    assert not reranker_decision({"reranker": {**fit, "decide_interval": [-0.0612, -0.0011]}})[0]
    # it kept the fused order: nothing to serve, however the (equal) figures read
    same = {**fit, "learnt": False, "decide_ndcg@10": 0.1763, "decide_interval": [0.0, 0.0]}
    assert reranker_decision({"reranker": same}) == (
        False, "it kept the fused order (no feature step was kept, and the text phase did not earn its place)")
    # too few deciding lists, or none with a label: no evidence, the fused list
    assert reranker_decision({"reranker": {**fit, "decide_lists": 19}}) == (
        False, "only 19 held-out lists decide (at least 20 are needed)")
    assert reranker_decision({"reranker": {**fit, "decide_interval": None}}) == (
        False, "none of the 90 lists that decide holds a label")


def test_decide_fit_scores_the_lists_by_hand(monkeypatch):
    import numpy as np

    import recsys.pipeline.reranking as reranking
    from recsys.rerank.lists import RerankLists

    # two labelled lists and one without a label, fused order as given; the reranker reverses each list
    items = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    click = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0]])
    lists = RerankLists(np.arange(3), [None] * 3, [""] * 3, items, np.zeros((3, 3, 1), np.float32), click,
                        np.zeros_like(click))
    monkeypatch.setattr(reranking, "rerank_lists", lambda reranker, lst, titles, depth: lst.items[:, ::-1])
    got = reranking.decide_fit(None, lists, [], 3)
    # fused: list 1's label at rank 1 (NDCG 1), list 2's at rank 3 (1 / log2(4) = 0.5); reversed: 0.5 and 1;
    # the list without a label is counted but not scored
    assert got["decide_lists"] == 3
    assert got["decide_fused_ndcg@10"] == got["decide_ndcg@10"] == (1 + 0.5) / 2
    assert got["decide_interval"] == [-0.5, 0.5]  # resampling the two lists' differences, -0.5 and +0.5
