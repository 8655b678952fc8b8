"""``recsys serve``: the HTTP JSON API (FastAPI; OpenAPI schema at ``/openapi.json``, docs at ``/docs``).

Routes: ``GET /recommend?user=ID&k=N`` (``&at=`` the request's time in epoch seconds, which the
reorder source reads), ``POST /recommend`` (an anonymous history),
``GET /similar?item=ID``, ``GET /needs?user=ID``, ``POST /events``, ``GET /health``, and
``POST /admin/reload`` (swap in a rebuilt artifact: the new one is loaded, then switched to, so
no request is dropped).

Events posted are committed to the :class:`~recsys.serve.store.EventStore` before the reply; the
next recommendation for that user reads them (the user tower and ALS fold-in see the fresh
history). Store events older than the served artifact are taken to be inside it already.

Bad requests get a 4xx with a one-line ``detail`` that never echoes more than a short excerpt of
the input, never a 500 (:mod:`.guard`: limits counted on bytes, read timeouts, strict JSON).
``/`` and ``/ui/*`` are the read-only web inspector (:mod:`.inspector`). ``/admin/*`` needs a
bearer token (``--admin-token``; off without one) and reloads only artifact folders under
``--artifacts-root``, one at a time; ``POST /events`` needs ``--events-token`` when one is set;
the ``Host`` header must name an allowed host.
"""

import logging
from pathlib import Path
from typing import Annotated

from recsys.artifacts import Artifact
from recsys.errors import ArtifactError, RecsysError
from recsys.retrieval.needs import user_needs
from recsys.serve.guard import EXCERPT, MAX_BODY, BodyGuard, short_errors, token_matches
from recsys.serve.inspector import Inspector
from recsys.serve.inspector import register as register_inspector
from recsys.serve.models import EARLIEST, LATEST, MAX_EVENTS, Events, History
from recsys.serve.state import Current, Served, user_history
from recsys.serve.store import EventStore

log = logging.getLogger(__name__)
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
__all__ = ["MAX_BODY", "MAX_EVENTS", "create_app"]


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


def reload_target(given: str | None, current: Path, root: Path) -> Path:
    """The artifact folder a reload asks for, confined to ``root``; one answer whether it is absent,
    outside the root or not an artifact, so that a client learns nothing of the disk."""
    refusal = ArtifactError(f"artifacts {str(given)[:EXCERPT]!r}: not a servable artifact folder under the server's "
                            "artifacts root; build one there with `recsys build-index --out`")
    if given is None:
        return current
    if len(given) > 1024 or "\x00" in given:
        raise refusal
    try:
        path = Path(given).resolve()  # relative to the server's working folder, as on its command line
        inside = path.is_relative_to(root.resolve()) and path != root.resolve()
        Artifact.open(path, verify=False) if inside else None
    except (OSError, ArtifactError, ValueError):
        raise refusal from None
    if not inside:
        raise refusal
    return path


