"""`recsys build-index` from the command line on a generic events + items pair."""

import datetime as dt
import json

import numpy as np
import pytest
from click.testing import CliRunner

from recsys import layout
from recsys.cli.main import cli
from recsys.retrieval.recommender import Recommender


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
    r = Recommender.load(out)
    ids, _ = r.recommend([r.users.ids[0]], k=5)
    assert ids.shape == (1, 5)
    # a second build reuses the cached text vectors: nothing is encoded anew
    again = json.loads(CliRunner().invoke(cli, args).output)
    assert again["texts_encoded"] == 0


def test_build_index_reads_tower_and_train_from_the_config_file(files, tiny_bert, tmp_path):
    (tmp_path / "model.toml").write_text("[tower]\ndim = 8\nmax_len = 6\n[train]\nepochs = 1\nwindow_stride = 2\n"
                                         "pretrain_epochs = 0\n")
    base = ["build-index", "--events", str(files / "events.csv"), "--items", str(files / "items.csv"),
            "--text-model", str(tiny_bert), "--quiet", "--no-reranker", "--no-als"]
    result = CliRunner().invoke(cli, [*base, "--config", str(tmp_path / "model.toml"), "--max-len", "7",
                                      "--out", str(tmp_path / "a")])  # the command line wins
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "a" / layout.MANIFEST).read_text())["config"]
    assert (config["tower"]["dim"], config["tower"]["max_len"]) == (8, 7)
    assert (config["train"]["epochs"], config["train"]["window_stride"], config["train"]["pretrain_epochs"]) == (1, 2, 0)
    (tmp_path / "bad.toml").write_text("[train]\nepoch = 3\n")
    result = CliRunner().invoke(cli, [*base, "--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and result.output.startswith(
        f"Error: {tmp_path / 'bad.toml'}: [train] unknown key(s) epoch; known: batch_size, epochs, eval_k")
    (tmp_path / "bad.toml").write_text('[tower]\ndim = "big"\n')
    result = CliRunner().invoke(cli, [*base, "--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "b")])
    assert result.output == f"Error: {tmp_path / 'bad.toml'}: [tower] dim = 'big': expected int (default 64)\n"
    assert not (tmp_path / "b").exists()


def test_build_index_bad_input(files, tmp_path):
    result = CliRunner().invoke(cli, ["build-index", "--events", str(tmp_path / "nope.csv"), "--quiet"])
    assert result.exit_code == 2
    assert result.output == f"Error: {tmp_path / 'nope.csv'}: no such file; check the path\n"
    result = CliRunner().invoke(cli, ["build-index", "--text-model", str(tmp_path / "no-model"), "--quiet",
                                      "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: --text-model {tmp_path / 'no-model'}: cannot load it")
    assert not (tmp_path / "a").exists()  # nothing half-written


def test_build_says_the_history_it_chose_from_the_data(files, tiny_bert, tmp_path):
    import polars as pl

    # every (user, item) pair once: a log that never repeats reads 20 events in windows every 5
    pl.read_csv(files / "events.csv").unique(["user_id", "item_id"], keep="first", maintain_order=True) \
        .write_csv(tmp_path / "once.csv")
    args = ["build-index", "--events", str(tmp_path / "once.csv"), "--items", str(files / "items.csv"),
            "--text-model", str(tiny_bert), "--epochs", "1", "--pretrain-epochs", "0", "--dim", "16",
            "--out", str(tmp_path / "art"), "--quiet", "--no-reranker"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "  history   last 20 events, windows every 5, up to 1 epoch (repeat share < 0.1: from the data)\n" \
        in result.output


@pytest.fixture(scope="module")
def art(files, tiny_bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "art"
    args = ["build-index", "--events", str(files / "events.csv"), "--items", str(files / "items.csv"),
            "--text-model", str(tiny_bert), "--epochs", "1", "--pretrain-epochs", "0", "--dim", "16",
            "--max-len", "10", "--out", str(out), "--quiet", "--no-reranker"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out


def rrf(provenance: dict, weights: dict) -> float:
    return sum(weights.get(s, 1.0) / (60 + p["rank"]) for s, p in provenance.items())


def test_query_after_build(art):
    r = Recommender.load(art)
    user = r.users.ids[3]
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(art), "--user", user, "-k", "4", "--json",
                                      "--exclude-seen"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["user_id"] == user and body["known_user"] and len(body["items"]) == 4
    assert body["seen_items"] == "excluded"
    seen = set(r.items.to_external(r.seen(r.users.index(user))))
    assert not {i["item_id"] for i in body["items"]} & seen
    weights = r.fusion_weights(include_seen=False)  # chosen on the validation stage at build time
    assert weights == r.art.load_json(layout.FUSION)["exclude_seen"]["weights"] and set(weights) == {"als", "similar", "transitions"}
    for item in body["items"]:  # the fused score is the reciprocal-rank fusion of the provenance
        assert set(item["provenance"]) <= {"two_tower", "als", "similar", "transitions"} and item["provenance"]
        assert item["score"] == pytest.approx(rrf(item["provenance"], weights), abs=1e-6)
        assert all(b["item_id"] in seen for b in item["because"])
    assert [i["score"] for i in body["items"]] == sorted([i["score"] for i in body["items"]], reverse=True)
    # weights given on the command line replace the tuned ones
    body = json.loads(CliRunner().invoke(cli, ["query", "--artifacts", str(art), "--user", user, "-k", "4", "--json",
                                               "--exclude-seen", "--fusion-weights", "als=0,two_tower=1"]).output)
    assert all(i["score"] == pytest.approx(rrf(i["provenance"], {"als": 0.0, "similar": 1.0, "transitions": 1.0}), abs=1e-6)
               for i in body["items"])
    # --include-seen lets the user's own items back in, proposed by the "repeat" source
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(art), "--user", user, "-k", "40", "--json",
                                      "--include-seen"])
    items = json.loads(result.output)["items"]
    assert {i["item_id"] for i in items} & seen
    assert all("repeat" in i["provenance"] for i in items if i["item_id"] in seen)
    # --at: the request's time reaches the reorder source as the Python API's ``at`` does
    late = dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc)

    def reorder_scores(items):
        return {i["item_id"]: i["provenance"]["reorder"]["score"] for i in items if "reorder" in i["provenance"]}

    api = r.explain_one(user, k=40, include_seen=True, at=late)["items"]
    assert reorder_scores(api) and reorder_scores(api) != reorder_scores(items)
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(art), "--user", user, "-k", "40", "--json",
                                      "--include-seen", "--at", "2031-01-01T00:00:00Z"])
    assert reorder_scores(json.loads(result.output)["items"]) == reorder_scores(api)


def test_query_unknown_user_and_fresh_history(art):
    r = Recommender.load(art)
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(art), "--user", "nobody", "--json", "-k", "3"])
    assert result.exit_code == 0
    assert result.stderr == (f"note: user 'nobody' has no history in {art}; serving popular items "
                             "(give --history ITEM[:EVENT],... to personalise)\n")
    body = json.loads(result.stdout)
    assert not body["known_user"] and [list(i["provenance"]) for i in body["items"]] == [["popular"]] * 3
    top = np.argsort(-r.popular, kind="stable")[:3]
    assert [i["item_id"] for i in body["items"]] == list(r.items.to_external(top))
    # a new user served from a handful of events given at query time
    a, b = r.items.ids[0], r.items.ids[1]
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(art), "--user", "nobody", "--json",
                                      "--history", f"{a}:view,{b}", "--exclude-seen"])
    body = json.loads(result.stdout)
    assert body["fresh_events"] == 2 and body["history_events"] == 2 and result.stderr == ""
    assert {a, b}.isdisjoint(i["item_id"] for i in body["items"])
    assert all(set(i["provenance"]) <= {"two_tower", "als", "similar", "transitions"} for i in body["items"])


