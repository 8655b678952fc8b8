"""``recsys serve`` (the HTTP API) and ``recsys forget`` (a user's events and rows, removed)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from recsys.cli.query import ARTIFACTS

STORE = click.option("--store", type=click.Path(path_type=Path), default=None,
                     help="The SQLite event store (default: <artifact folder>.events.sqlite, beside it).")


def _store_path(artifacts: Path, store: Path | None) -> Path:
    from recsys.serve.store import default_path

    return store or default_path(artifacts)


@click.command("serve")
@ARTIFACTS
@STORE
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (localhost by default).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--no-rerank", is_flag=True, help="Serve the fused list without the reranker.")
@click.option("--always-rerank", is_flag=True,
              help="Serve the reranker even if it did not beat the fused list on validation (for measurements).")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: a GPU when there is one).")
@click.option("--threads", type=click.IntRange(1, 4096), default=None,
              help="CPU threads per request's model call (default 1: a request's small forward pass gains nothing "
                   "from more; requests run in parallel instead).")
@click.option("--admin-token", envvar="RECSYS_ADMIN_TOKEN", default=None, show_envvar=True,
              help="Bearer token of /admin/* (compared in constant time); without one the admin routes are off.")
@click.option("--events-token", envvar="RECSYS_EVENTS_TOKEN", default=None, show_envvar=True,
              help="Bearer token POST /events needs (default: none needed).")
@click.option("--artifacts-root", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="The folder /admin/reload may load artifacts from (default: the served artifact's parent).")
@click.option("--allowed-hosts", default=None, metavar="NAME,...",
              help="Host names clients may reach the server by, besides localhost (needed to bind beyond it).")
def serve(artifacts: Path, store: Path | None, host: str, port: int, no_rerank: bool, always_rerank: bool,
          device: str | None, threads: int | None, admin_token: str | None, events_token: str | None,
          artifacts_root: Path | None, allowed_hosts: str | None) -> None:
    """The HTTP JSON API: /recommend, /similar, /needs, /events, /health (schema at /openapi.json).

    User ids are hashed exactly as the artifact's were (build-index --hash-user-ids, key in $RECSYS_ID_KEY).
    """
    import uvicorn

    from recsys.errors import ConfigError
    from recsys.serve.app import LOCAL_HOSTS, create_app
    from recsys.serve.guard import HeaderTimeoutH11
    from recsys.threads import configure

    hosts = [h.strip() for h in (allowed_hosts or "").split(",") if h.strip()]
    if host not in LOCAL_HOSTS and not hosts:
        raise ConfigError(f"--host {host}: beyond localhost, name the hosts clients will reach it by with "
                          "--allowed-hosts (e.g. --allowed-hosts shop.example.com), so that no other Host is served")
    if admin_token is not None and len(admin_token) < 16:
        raise ConfigError("--admin-token: give a secret of at least 16 characters")
    configure(threads or 1)  # the service's own setting: one thread per request's small forward pass
    app = create_app(artifacts, _store_path(artifacts, store), device=device,
                     rerank=False if no_rerank else "always" if always_rerank else True, admin_token=admin_token,
                     events_token=events_token, artifacts_root=artifacts_root, allowed_hosts=hosts + [host])
    click.echo(f"serving {artifacts} on http://{host}:{port} (events: {_store_path(artifacts, store)}; admin routes "
               f"{'on' if admin_token else 'off'})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_keep_alive=5,
                h11_max_incomplete_event_size=16 * 1024, http=HeaderTimeoutH11)


@click.command("forget")
@ARTIFACTS
@STORE
@click.option("--user", required=True, help="The user's external id.")
@click.option("--json", "as_json", is_flag=True)
def forget(artifacts: Path, store: Path | None, user: str, as_json: bool) -> None:
    """Remove a user's events from the event store and the user's rows from the artifact (atomically).

    A running `recsys serve` keeps the old artifact until POST /admin/reload.
    """
    from recsys.artifacts import Artifact
    from recsys.errors import DataError
    from recsys.pipeline import forget_in_artifact
    from recsys.privacy import UserIds
    from recsys.serve.store import EventStore

    art = Artifact.open(artifacts)
    uid = UserIds(art.manifest)(user)
    path = _store_path(artifacts, store)
    in_store = EventStore(path).forget(uid) if path.exists() else 0
    try:
        out = forget_in_artifact(artifacts, uid, raw_id=user)
    except DataError:  # not in the artifact: fine when the store knew the user (a user new since the build)
        if not in_store:
            raise
        out = {"user_index": None, "rows_removed": {}, "files_scrubbed": []}
    out = {"user": user, "store_events_removed": in_store, **out}
    if as_json:
        click.echo(json.dumps(out))
        return
    rows = sum(out["rows_removed"].values())
    click.echo(f"forgot user {user!r}: {in_store} events removed from {path}, {rows} rows from {artifacts}")
