"""The web inspector: read-only pages of what the engine sees, served by ``recsys serve`` at ``/``.

- ``/`` — a user (by id, or an anonymous history pasted as ``ITEM[:EVENT], ...``): the recent
  history as a timeline, the expressed and latent needs as cards (probability and the history
  items behind each), and the top-k recommendations, each with its score, need, sources (rank in
  each), the reranker's click and purchase probabilities and the "because" items;
  ``compare=1`` shows the list with and without the reranker side by side.
- ``/ui/item?item=ID`` — the item's text, need, similar items and the users it suits most.
- ``/ui/needs`` — every need: name, size, example items, and how many users hold it latent or
  expressed.
- ``/ui/model`` — the manifest (data fingerprint, sizes, versions), build time per stage, the
  cleaning report, and the funnel `recsys evaluate` stored (each source, fused, reranked) as charts.

Pages are rendered on the server from the Jinja2 templates in ``templates/`` (autoescaped); charts
are inline SVG; no JavaScript and nothing loaded from the network. They read the same recommender
and needs APIs as the JSON routes. User ids typed in are hashed as the artifact's were.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import polars as pl
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from recsys import layout
from recsys.errors import RecsysError
from recsys.retrieval.needs import need_audience, user_needs

from .state import Current, Served, user_history
from .store import EventStore

TEMPLATES = Path(__file__).resolve().parent / "templates"
TIMELINE = 30  # events of the history shown, newest first
AUDIENCE_USERS = 20_000  # users scored for an item's audience (a seeded sample beyond)


def bar_chart(rows: list[tuple[str, float]], unit: str = "", width: int = 460, digits: int = 3) -> Markup:
    """Horizontal bars as inline SVG, one per (label, value), scaled to the largest value.

    >>> "<svg" in bar_chart([("a", 1.0), ("b", 0.5)])
    True
    """
    top = max([v for _, v in rows] + [1e-12])
    bar_h, label_w, height = 18, 150, 22 * len(rows) + 4
    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img">']
    for n, (label, value) in enumerate(rows):
        y, w = 2 + 22 * n, max(1.0, (width - label_w - 70) * value / top)
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{Markup.escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}"></rect>'
                     f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{value:.{digits}f}{unit}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


class Views:
    """What the pages of one artifact compute once and keep: every user's vector (an item's
    audience) and the needs' audience."""

    def __init__(self, cur: Current):
        self.cur = cur
        self._lock = threading.Lock()
        self._users: tuple[np.ndarray, np.ndarray] | None = None
        self._needs: dict | None = None

    def user_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._users is None:
                rec = self.cur.rec
                rows = np.flatnonzero(np.diff(rec.seq.offsets) > 0)
                if rows.size > AUDIENCE_USERS:
                    rows = np.sort(np.random.default_rng(0).choice(rows, AUDIENCE_USERS, replace=False))
                self._users = rows, rec.model.user_vectors(rec.seq, rows)
            return self._users

    def needs(self) -> dict:
        with self._lock:
            if self._needs is None:
                self._needs = need_audience(self.cur.rec)
            return self._needs


