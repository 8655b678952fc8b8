"""recsys forget, and user ids stored as a keyed hash (--hash-user-ids)."""

import json
import shutil

import polars as pl
from click.testing import CliRunner
from fastapi.testclient import TestClient

from recsys import layout
from recsys.artifacts import Artifact
from recsys.cli.main import cli
from recsys.privacy import pseudonymise
from recsys.serve.app import create_app
from recsys.serve.store import EventStore

KEY = "a-secret-key-of-some-length"


def test_forget_removes_the_user_from_store_and_artifact(shop, tmp_path):
    art, d = shop
    copy = tmp_path / "art"
    shutil.copytree(art, copy)
    user, other = d.users["user_id"][0], d.users["user_id"][1]
    store = EventStore(tmp_path / "events.sqlite")
    store.append([(user, "i00001", "view", None), (user, "i00002", "cart", None), (other, "i00003", "view", None)])
    idx = Artifact.open(copy).load_table(layout.USERS)["id"].to_list().index(user)
    result = CliRunner().invoke(cli, ["forget", "--artifacts", str(copy), "--store", str(tmp_path / "events.sqlite"),
                                      "--user", user, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["store_events_removed"] == 2 and out["user_index"] == idx and sum(out["rows_removed"].values()) > 0
    assert EventStore(tmp_path / "events.sqlite").count() == 1  # the other user's event stays
    a = Artifact.open(copy)  # rewritten atomically, checksums verified
    assert user not in a.load_table(layout.USERS)["id"].to_list()
    for name in ("train", "valid", "test"):
        assert a.load_table(layout.split_table(name)).filter(pl.col("user_id") == user).height == 0
    factors = a.load_array(layout.under(layout.source_dir("als"), "user_factors.npy"))
    assert not factors[idx].any() and factors[idx + 1].any()
    again = CliRunner().invoke(cli, ["forget", "--artifacts", str(copy), "--store", str(tmp_path / "events.sqlite"),
                                     "--user", user])
    assert again.exit_code == 2 and again.output.startswith(f"Error: --user {user!r}: not in the artifact")


def test_hashed_user_ids(tmp_path, monkeypatch):
    from recsys.synthetic import generate_synthetic

    d = generate_synthetic(n_users=50, n_items=30, n_needs=3, seed=8)
    d.dataset.events.write_csv(tmp_path / "events.csv")
    d.dataset.items.write_csv(tmp_path / "items.csv")
    args = ["build-index", "--events", str(tmp_path / "events.csv"), "--items", str(tmp_path / "items.csv"),
            "--text-model", "char-ngram", "--epochs", "1", "--pretrain-epochs", "0", "--dim", "8", "--holdout", "temporal",
            "--out", str(tmp_path / "art"), "--no-reranker", "--quiet", "--hash-user-ids"]
    monkeypatch.delenv("RECSYS_ID_KEY", raising=False)
    missing = CliRunner().invoke(cli, args)
    assert missing.exit_code == 2 and missing.output.startswith("Error: --hash-user-ids: set $RECSYS_ID_KEY to a secret")
    monkeypatch.setenv("RECSYS_ID_KEY", KEY)
    assert CliRunner().invoke(cli, args).exit_code == 0
    stored = Artifact.open(tmp_path / "art").load_table(layout.USERS)["id"].to_list()
    raw = d.users["user_id"][0]
    assert raw not in stored and pseudonymise(raw, KEY.encode()) in stored
    q = CliRunner().invoke(cli, ["query", "--artifacts", str(tmp_path / "art"), "--user", raw, "--json", "-k", "3"])
    assert q.exit_code == 0 and json.loads(q.output)["known_user"] is True and json.loads(q.output)["user_id"] == raw
    with TestClient(create_app(tmp_path / "art", tmp_path / "events.sqlite", rerank=False),
                    base_url="http://localhost") as client:  # the inspector hashes what is typed in
        page = client.get("/", params={"user": raw})
        assert page.status_code == 200 and "Recent history" in page.text
        assert client.get("/", params={"user": pseudonymise(raw, KEY.encode())}).status_code == 404
        item = client.get("/ui/item", params={"item": d.items["item_id"][0]})
        assert item.status_code == 200 and "stores user ids hashed" in item.text and 'href="/?user=' not in item.text
        assert pseudonymise(raw, KEY.encode()) in stored and raw not in item.text
    monkeypatch.setenv("RECSYS_ID_KEY", "another-key-of-16-chars")
    wrong = CliRunner().invoke(cli, ["query", "--artifacts", str(tmp_path / "art"), "--user", raw])
    assert wrong.exit_code == 2 and "not the key this artifact's user ids were hashed with" in wrong.output


SECRET = "Zq-forget-me-31337"


def decoded(path) -> str:
    """Everything a file says, decoded: Parquet cells, JSON, array strings, and raw bytes (SQLite
    pages and WAL frames, safetensors, FAISS) read as Latin-1 so any stored string shows."""
    import numpy as np

    raw = path.read_bytes()
    parts = [raw.decode("latin-1")]
    if path.suffix == ".parquet":
        parts.append(pl.read_parquet(path).write_csv())
    elif path.suffix == ".npy":
        a = np.load(path, allow_pickle=False)
        parts.append(" ".join(map(str, a.ravel().tolist())) if a.dtype.kind in "US" else "")
    return "\n".join(parts)


def test_forget_leaves_the_id_in_no_file(tmp_path, tiny_bert):
    """The user's id, planted where every kind of file keeps ids (event tables, the cleaning report's
    examples and flagged users in the manifest, the store and its WAL, a build with a reranker),
    is found in no file afterwards, decoded."""
    from recsys.cleaning import CleaningConfig
    from recsys.pipeline import BuildOptions, RerankOptions, build
    from recsys.rerank.config import RerankTrainConfig
    from recsys.rerank.model import RerankerConfig
    from recsys.retrieval.charngram import CharNgramEncoder
    from recsys.retrieval.towers import TowerConfig
    from recsys.retrieval.train import TrainConfig
    from recsys.synthetic import generate_synthetic, plant_dirt

    d, _ = plant_dirt(generate_synthetic(n_users=80, n_items=40, n_needs=4, seed=3), seed=3, placeholder_share=0.25)
    ev = d.dataset.events.with_columns(pl.col("user_id").replace("GUEST", SECRET))  # flagged, kept
    d.dataset.events = pl.concat([ev, ev.filter(pl.col("user_id") == SECRET).head(3)])  # duplicates: examples
    build(d.dataset, tmp_path / "art", cleaning=CleaningConfig(), opts=BuildOptions(
        holdout="temporal", tower=TowerConfig(dim=16, max_len=10, n_layers=1), text_encoder=CharNgramEncoder(dim=8),
        train=TrainConfig(epochs=1, pretrain_epochs=0), show_progress=False,
        reranker=RerankOptions(model=str(tiny_bert), config=RerankerConfig(max_length=16),
                               train=RerankTrainConfig(epochs=1, feature_steps=5))))
    store = EventStore(tmp_path / "events.sqlite")
    store.append([(SECRET, "i00001", "view", None)] * 50 + [("someone", "i00002", "view", None)])

    def files():
        return [p for p in [*(tmp_path / "art").rglob("*"), *tmp_path.glob("events.sqlite*")] if p.is_file()]

    before = [p.relative_to(tmp_path).as_posix() for p in files() if SECRET in decoded(p)]
    assert f"art/{layout.MANIFEST}" in before and "events.sqlite-wal" in before  # the test plants what it looks for

    result = CliRunner().invoke(cli, ["forget", "--artifacts", str(tmp_path / "art"), "--store",
                                      str(tmp_path / "events.sqlite"), "--user", SECRET, "--json"])
    assert result.exit_code == 0, result.output
    assert layout.MANIFEST not in json.loads(result.output)["files_scrubbed"]  # written anew, not scrubbed in place
    left = [p.relative_to(tmp_path).as_posix() for p in files() if SECRET in decoded(p)]
    assert left == [], left
    a = Artifact.open(tmp_path / "art")
    rule = next(r for r in a.manifest["cleaning"]["rules"] if r["rule"] == "suspicious_users")
    assert rule["flagged"] == ["__forgotten"]  # the report still says a suspicious user was kept, not who
    assert store.count() == 1 and store.for_user("someone")