def test_query_errors(art, tmp_path):
    user = Recommender.load(art).users.ids[3]
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(art), "--user", user, "--history", "zzz:view"])
    assert (result.exit_code, result.output) == (
        2, "Error: --history: item 'zzz' is not in this artifact's catalogue (48 items); use an item_id from the catalogue\n")
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(art), "--user", user, "--history", "i00001:like"])
    assert result.exit_code == 2
    assert result.output == ("Error: --history: event 'like' in 'i00001:like' is not one of view, click, cart, purchase; "
                             "write ITEM or ITEM:EVENT, e.g. i00001:purchase\n")
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(art), "--user", user, "--fusion-weights", "bm25=1"])
    assert (result.exit_code, result.output) == (
        2, "Error: --fusion-weights 'bm25=1': write SOURCE=WEIGHT pairs, SOURCE one of two_tower, als, similar, repeat, reorder, "
           "reengage, transitions, popular "
           "and WEIGHT a number >= 0, e.g. als=0.5,repeat=2\n")
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(art), "--user", user, "--at", "yesterday"])
    assert (result.exit_code, result.output) == (
        2, "Error: --at 'yesterday': not a time; write ISO 8601, e.g. 2017-03-01T10:00:00Z, or 'now'\n")
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(art), "--user", "x", "--context", "colour=red"])
    assert result.exit_code == 2 and result.output.startswith("Error: --context 'colour=red': write FIELD=VALUE with FIELD one of")
    result = CliRunner().invoke(cli, ["query", "--artifacts", str(tmp_path / "none"), "--user", user])
    assert result.exit_code == 2 and "no artifact folder here; build one with `recsys build-index" in result.output