class Inspector:
    """Renders the pages for the artifact ``served`` serves (views cached per artifact)."""

    def __init__(self, served: Served, events: EventStore):
        self.served, self.events = served, events
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
        self.env.globals["bar_chart"] = bar_chart
        self._views: dict[int, Views] = {}
        self._views_lock = threading.Lock()
        self._preparing: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        """Whether the served artifact's views are computed (:meth:`prepare` has finished)."""
        return self._preparing is None or not self._preparing.is_alive()

    def prepare(self) -> threading.Thread:
        """Compute the served artifact's views in the background (a daemon thread holding one
        model slot), so that the first item and needs pages do not wait for them; called when the
        app starts and after each reload."""
        cur = self.served.current

        def work() -> None:
            with self.served.slots:
                views = self.views(cur)
                views.user_vectors()
                views.needs()

        thread = threading.Thread(target=work, name="inspector-views", daemon=True)
        thread.start()
        self._preparing = thread
        return thread

    def views(self, cur: Current) -> Views:
        key = id(cur)
        with self._views_lock:
            if key not in self._views:
                self._views = {key: Views(cur)}  # the artifact changed: forget the old one's
            return self._views[key]

    def render(self, name: str, **context) -> str:
        cur = self.served.current
        return self.env.get_template(name).render(artifact=cur.path.name, **context)

    def item_link(self, rec, i: int) -> dict:
        return {"item_id": str(rec.items.to_external([i])[0]), "title": rec.titles[i]}

    def timeline(self, cur: Current, uid: str, fresh: list[tuple[str, str]]) -> list[dict]:
        rec = cur.rec
        rows = []
        known = rec.users.lookup.get(uid, -1)
        if known >= 0:
            mine = rec.history.filter(pl.col("user_idx") == known).sort("timestamp").tail(TIMELINE)
            rows = [{**self.item_link(rec, int(i)), "event": e, "time": t.strftime("%Y-%m-%d %H:%M")}
                    for i, e, t in zip(mine["item_idx"], mine["event"], mine["timestamp"])]
        rows += [{"item_id": i, "title": rec.titles[rec.items.lookup[i]], "event": e, "time": "since the build"}
                 for i, e in fresh]
        return rows[::-1][:TIMELINE]

    def user_page(self, user: str | None, history: str | None, k: int, compare: bool) -> tuple[str, int]:
        cur = self.served.current
        rec = cur.rec
        context = {"user": user or "", "history": history or "", "k": k, "compare": compare, "page": "user"}
        if not user and not history:
            return self.render("user.html", **context), 200
        try:
            if user:
                uid, fresh = user_history(cur, self.events, user)
            else:
                uid, fresh = "\x00anonymous", rec.parse_history(history)
            with self.served.slots:
                out = rec.explain_one(uid, k=k, fresh=fresh, rerank=True, compare=compare)
                needs = user_needs(rec, uid, fresh) if out["history_events"] else None
        except (LookupError, RecsysError) as e:
            return self.render("user.html", error=str(e)[:300], **context), 404 if isinstance(e, LookupError) else 422
        timeline = self.timeline(cur, uid, fresh) if user else [
            {"item_id": i, "title": rec.titles[rec.items.lookup[i]], "event": e, "time": "pasted"} for i, e in fresh]
        return self.render("user.html", out=out, plain=out.get("fused_items"), needs=needs, timeline=timeline,
                           sources=list(rec.sources), **context), 200

    def item_page(self, item: str) -> tuple[str, int]:
        cur = self.served.current
        rec = cur.rec
        i = rec.items.lookup.get(item, -1)
        if i < 0:
            return self.render("item.html", page="item", error=f"item {item[:64]!r}: not in the catalogue"), 404
        row = rec.catalog.filter(pl.col("item_id") == item).to_dicts()
        fields = {k: v for k, v in (row[0] if row else {}).items() if k != "item_id" and v not in (None, "")}
        with self.served.slots:
            similar = rec.similar_items(item, 10)
            users, vecs = self.views(cur).user_vectors()
            fit = vecs @ rec.item_vectors[i] if users.size else np.zeros(0)
        best = np.argsort(-fit, kind="stable")[:10]
        audience = [{"user_id": str(rec.users.to_external([users[b]])[0]), "score": float(fit[b])} for b in best]
        need = rec.need_of(i)
        return self.render("item.html", page="item", item={"item_id": item, "title": rec.titles[i], "fields": fields},
                           need=need, similar=similar, audience=audience, scored=int(users.size),
                           hashed=cur.user_ids.hashed), 200

    def needs_page(self) -> tuple[str, int]:
        cur = self.served.current
        rec = cur.rec
        with self.served.slots:
            counts = self.views(cur).needs()
        rows = [{"id": n["id"], "name": n["name"], "terms": n["terms"], "size": n["size"],
                 "examples": [self.item_link(rec, e) for e in n["examples"]],
                 "latent": int(counts["latent"][n["id"]]), "expressed": int(counts["expressed"][n["id"]])}
                for n in rec.needs.names]
        rows.sort(key=lambda r: -r["size"])
        return self.render("needs.html", page="needs", needs=rows, users=counts["users"]), 200

    def model_page(self) -> tuple[str, int]:
        art = self.served.current.rec.art
        m = art.manifest
        summary = art.load_json(layout.SUMMARY) if art.has(layout.SUMMARY) else {}
        evaluation = art.load_json(layout.EVALUATION) if art.has(layout.EVALUATION) else None
        stages = [(name, float(s)) for name, s in summary.get("stage_seconds", {}).items()]
        funnel = []
        if evaluation:
            ks = evaluation.get("options", {}).get("ks") or [10]
            k = min(ks)
            for metric in (f"recall@{max(ks)}", f"recall@{k}", f"ndcg@{k}"):
                rows = [(name, v[metric]) for name, v in evaluation["metrics"].items() if metric in v]
                if rows:
                    funnel.append((metric, rows))
        sizes = {"users": summary.get("users"), "items": summary.get("items"), "files": len(m.get("files", {})),
                 "bytes": sum(f.get("bytes", 0) for f in m.get("files", {}).values())}
        return self.render("model.html", page="model", manifest=m, summary=summary, sizes=sizes, stages=stages,
                           cleaning=(m.get("cleaning") or {}).get("rules", []), evaluation=evaluation,
                           funnel=funnel), 200


def register(app, inspector: Inspector) -> None:
    """The pages' routes on ``app`` (left out of the OpenAPI schema: they answer HTML)."""
    from fastapi import Query
    from fastapi.responses import HTMLResponse

    def page(result: tuple[str, int]) -> HTMLResponse:
        return HTMLResponse(result[0], status_code=result[1])

    @app.get("/", include_in_schema=False)
    def user_page(user: str | None = Query(None, max_length=256), history: str | None = Query(None, max_length=20_000),
                  k: int = Query(10, ge=1, le=100), compare: bool = False):
        return page(inspector.user_page(user, history, k, compare))

    @app.get("/ui/item", include_in_schema=False)
    def item_page(item: str = Query(..., min_length=1, max_length=256)):
        return page(inspector.item_page(item))

    @app.get("/ui/needs", include_in_schema=False)
    def needs_page():
        return page(inspector.needs_page())

    @app.get("/ui/model", include_in_schema=False)
    def model_page():
        return page(inspector.model_page())
