"""``recsys serve``: the HTTP JSON API (FastAPI; OpenAPI schema at ``/openapi.json``, docs at ``/docs``).

Routes: ``GET /recommend?user=ID&k=N``, ``POST /recommend`` (an anonymous history),
``GET /similar?item=ID``, ``GET /needs?user=ID``, ``POST /events``, ``GET /health``, and
``POST /admin/reload`` (swap in a rebuilt artifact: the new one is loaded, then switched to, so
no request is dropped).

Events posted are committed to the :class:`~recsys.serve.store.EventStore` before the reply; the
next recommendation for that user reads them (the user tower and ALS fold-in see the fresh
history). Store events older than the served artifact are taken to be inside it already.
Bad requests get a 4xx with a one-line ``detail``, never a 500.
"""


import datetime as dt
import logging
import os
import threading
from pathlib import Path
from typing import Annotated, NamedTuple

from recsys.errors import RecsysError
from recsys.pipeline import load
from recsys.privacy import UserIds
from recsys.retrieval.needs import user_needs
from recsys.retrieval.recommender import Recommender
from recsys.serve.store import EventStore

log = logging.getLogger(__name__)
MAX_BODY = 256 * 1024  # bytes of a request body
MAX_EVENTS = 1000  # per POST /events or POST /recommend history


class Current(NamedTuple):
    rec: Recommender
    user_ids: UserIds
    since: float  # the artifact's creation time: store events after it are fresh
    path: Path


class Served:
    """The artifact being served. A request reads :attr:`current` once and uses that snapshot
    throughout; :meth:`swap` loads a new artifact fully, then replaces the snapshot in one
    assignment, so in-flight requests finish on the old one and none is dropped. At most
    ``concurrency`` model calls run at once (default: the CPU count, up to 4)."""

    def __init__(self, artifacts: Path, device: str | None = None, rerank: bool | str = True,
                 concurrency: int | None = None):
        self.device, self.rerank = device, rerank
        self.slots = threading.BoundedSemaphore(concurrency or min(4, os.cpu_count() or 1))
        self.current = self._open(artifacts)

    def _open(self, artifacts: Path) -> Current:
        rec = load(artifacts, self.device, rerank=self.rerank)
        created = rec.art.manifest.get("created_at")
        since = dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp() \
            if created else 0.0
        _ = rec.needs  # fitted or loaded now, not during a request
        return Current(rec, UserIds(rec.art.manifest), since, Path(artifacts))

    def swap(self, artifacts: Path) -> None:
        self.current = self._open(artifacts)  # until this assignment, requests use the old artifact


STATIC = Path(__file__).resolve().parent / "static"


