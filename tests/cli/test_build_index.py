"""`recsys build-index` from the command line on a generic events + items pair."""

import json

import pytest
from click.testing import CliRunner

from recsys.cli.main import cli
from recsys.retrieval.retriever import TwoTowerRetriever


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from recsys.synthetic import generate_synthetic

    d = generate_synthetic(n_users=60, n_items=48, n_needs=4, seed=2)
    root = tmp_path_factory.mktemp("shop")
    d.dataset.events.write_csv(root / "events.csv")
    d.dataset.items.write_csv(root / "items.csv")
    return root


def test_build_index_cli(files, tiny_bert, tmp_path):
    out = tmp_path / "art"
    args = ["build-index", "--events", str(files / "events.csv"), "--items", str(files / "items.csv"),
            "--text-fields", "title,category,brand", "--text-model", str(tiny_bert), "--holdout", "temporal",
            "--epochs", "2", "--pretrain-epochs", "1", "--dim", "16", "--max-len", "10", "--out", str(out),
            "--quiet", "--no-reranker", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["items"] == 48 and summary["epochs"] == 2 and summary["holdout"] == "temporal"
    r = TwoTowerRetriever.load(out)
    ids, _ = r.recommend([r.users.ids[0]], k=5)
    assert ids.shape == (1, 5)
    # a second build reuses the cached text vectors: nothing is encoded anew
    again = json.loads(CliRunner().invoke(cli, args).output)
    assert again["texts_encoded"] == 0


def test_build_index_bad_input(files, tmp_path):
    result = CliRunner().invoke(cli, ["build-index", "--events", str(tmp_path / "nope.csv"), "--quiet"])
    assert result.exit_code == 2
    assert result.output == f"Error: {tmp_path / 'nope.csv'}: no such file; check the path\n"
    result = CliRunner().invoke(cli, ["build-index", "--text-model", str(tmp_path / "no-model"), "--quiet",
                                      "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: --text-model {tmp_path / 'no-model'}: cannot load it")
    assert not (tmp_path / "a").exists()  # nothing half-written


def test_query_after_build(files, tiny_bert, tmp_path):
    out = tmp_path / "art"
    args = ["build-index", "--events", str(files / "events.csv"), "--items", str(files / "items.csv"),
            "--text-model", str(tiny_bert), "--epochs", "1", "--pretrain-epochs", "0", "--dim", "16",
            "--max-len", "10", "--out", str(out), "--quiet"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    r = TwoTowerRetriever.load(out)
    user = r.users.ids[3]
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(out), "--user", user, "-k", "4", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["user_id"] == user and len(body["items"]) == 4
    seen = set(r.items.to_external(r.seen(r.users.index(user))))
    assert not {i["item_id"] for i in body["items"]} & seen
    assert [i["provenance"]["two_tower"]["rank"] for i in body["items"]] == [1, 2, 3, 4]
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(out), "--user", "nobody"])
    assert (result.exit_code, result.output) == (2, "Error: unknown user id 'nobody': not in this dataset's user map\n")
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(tmp_path / "none"), "--user", user])
    assert result.exit_code == 2 and "no artifact folder here; build one with `recsys build-index" in result.output