def test_recommend_batch(art, tmp_path):
    r = Recommender.load(art)
    users = list(r.users.ids[:7]) + ["stranger"]
    (tmp_path / "users.txt").write_text("user_id\n" + "\n".join(users) + "\n")
    out = tmp_path / "out" / "recs.jsonl"
    result = CliRunner().invoke(cli, ["recommend", "--artifacts", str(art), "--users", str(tmp_path / "users.txt"),
                                      "-k", "5", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["user_id"] for x in lines] == users
    ids, scores = r.recommend(users[:7], k=5)
    for line, row_ids, row_scores in zip(lines, ids, scores):
        assert line["items"] == list(row_ids) and line["scores"] == pytest.approx(row_scores.tolist(), abs=1e-6)
    top = np.argsort(-r.popular, kind="stable")[:5]
    assert lines[-1]["items"] == list(r.items.to_external(top))
    # --at reaches the engine: the same answers as the API's at= (own items kept, so reorder ranks them)
    at = dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc)
    result = CliRunner().invoke(cli, ["recommend", "--artifacts", str(art), "--users", str(tmp_path / "users.txt"),
                                      "-k", "30", "--out", str(out), "--quiet", "--include-seen", "--at", at.isoformat()])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in out.read_text().splitlines()][:7]
    ids, scores = r.recommend(users[:7], k=30, include_seen=True, at=at)
    assert [x["scores"] for x in lines] == [pytest.approx(s[np.isfinite(s)].tolist(), abs=1e-6) for s in scores]
    assert not np.array_equal(scores, r.recommend(users[:7], k=30, include_seen=True)[1])  # the time matters
    # stdin works too; a missing file is a one-line error and leaves no output behind
    result = CliRunner().invoke(cli, ["recommend", "--artifacts", str(art), "--users", "-", "--out",
                                      str(tmp_path / "b.jsonl"), "--quiet"], input=users[0] + "\n")
    assert result.exit_code == 0 and len((tmp_path / "b.jsonl").read_text().splitlines()) == 1
    result = CliRunner().invoke(cli, ["recommend", "--artifacts", str(art), "--users", str(tmp_path / "no.txt"),
                                      "--out", str(tmp_path / "c.jsonl")])
    assert result.exit_code == 2 and not (tmp_path / "c.jsonl").exists()
    assert result.output == (f"Error: --users {tmp_path / 'no.txt'}: no such file; give a file with one user id per "
                             "line, or - for stdin\n")
    # a spreadsheet's byte-order mark is not part of the first id; a file in another encoding says how to convert
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + users[0].encode() + b"\n")
    result = CliRunner().invoke(cli, ["recommend", "--artifacts", str(art), "--users", str(tmp_path / "bom.txt"),
                                      "-k", "5", "--out", str(tmp_path / "d.jsonl"), "--quiet"])
    assert result.exit_code == 0 and json.loads((tmp_path / "d.jsonl").read_text())["items"] == list(r.recommend(users[:1], k=5)[0][0])
    (tmp_path / "latin.txt").write_bytes(users[0].encode() + b"\ncaf\xe9\n")
    result = CliRunner().invoke(cli, ["recommend", "--artifacts", str(art), "--users", str(tmp_path / "latin.txt"),
                                      "--out", str(tmp_path / "e.jsonl")])
    offset = len(users[0]) + 1 + len("caf")  # the é, as the event files' reader counts it
    assert (result.exit_code, result.output) == (2, f"Error: --users {tmp_path / 'latin.txt'}: not UTF-8 (byte 0xe9 at "
                                                    f"line 2, offset {offset}); re-encode it, e.g. iconv -f latin1 -t "
                                                    "utf-8 latin.txt > latin.utf8.txt\n")