def offline_docs(app) -> None:
    """``/docs``: Swagger UI from the files shipped in the package (``static/swagger-ui``), no network."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="recsys API",
                                   swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger-ui/swagger-ui.css",
                                   swagger_favicon_url="/static/swagger-ui/favicon-32x32.png")


def create_app(artifacts: str | Path, store: str | Path, device: str | None = None, rerank: bool | str = True,
               concurrency: int | None = None):
    from fastapi import Body, FastAPI, HTTPException, Query, Request
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field


    served = Served(Path(artifacts), device, rerank, concurrency)
    events = EventStore(store)
    app = FastAPI(title="recsys", version="1", description=__doc__, docs_url=None, redoc_url=None)
    app.state.served, app.state.store = served, events
    offline_docs(app)

    class Event(BaseModel):
        user_id: str | None = Field(None, max_length=256, description="Required by POST /events.")
        item_id: str = Field(..., min_length=1, max_length=256)
        event: str = Field("purchase", max_length=64)
        timestamp: float | None = Field(None, description="Epoch seconds; default: when received.")

    class Events(BaseModel):
        events: list[Event] = Field(..., min_length=1, max_length=MAX_EVENTS)

    class History(BaseModel):
        history: list[Event] = Field(..., min_length=1, max_length=MAX_EVENTS)
        k: int = Field(10, ge=1, le=1000)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
            return JSONResponse({"detail": f"request body of {size} bytes: at most {MAX_BODY} bytes "
                                           f"({MAX_EVENTS} events) per request; split it"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(RecsysError)
    async def recsys_error(request: Request, exc: RecsysError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    def check(rec, evs: list[Event]) -> list[tuple[str, str]]:
        names = rec.weights.names()
        for n, e in enumerate(evs):
            if e.event not in names:
                raise HTTPException(422, f"events[{n}].event {e.event!r}: not one of {', '.join(names)}")
            if e.item_id not in rec.items.lookup:
                raise HTTPException(422, f"events[{n}].item_id {e.item_id!r}: not in the catalogue; add new "
                                         "products with `recsys add-items`")
        return [(e.item_id, e.event) for e in evs]

    def known(cur: Current, user: str) -> tuple[str, list[tuple[str, str]]]:
        """The stored id of ``user`` and their store events newer than the artifact (known items only)."""
        uid = cur.user_ids(user)
        rows = events.for_user(uid, since=cur.since, limit=cur.rec.model.cfg.max_len * 4)
        fresh = [(i, e) for i, e, _ in rows if i in cur.rec.items.lookup]
        if uid not in cur.rec.users.lookup and not fresh:
            raise HTTPException(404, f"user {user!r}: unknown, with no events; POST /events for them first, or "
                                     "POST /recommend with their history")
        return uid, fresh

    @app.get("/health")
    def health() -> dict:
        cur = served.current
        rec = cur.rec
        return {"status": "ok", "artifact": str(cur.path), "created_at": rec.art.manifest.get("created_at"),
                "users": rec.n_users, "items": rec.n_items, "reranker": rec.reranker is not None,
                "events_in_store": events.count()}

    @app.get("/recommend")
    def recommend(user: Annotated[str, Query(min_length=1, max_length=256)],
                  k: Annotated[int, Query(ge=1, le=1000)] = 10, include_seen: bool = False, rerank: bool = True):
        cur = served.current
        uid, fresh = known(cur, user)
        with served.slots:
            out = cur.rec.explain_one(uid, k=k, include_seen=include_seen, fresh=fresh, rerank=rerank)
        return JSONResponse({**out, "user_id": user})  # a Response as is: no re-encoding of the dict

    @app.post("/recommend")
    def recommend_history(body: History, include_seen: bool = False, rerank: bool = True):
        cur = served.current
        fresh = check(cur.rec, body.history)
        with served.slots:
            out = cur.rec.explain_one("\x00anonymous", k=body.k, include_seen=include_seen, fresh=fresh,
                                         rerank=rerank)
        return JSONResponse({**out, "user_id": None})

    @app.get("/similar")
    def similar(item: Annotated[str, Query(min_length=1, max_length=256)],
                k: Annotated[int, Query(ge=1, le=1000)] = 10) -> dict:
        rec = served.current.rec
        i = rec.items.lookup.get(item, -1)
        if i < 0:
            raise HTTPException(404, f"item {item!r}: not in the catalogue")
        with served.slots:
            ids, scores = rec.index.search(rec.item_vectors[i:i + 1], k + 1)
        pairs = [(int(j), float(s)) for j, s in zip(ids[0], scores[0]) if j >= 0 and j != i][:k]
        return {"item_id": item, "title": rec.titles[i], "items": [
            {"item_id": str(rec.items.to_external([j])[0]), "title": rec.titles[j], "score": round(s, 6),
             "need": rec.needs.names[int(rec.needs.assign[j])]["name"]} for j, s in pairs]}

    @app.get("/needs")
    def needs(user: Annotated[str, Query(min_length=1, max_length=256)],
              top: Annotated[int, Query(ge=1, le=50)] = 3):
        cur = served.current
        uid, fresh = known(cur, user)
        with served.slots:
            out = user_needs(cur.rec, uid, fresh, top=top)
        return JSONResponse({**out, "user_id": user})

    @app.post("/events")
    def post_events(body: Events) -> dict:
        for n, e in enumerate(body.events):
            if not e.user_id:
                raise HTTPException(422, f"events[{n}].user_id: required")
        cur = served.current
        check(cur.rec, body.events)
        ids = events.append([(cur.user_ids(e.user_id), e.item_id, e.event, e.timestamp) for e in body.events])
        return {"stored": len(ids), "ids": ids}

    @app.post("/admin/reload")
    def reload(artifacts: Annotated[str | None, Body(embed=True)] = None) -> dict:
        served.swap(Path(artifacts) if artifacts else served.current.path)
        cur = served.current
        return {"artifact": str(cur.path), "created_at": cur.rec.art.manifest.get("created_at")}

    return app