def create_app(artifacts: str | Path, store: str | Path, device: str | None = None, rerank: bool | str = True,
               concurrency: int | None = None, admin_token: str | None = None, events_token: str | None = None,
               artifacts_root: str | Path | None = None, allowed_hosts: list[str] | None = None):
    """The app serving ``artifacts`` with the event store at ``store``. ``admin_token``: the bearer
    token of ``/admin/*`` (None: those routes are off); ``events_token``: the one ``POST /events``
    needs (None: open); ``artifacts_root``: the folder reloads may read from (default: the served
    artifact's parent); ``allowed_hosts``: ``Host`` names accepted besides the local ones."""
    from fastapi import Body, FastAPI, Header, HTTPException, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    served = Served(Path(artifacts), device, rerank, concurrency)
    events = EventStore(store)
    root = Path(artifacts_root) if artifacts_root else Path(artifacts).absolute().parent
    app = FastAPI(title="recsys", version="1", description=__doc__, docs_url=None, redoc_url=None)
    app.state.served, app.state.store = served, events
    offline_docs(app)
    inspector = Inspector(served, events)
    register_inspector(app, inspector)
    inspector.prepare()
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=[*LOCAL_HOSTS, *(allowed_hosts or [])])
    app.add_middleware(BodyGuard)  # outermost: nothing reads a body before its bytes are counted

    @app.exception_handler(RecsysError)
    async def recsys_error(request: Request, exc: RecsysError):
        return JSONResponse({"detail": str(exc)[:EXCERPT * 2]}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": short_errors(exc.errors())}, status_code=422)

    def check(rec, evs) -> list[tuple[str, str]]:
        names = rec.weights.names()
        for n, e in enumerate(evs):
            if e.event not in names:
                raise HTTPException(422, f"events[{n}].event {e.event[:64]!r}: not one of {', '.join(names)}")
            if e.item_id not in rec.items.lookup:
                raise HTTPException(422, f"events[{n}].item_id {e.item_id[:64]!r}: not in the catalogue; add new "
                                         "products with `recsys add-items`")
        return [(e.item_id, e.event) for e in evs]

    def known(cur: Current, user: str) -> tuple[str, list[tuple[str, str]]]:
        try:
            return user_history(cur, events, user)
        except LookupError as e:
            raise HTTPException(404, str(e)) from None

    @app.get("/health")
    def health() -> dict:
        cur = served.current
        rec = cur.rec
        return {"status": "ok", "artifact": str(cur.path), "created_at": rec.art.manifest.get("created_at"),
                "users": rec.n_users, "items": rec.n_items, "reranker": rec.reranker is not None,
                "seen_items": "kept" if rec.serves_seen else "excluded",
                "events_in_store": events.count(), "inspector_ready": inspector.ready}

    @app.get("/recommend")
    def recommend(user: Annotated[str, Query(min_length=1, max_length=256)],
                  k: Annotated[int, Query(ge=1, le=1000)] = 10, include_seen: bool | None = None, rerank: bool = True,
                  at: Annotated[float | None, Query(ge=EARLIEST, le=LATEST, allow_inf_nan=False)] = None):
        cur = served.current
        uid, fresh = known(cur, user)
        with served.slots:
            out = cur.rec.explain_one(uid, k=k, include_seen=include_seen, fresh=fresh, rerank=rerank, at=at)
        return JSONResponse({**out, "user_id": user})  # a Response as is: no re-encoding of the dict

    @app.post("/recommend")
    def recommend_history(body: History, include_seen: bool | None = None, rerank: bool = True,
                          at: Annotated[float | None, Query(ge=EARLIEST, le=LATEST, allow_inf_nan=False)] = None):
        cur = served.current
        fresh = check(cur.rec, body.history)
        with served.slots:
            out = cur.rec.explain_one("\x00anonymous", k=body.k, include_seen=include_seen, fresh=fresh,
                                      rerank=rerank, at=at)
        return JSONResponse({**out, "user_id": None})

    @app.get("/similar")
    def similar(item: Annotated[str, Query(min_length=1, max_length=256)],
                k: Annotated[int, Query(ge=1, le=1000)] = 10) -> dict:
        rec = served.current.rec
        try:
            with served.slots:
                items = rec.similar_items(item, k)
        except LookupError as e:
            raise HTTPException(404, str(e)) from None
        return {"item_id": item, "title": rec.titles[rec.items.lookup[item]], "items": items}

    @app.get("/needs")
    def needs(user: Annotated[str, Query(min_length=1, max_length=256)],
              top: Annotated[int, Query(ge=1, le=50)] = 3):
        cur = served.current
        uid, fresh = known(cur, user)
        with served.slots:
            out = user_needs(cur.rec, uid, fresh, top=top)
        return JSONResponse({**out, "user_id": user})

    @app.post("/events")
    def post_events(body: Events, authorization: Annotated[str | None, Header()] = None) -> dict:
        if events_token and not token_matches(authorization, events_token):
            raise HTTPException(401, "POST /events needs the events token: send 'Authorization: Bearer <token>'")
        for n, e in enumerate(body.events):
            if not e.user_id:
                raise HTTPException(422, f"events[{n}].user_id: required")
        cur = served.current
        check(cur.rec, body.events)
        ids = events.append([(cur.user_ids(e.user_id), e.item_id, e.event, e.timestamp) for e in body.events])
        return {"stored": len(ids), "ids": ids}

    @app.post("/admin/reload")
    def reload(artifacts: Annotated[str | None, Body(embed=True, max_length=1024)] = None,
               authorization: Annotated[str | None, Header()] = None) -> dict:
        if not admin_token:
            raise HTTPException(403, "the admin routes are off: start the server with --admin-token "
                                     "(or $RECSYS_ADMIN_TOKEN) to use them")
        if not token_matches(authorization, admin_token):
            raise HTTPException(401, "the admin routes need the admin token: send 'Authorization: Bearer <token>'")
        target = reload_target(artifacts, served.current.path, root)
        if not served.swap(target):
            raise HTTPException(409, "a reload is already running; try again when it has finished")
        inspector.prepare()
        cur = served.current
        return {"artifact": str(cur.path), "created_at": cur.rec.art.manifest.get("created_at")}

    return app
