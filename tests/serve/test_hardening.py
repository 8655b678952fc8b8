"""The service as an attacker and a careless client try it: a regression corpus of every input that
once got a 500, an unbounded read or a swapped model, each now answered with a short 4xx."""

import json
import shutil

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from recsys import layout
from recsys.artifacts import file_sha256
from recsys.manifest import KEY_ENV, sign
from recsys.serve.app import MAX_BODY, create_app

LOCAL = "http://localhost"  # a Host the service accepts

ADMIN = "an-admin-token-of-some-length"
EVENTS = "an-events-token-of-some-length"
BEARER = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def root(shop, tmp_path):
    """An artifacts root holding a copy of the shop's artifact."""
    art, _ = shop
    shutil.copytree(art, tmp_path / "root" / "shop")
    return tmp_path / "root"


@pytest.fixture
def client(root, tmp_path):
    app = create_app(root / "shop", tmp_path / "events.sqlite", rerank=False, admin_token=ADMIN)
    with TestClient(app, base_url=LOCAL) as c:
        yield c


def post_json(client, path, text: str, **kw):
    return client.post(path, content=text.encode("utf-8", "surrogatepass"),
                       headers={"content-type": "application/json", **kw.pop("headers", {})}, **kw)


@pytest.mark.parametrize("path, body, detail", [
    ("/events", '{"events": [{"user_id": "u", "item_id": "i00000", "timestamp": NaN}]}',
     "NaN is not a JSON number; send finite numbers only"),
    ("/events", '{"events": [{"user_id": "u", "item_id": "i00000", "timestamp": -Infinity}]}',
     "-Infinity is not a JSON number"),
    ("/events", '{"events": [{"user_id": "u", "item_id": "i00000", "timestamp": -1e308}]}',
     "events.0.timestamp: Input should be greater than or equal to 0"),
    ("/events", '{"events": [{"user_id": "u", "item_id": "i00000", "timestamp": 1e30}]}',
     "events.0.timestamp: Input should be less than or equal to 4102444800"),
    ("/recommend", '{"history": [{"item_id": "i00000"}], "k": 1e99999}', "the number 1e99999 is too large for a float"),
    ("/events", '{"events": [{"user_id": "u", "item_id": "\\ud800"}]}',
     "body.events[0].item_id: holds a lone surrogate"),
    ("/recommend", '{"history": [{"item_id": "\\ud800"}]}', "body.history[0].item_id: holds a lone surrogate"),
    ("/recommend", '{"history": [{"item_id": "i00000"}], "k": "10"}', "body.k: Input should be a valid integer"),
    ("/recommend", '{"history": [{"item_id": "i00000"}], "k": true}', "body.k: Input should be a valid integer"),
    ("/events", '{"events": [{"user_id": 7, "item_id": "i00000"}]}', "events.0.user_id: Input should be a valid string"),
    ("/events", '{"events": [{"user_id": "u", "item_id": {"$ne": 1}}]}', "events.0.item_id: Input should be a valid str"),
    ("/events", '{"events": [{"user_id": "u", "item_id": "i00000", "extra": 1}]}', "Extra inputs are not permitted"),
    ("/events", '{"events": [', "malformed JSON at line 1"),
])
def test_regression_corpus_gets_a_422_that_names_the_field(client, path, body, detail):
    r = post_json(client, path, body)
    assert r.status_code == 422, r.text
    assert detail in r.json()["detail"]


def test_nothing_was_stored_by_the_refused_requests(client):
    post_json(client, "/events", '{"events": [{"user_id": "u", "item_id": "i00000", "timestamp": -1e308}]}')
    assert client.get("/health").json()["events_in_store"] == 0
    assert client.get("/recommend", params={"user": "u"}).status_code == 404


def test_error_bodies_never_echo_the_input(client):
    huge = "A" * 100_000
    for r in (post_json(client, "/events", json.dumps({"events": [{"user_id": "u", "item_id": huge}]})),
              post_json(client, "/recommend", json.dumps({"history": [{"item_id": huge}], "k": huge})),
              client.get("/recommend", params={"user": huge[:20_000]})):
        assert r.status_code == 422 and len(r.content) < 1000, (r.status_code, len(r.content))


def test_a_chunked_body_is_counted_and_cut_at_the_limit(client):
    sent = []

    def chunks():
        for _ in range(200):  # 200 x 64 KiB = 12.8 MB announced by no Content-Length
            sent.append(1)
            yield b"x" * 65536

    r = client.post("/events", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and f"at most {MAX_BODY} bytes" in r.json()["detail"]
    assert len(r.content) < 1000


def test_host_header_must_name_an_allowed_host(client):
    assert client.get("/health", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/health", headers={"host": "localhost:8000"}).status_code == 200


def test_admin_routes_are_off_without_a_token(root, tmp_path):
    with TestClient(create_app(root / "shop", tmp_path / "e.sqlite", rerank=False), base_url=LOCAL) as c:
        r = c.post("/admin/reload", json={"artifacts": str(root / "shop")})
        assert r.status_code == 403 and "start the server with --admin-token" in r.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN}])
