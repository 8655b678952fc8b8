"""What the service serves: the artifact snapshot requests read (:class:`Served`) and a user's
history as a request sees it (stored events plus the event store's fresher ones)."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from typing import NamedTuple

from recsys.pipeline import load
from recsys.privacy import UserIds
from recsys.retrieval.recommender import Recommender

from .store import EventStore


class Current(NamedTuple):
    rec: Recommender
    user_ids: UserIds
    since: float  # when the artifact's models learnt their data: store events after it are fresh
    path: Path


class Served:
    """The artifact being served. A request reads :attr:`current` once and uses that snapshot
    throughout; :meth:`swap` loads a new artifact fully, then replaces the snapshot in one
    assignment, so in-flight requests finish on the old one and none is dropped; one swap runs at a
    time. At most ``concurrency`` model calls run at once (default: the CPU count, up to 4)."""

    def __init__(self, artifacts: Path, device: str | None = None, rerank: bool | str = True,
                 concurrency: int | None = None):
        self.device, self.rerank = device, rerank
        self.slots = threading.BoundedSemaphore(concurrency or min(4, os.cpu_count() or 1))
        self.swapping = threading.Lock()
        self.current = self._open(artifacts)

    def _open(self, artifacts: Path) -> Current:
        rec = load(artifacts, self.device, rerank=self.rerank)
        built = rec.art.manifest.get("built_at", rec.art.manifest["created_at"])  # a rewrite (forget) keeps it
        since = dt.datetime.strptime(built, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.timezone.utc).timestamp()
        _ = rec.needs  # fitted or loaded now, not during a request
        rec.warm_up()  # the stored history's views too: the first request after a (re)load pays nothing
        return Current(rec, UserIds(rec.art.manifest), since, Path(artifacts))

    def swap(self, artifacts: Path) -> bool:
        """Load ``artifacts`` and serve it; False (nothing done) when another swap is running."""
        if not self.swapping.acquire(blocking=False):
            return False
        try:
            self.current = self._open(artifacts)  # until this assignment, requests use the old artifact
        finally:
            self.swapping.release()
        return True


def user_history(cur: Current, events: EventStore, user: str) -> tuple[str, list[tuple[str, str]]]:
    """The stored id of ``user`` and their store events newer than the artifact (known items only);
    LookupError when the artifact and the store know nothing of them."""
    uid = cur.user_ids(user)
    rows = events.for_user(uid, since=cur.since, limit=cur.rec.model.cfg.max_len * 4)
    fresh = [(i, e) for i, e, _ in rows if i in cur.rec.items.lookup]
    if uid not in cur.rec.users.lookup and not fresh:
        raise LookupError(f"user {user[:64]!r}: unknown, with no events; POST /events for them first, "
                          "or POST /recommend with their history")
    return uid, fresh
