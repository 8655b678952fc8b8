"""Every route with good and bad input, fresh events counting at once, and the artifact swap."""

import shutil
import threading

import pytest
from fastapi.testclient import TestClient

from recsys.retrieval.recommender import Recommender
from recsys.serve.app import MAX_BODY, create_app

LOCAL = "http://localhost"  # a Host the service accepts

TOKEN = "an-admin-token-of-some-length"


@pytest.fixture
def client(shop, tmp_path):
    art, _ = shop
    with TestClient(create_app(art, tmp_path / "events.sqlite", rerank=False), base_url=LOCAL) as c:
        yield c


def test_health_and_schema(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["items"] == 60 and h["events_in_store"] == 0
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/similar", "/needs", "/events", "/health"} <= set(paths)


def test_recommend_explains_every_item(client, shop):
    _, d = shop
    user = d.users["user_id"][0]
    out = client.get("/recommend", params={"user": user, "k": 5}).json()
    assert out["user_id"] == user and len(out["items"]) == 5
    for item in out["items"]:
        assert set(item) >= {"item_id", "title", "score", "provenance", "because", "need"}
        assert item["provenance"] and item["need"]["name"]


def test_posted_events_change_the_next_recommendation(client, shop):
    _, d = shop
    user = "brand-new-user"
    assert client.get("/recommend", params={"user": user}).status_code == 404
    items = d.items["item_id"].to_list()
    got = client.post("/events", json={"events": [{"user_id": user, "item_id": items[i], "event": "purchase"}
                                                  for i in (0, 1, 2)]})
    assert got.status_code == 200 and got.json()["stored"] == 3
    out = client.get("/recommend", params={"user": user, "k": 5, "include_seen": False}).json()
    assert out["history_events"] == 3 and out["fresh_events"] == 3 and out["seen_items"] == "excluded"
    assert not {items[0], items[1], items[2]} & {i["item_id"] for i in out["items"]}  # bought: not offered again
    anon = client.post("/recommend", json={"history": [{"item_id": items[0]}], "k": 3}).json()
    assert anon["user_id"] is None and len(anon["items"]) == 3


def test_the_request_time_reaches_the_answer(client, shop):
    art, d = shop
    user = d.users["user_id"][0]
    rec = Recommender.load(art)
    answers = []
    for at in (1.7e9, 2.0e9):  # epoch seconds: 2023 and 2033
        got = client.get("/recommend", params={"user": user, "k": 20, "include_seen": True, "at": at}).json()
        want = rec.explain_one(user, k=20, include_seen=True, at=at)
        answers.append([(i["item_id"], i["provenance"]) for i in got["items"]])
        assert answers[-1] == [(i["item_id"], i["provenance"]) for i in want["items"]]
    assert answers[0] != answers[1]  # the reorder source scores the user's own items by how due they are then


def test_similar_and_needs(client, shop):
    _, d = shop
    item = d.items["item_id"][0]
    sim = client.get("/similar", params={"item": item, "k": 4}).json()
    assert len(sim["items"]) == 4 and item not in {i["item_id"] for i in sim["items"]}
    needs = client.get("/needs", params={"user": d.users["user_id"][0]}).json()
    assert needs["latent"] or needs["expressed"]


@pytest.mark.parametrize("method, path, kwargs, status, detail", [
    ("get", "/recommend", {"params": {"user": "nobody"}}, 404, "user 'nobody': unknown, with no events; POST /events"),
    ("get", "/recommend", {"params": {"user": "u00001", "k": 0}}, 422, "greater than or equal to 1"),
    ("get", "/recommend", {"params": {"user": "u00001", "k": 5000}}, 422, "less than or equal to 1000"),
    ("get", "/recommend", {"params": {"user": "u00001", "at": -1}}, 422, "greater than or equal to 0"),
    ("get", "/recommend", {"params": {"user": "u00001", "at": "nan"}}, 422, "finite number"),
    ("get", "/similar", {"params": {"item": "nope"}}, 404, "item 'nope': not in the catalogue"),
    ("get", "/needs", {"params": {"user": "nobody"}}, 404, "user 'nobody': unknown"),
    ("post", "/events", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "JSON"),
    ("post", "/events", {"json": {"events": [{"user_id": "u1", "item_id": "i00000", "event": "teleport"}]}}, 422,
     "events[0].event 'teleport': not one of"),
    ("post", "/events", {"json": {"events": [{"user_id": "u1", "item_id": "zzz"}]}}, 422,
     "events[0].item_id 'zzz': not in the catalogue; add new products with `recsys add-items`"),
    ("post", "/events", {"json": {"events": [{"item_id": "i00000"}]}}, 422, "events[0].user_id: required"),
    ("post", "/events", {"json": {"events": []}}, 422, "at least 1 item"),
    ("post", "/events", {"content": b"x" * (MAX_BODY + 1), "headers": {"content-type": "application/json"}}, 413,
     f"at most {MAX_BODY} bytes"),
    ("post", "/recommend", {"json": {"history": [{"item_id": "zzz"}]}}, 422, "events[0].item_id 'zzz'"),
])
def test_bad_requests_get_a_4xx_with_a_message(client, method, path, kwargs, status, detail):
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert detail in str(r.json()["detail"])


def test_swap_to_a_new_artifact_drops_no_request(shop, tmp_path):
    art, d = shop
    copy = tmp_path / "root" / "copy"
    shutil.copytree(art, copy)
    user = d.users["user_id"][1]
    app = create_app(art, tmp_path / "events.sqlite", rerank=False, admin_token=TOKEN, artifacts_root=tmp_path / "root")
    with TestClient(app, base_url=LOCAL) as client:
        swap_under_load(client, copy, user)


def swap_under_load(client, copy, user):
    codes, stop = [], threading.Event()

    def hammer():
        while not stop.is_set():
            codes.append(client.get("/recommend", params={"user": user, "k": 3}).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    r = client.post("/admin/reload", json={"artifacts": str(copy)}, headers={"Authorization": f"Bearer {TOKEN}"})
    stop.set()
    for t in threads:
        t.join()
    assert r.status_code == 200 and r.json()["artifact"] == str(copy)
    assert client.get("/health").json()["artifact"] == str(copy)
    assert codes and set(codes) == {200}, set(codes)


def test_docs_are_served_from_the_package(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "/static/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "https://" not in page.text and "http://" not in page.text.replace("http://testserver", "")
    js = client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN: not served


def test_each_artifact_has_its_own_event_store(tmp_path):
    from recsys.serve.store import default_path

    assert default_path(tmp_path / "shop") != default_path(tmp_path / "shop-new")
    assert default_path(tmp_path / "shop") == tmp_path / "shop.events.sqlite"


def _views_ready(timeout: float = 30) -> None:
    for t in threading.enumerate():
        if t.name == "inspector-views":
            t.join(timeout)


def test_the_inspectors_views_are_computed_at_start_and_after_a_reload(shop, tmp_path, monkeypatch):
    import recsys.serve.inspector as inspector

    art, _ = shop
    copy = tmp_path / "root" / "copy"
    shutil.copytree(art, copy)
    calls = []
    real = inspector.need_audience
    monkeypatch.setattr(inspector, "need_audience", lambda rec: calls.append(threading.current_thread().name) or real(rec))
    app = create_app(art, tmp_path / "events.sqlite", rerank=False, admin_token=TOKEN, artifacts_root=tmp_path / "root")
    with TestClient(app, base_url=LOCAL) as client:
        _views_ready()
        assert client.get("/ui/needs").status_code == 200
        r = client.post("/admin/reload", json={"artifacts": str(copy)}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200
        _views_ready()
        assert client.get("/ui/needs").status_code == 200
    assert calls == ["inspector-views", "inspector-views"]  # once per artifact, never in a request


def _count_views(monkeypatch) -> list[str]:
    """The keys of the history views computed from now on (each source's view of a whole history)."""
    from recsys.sources import History

    built, real = [], History.view

    def counting(self, key, make):
        return real(self, key, lambda h: built.append(key) or make(h))

    monkeypatch.setattr(History, "view", counting)
    return built


def test_the_first_request_after_a_load_builds_no_view_of_the_stored_history(shop, tmp_path, monkeypatch):
    from recsys.pipeline import load

    art, d = shop
    user = d.users["user_id"][0]
    built = _count_views(monkeypatch)
    load(art, rerank=False).explain_one(user)  # an engine not warmed up builds its views on the first request
    assert built
    built.clear()
    with TestClient(create_app(art, tmp_path / "events.sqlite", rerank=False), base_url=LOCAL) as client:
        _views_ready()  # the inspector's own, computed beside the service
        assert built  # at load
        built.clear()
        assert client.get("/recommend", params={"user": user, "k": 5}).status_code == 200
    assert built == []


def test_health_says_when_the_inspectors_views_are_ready(shop, tmp_path, monkeypatch):
    import recsys.serve.inspector as inspector

    art, _ = shop
    gate, real = threading.Event(), inspector.need_audience
    monkeypatch.setattr(inspector, "need_audience", lambda rec: gate.wait(30) and real(rec))
    with TestClient(create_app(art, tmp_path / "events.sqlite", rerank=False), base_url=LOCAL) as client:
        assert client.get("/health").json()["inspector_ready"] is False
        gate.set()
        _views_ready()
        assert client.get("/health").json()["inspector_ready"] is True