def test_admin_routes_need_the_token(client, root, headers):
    r = client.post("/admin/reload", json={"artifacts": str(root / "shop")}, headers=headers)
    assert r.status_code == 401 and "send 'Authorization: Bearer <token>'" in r.json()["detail"]


def test_reload_is_confined_to_the_root_and_says_the_same_for_every_refusal(client, root, shop, tmp_path):
    art, _ = shop
    (root / "empty").mkdir()
    (root / "file.txt").write_text("x")
    refused = {}
    for name, target in {"outside": str(art), "absent": str(root / "nope"), "not an artifact": str(root / "empty"),
                         "a file": str(root / "file.txt"), "the root itself": str(root),
                         "climbing out": str(root / "shop" / ".." / ".." / "elsewhere"),
                         "too long": "x" * 10_000, "a NUL": "shop\x00"}.items():
        r = client.post("/admin/reload", json={"artifacts": target}, headers=BEARER)
        assert r.status_code == 422, (name, r.text)
        refused[name] = r.json()["detail"].split(":", 1)[-1]
    same = {d for n, d in refused.items() if n != "too long"}  # over 1024 characters: refused by the schema
    assert same == {" not a servable artifact folder under the server's artifacts root; build one there with "
                    "`recsys build-index --out`"}, refused
    ok = client.post("/admin/reload", json={"artifacts": str(root / "shop")}, headers=BEARER)
    assert ok.status_code == 200 and ok.json()["artifact"] == str((root / "shop").resolve())


def crafted(root, name, change):
    """A copy of the shop artifact under ``root`` whose manifest ``change`` rewrites."""
    path = root / name
    shutil.copytree(root / "shop", path)
    m = json.loads((path / layout.MANIFEST).read_text())
    (path / layout.MANIFEST).write_text(json.dumps(change(path, m)))
    return path


def no_sha(path, m):
    m["files"][next(iter(m["files"]))].pop("sha256")
    return m


def object_npy(path, m):
    name = next(n for n in m["files"] if n.endswith(".npy"))
    np.save(path / name, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    m["files"][name] = {"sha256": file_sha256(path / name), "bytes": (path / name).stat().st_size}
    return m


@pytest.mark.parametrize("change", [
    no_sha, lambda p, m: {**m, "created_at": "yesterday"}, lambda p, m: [m], object_npy,
    lambda p, m: {**m, "files": {**m["files"], "../../../../etc/hostname": {"sha256": "0" * 64, "bytes": 1}}},
], ids=["no-sha256", "created-yesterday", "list", "object-npy", "path-out"])
def test_crafted_artifacts_are_refused_and_the_old_one_stays(client, root, change):
    path = crafted(root, "crafted", change)
    r = client.post("/admin/reload", json={"artifacts": str(path)}, headers=BEARER)
    assert r.status_code == 422, r.text
    assert client.get("/health").json()["artifact"] == str(root / "shop")


def test_a_rehashed_copy_is_refused_when_artifacts_are_signed(root, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "a-signing-key-of-some-length")
    shop = root / "shop"
    m = json.loads((shop / layout.MANIFEST).read_text())
    (shop / layout.MANIFEST).write_text(json.dumps(sign(m)))  # as a build with the key writes it

    def phishing(path, m):  # every title turned into a link, its checksum recomputed; the key is not known
        items = path / layout.ITEMS
        pl.read_parquet(items).with_columns(pl.lit("http://phishing.example").alias("title")).write_parquet(items)
        m["files"][layout.ITEMS] = {"sha256": file_sha256(items), "bytes": items.stat().st_size}
        return m

    bad = crafted(root, "phish", phishing)
    with TestClient(create_app(shop, tmp_path / "e.sqlite", rerank=False, admin_token=ADMIN), base_url=LOCAL) as c:
        r = c.post("/admin/reload", json={"artifacts": str(bad)}, headers=BEARER)
        assert r.status_code == 422 and "not a servable artifact folder" in r.json()["detail"]
        assert c.get("/health").json()["artifact"] == str(shop)
        monkeypatch.delenv(KEY_ENV)  # without signatures, checksums alone cannot tell
        assert c.post("/admin/reload", json={"artifacts": str(bad)}, headers=BEARER).status_code == 200


def test_one_reload_at_a_time(client, root):
    served = client.app.state.served
    assert served.swapping.acquire(blocking=False)  # as if a reload were running
    try:
        r = client.post("/admin/reload", json={"artifacts": str(root / "shop")}, headers=BEARER)
        assert r.status_code == 409 and "a reload is already running" in r.json()["detail"]
    finally:
        served.swapping.release()


def test_events_can_need_their_own_token(root, tmp_path, shop):
    _, d = shop
    body = {"events": [{"user_id": "u", "item_id": d.items["item_id"][0]}]}
    with TestClient(create_app(root / "shop", tmp_path / "e.sqlite", rerank=False, events_token=EVENTS), base_url=LOCAL) as c:
        assert c.post("/events", json=body).status_code == 401
        assert c.post("/events", json=body, headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 401
        assert c.post("/events", json=body, headers={"Authorization": f"Bearer {EVENTS}"}).status_code == 200