def test_evaluate_prints_the_funnel(art):
    import polars as pl

    from recsys.artifacts import Artifact

    result = CliRunner().invoke(cli, ["evaluate", "--artifacts", str(art), "--k", "10,5", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["protocol"] == "loo" and body["sources"] == ["two_tower", "als", "similar", "transitions"] and not body["include_seen"]
    assert set(body["metrics"]) == {"two_tower", "als", "similar", "transitions", "merged", "popularity"}
    assert set(body["intervals"]) == {"recall@10 merged - two_tower", "recall@10 merged - als",
                                      "recall@10 merged - similar", "recall@10 merged - transitions",
                                      "ndcg@5 merged - two_tower",
                                      "recall@5 merged - two_tower"}
    # the two-tower row recomputed by hand: the share of test users whose one held-out item is in the top 10
    a = Artifact.open(art)
    test, train, valid = (a.load_table(layout.split_table(n)) for n in ("test", "train", "valid"))
    rec = Recommender(a, history=pl.concat([train, valid]))
    users = test["user_id"].to_list()
    ids, _ = rec.top("two_tower", users, k=10)
    hits = [t in set(row) for t, row in zip(test["item_id"].to_list(), ids)]
    assert body["metrics"]["two_tower"]["recall@10"] == round(sum(hits) / len(hits), 4)
    text = CliRunner().invoke(cli, ["evaluate", "--artifacts", str(art), "--k", "10"]).output
    assert "| merged |" in text and "recall@10 merged - als" in text
    result = CliRunner().invoke(cli, ["evaluate", "--artifacts", str(art), "--k", "ten"])
    assert (result.exit_code, result.output) == (2, "Error: --k 'ten': give positive cut-offs separated by commas, "
                                                    "e.g. 10,20,100\n")


def test_warm_start_and_add_items_cli(files, tiny_bert, tmp_path):
    base = ["--events", str(files / "events.csv"), "--items", str(files / "items.csv"), "--text-fields",
            "title,category,brand", "--holdout", "temporal", "--epochs", "1", "--pretrain-epochs", "0", "--dim", "16",
            "--max-len", "10", "--quiet", "--no-reranker", "--no-als", "--json", "--needs", "5"]
    first = CliRunner().invoke(cli, ["build-index", *base, "--text-model", str(tiny_bert), "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    warm = CliRunner().invoke(cli, ["build-index", *base, "--warm-start", str(tmp_path / "a"), "--out", str(tmp_path / "b")])
    assert warm.exit_code == 0, warm.output
    s = json.loads(warm.output)
    assert s["warm_start"]["items"] == 48 and s["texts_encoded"] == 0  # the old text model and its vectors
    assert s["needs"] == 5
    (tmp_path / "new.csv").write_text("item_id,title,category,brand\nn1,Kalo espresso beans,coffee,Kalo\n", encoding="utf-8")
    added = CliRunner().invoke(cli, ["add-items", "--artifacts", str(tmp_path / "b"), "--items", str(tmp_path / "new.csv")])
    assert added.exit_code == 0, added.output
    assert added.output == f"added 1 items to {tmp_path / 'b'} (0 already present, left unchanged); the index now holds 49 items\n"
    (tmp_path / "bad.csv").write_text("item_id,title\nn2,Something\n", encoding="utf-8")
    bad = CliRunner().invoke(cli, ["add-items", "--artifacts", str(tmp_path / "b"), "--items", str(tmp_path / "bad.csv")])
    assert bad.exit_code == 2 and bad.output == (
        f"Error: {tmp_path / 'bad.csv'}: missing column(s) 'category', 'brand'; the artifact's item text is made of "
        "title, category, brand: add those columns (empty values are fine)\n")
