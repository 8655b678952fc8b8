"""``recsys query`` (one user, explained) and ``recsys recommend`` (many users, one JSON line each)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import polars as pl

from recsys.cli.options import THREADS
from recsys.defaults import DEFAULT_ARTIFACTS
from recsys.errors import DataError
from recsys.io import read_text
from recsys.retrieval.sources import names as source_names
from recsys.threads import configure
from recsys.timestamps import parse_timestamps

ARTIFACTS = click.option("--artifacts", type=click.Path(path_type=Path), default=DEFAULT_ARTIFACTS,
                         show_default=True, help="An artifact folder written by `recsys build-index`.")
INCLUDE_SEEN = click.option("--include-seen/--exclude-seen", default=None,
                            help="Keep (or drop) items the user already interacted with; kept, the user's own "
                                 "frequent items are a candidate source too. Default: the artifact's choice, made by "
                                 "build-index on the validation stage (kept where that raised NDCG@10, e.g. groceries).")


AT = click.option("--at", "at", default=None, metavar="TIME",
                  help="When the request happens: ISO 8601 (e.g. 2017-03-01T10:00:00Z; no zone: UTC), or 'now'. "
                       "The reorder source ranks the user's own items by how due each is then; default: the user "
                       "is taken to return after their usual interval.")


def parse_at(spec: str | None) -> dt.datetime | None:
    """``--at``: None, "now", or a time as the events' files may give it (ISO 8601, naive: UTC, or
    Unix seconds; :func:`recsys.timestamps.parse_timestamps`).

    >>> parse_at("2017-03-01T10:00:00Z").isoformat(), parse_at("2017-03-01").isoformat(), parse_at(None)
    ('2017-03-01T10:00:00+00:00', '2017-03-01T00:00:00+00:00', None)
    """
    if spec is None:
        return None
    if spec.strip().lower() == "now":
        return dt.datetime.now(dt.timezone.utc)
    t = parse_timestamps(pl.Series([spec])).item()
    if t is None:
        raise DataError(f"--at {spec!r}: not a time; write ISO 8601, e.g. 2017-03-01T10:00:00Z, or 'now'")
    return t


NO_RERANK = click.option("--no-rerank", is_flag=True, help="Skip the reranker (the fused list is final), to compare.")
FUSION_WEIGHTS = click.option("--fusion-weights", default=None, metavar="SOURCE=W,...",
                              help=f"Reciprocal-rank fusion weights (sources: {', '.join(source_names())}); "
                                   "default: those chosen on the validation stage at build time.")


def parse_fusion_weights(spec: str | None) -> tuple[tuple[str, float], ...]:
    """``"als=0.5,repeat=2"`` -> (("als", 0.5), ("repeat", 2.0))."""
    sources = source_names()
    out = []
    for part in (x.strip() for x in (spec or "").split(",") if x.strip()):
        name, _, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if name not in sources or weight < 0:
            raise DataError(f"--fusion-weights {spec!r}: write SOURCE=WEIGHT pairs, SOURCE one of {', '.join(sources)} "
                            "and WEIGHT a number >= 0, e.g. als=0.5,repeat=2")
        out.append((name, weight))
    return tuple(out)


def load_engine(artifacts: Path, rerank: bool = True, fusion_weights: str | None = None):
    """(the engine, the artifact's way of naming users: plain or keyed hashes, see recsys.privacy)."""
    from recsys.pipeline import load
    from recsys.privacy import UserIds
    from recsys.retrieval.recommender import FusionOptions

    weights = parse_fusion_weights(fusion_weights)
    rec = load(artifacts, rerank=rerank, fusion=FusionOptions(weights=weights) if weights else None)
    return rec, UserIds(rec.art.manifest)


@click.command("query")
@ARTIFACTS
@click.option("--user", required=True, help="The user's external id (an unknown one is served popular items).")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many items.")
@click.option("--history", default=None, metavar="ITEM[:EVENT],...",
              help="Fresh events given at query time, oldest first (event default: purchase); they count without "
                   "retraining, and serve a new user.")
@click.option("--context", default=None, metavar="FIELD=VALUE",
              help="For a user with no history: popular items whose catalogue FIELD contains VALUE (e.g. genres=Comedy).")
@INCLUDE_SEEN
@AT
@NO_RERANK
@FUSION_WEIGHTS
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--timing", is_flag=True, help="Print load and query times (ms) on stderr.")
@THREADS
def query(artifacts: Path, user: str, k: int, history: str | None, context: str | None, include_seen: bool | None,
          at: str | None, no_rerank: bool, fusion_weights: str | None, as_json: bool, timing: bool,
          threads: int | None) -> None:
    """The ranked list for --user: item id, title, fused score, provenance, and the history items behind it."""
    configure(threads)
    when = parse_at(at)
    t0 = time.perf_counter()
    rec, user_ids = load_engine(artifacts, not no_rerank, fusion_weights)
    t1 = time.perf_counter()
    fresh = rec.parse_history(history) if history else []
    out = rec.explain_one(user_ids(user), k=k, include_seen=include_seen, fresh=fresh, context=context, at=when)
    out["user_id"] = user
    t2 = time.perf_counter()
    if not out["known_user"] and not fresh:
        click.echo(f"note: user {user!r} has no history in {artifacts}; serving popular items "
                   "(give --history ITEM[:EVENT],... to personalise)", err=True)
    if timing:
        click.echo(f"timing: load {1000 * (t1 - t0):.0f} ms, query {1000 * (t2 - t1):.1f} ms", err=True)
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False))
        return
    click.echo(f"top {len(out['items'])} for user {user}" + (f" (+{len(fresh)} fresh events)" if fresh else "") + ":")
    for rank, item in enumerate(out["items"], start=1):
        sources = "+".join(f"{s}#{p['rank']}" for s, p in item["provenance"].items())
        click.echo(f"{rank:>3}. {item['item_id']:<12} {item['score']:.4f}  {item['title'][:60]:<60}  [{sources}]")
        why = [item["because"][0]["reason"][:80]] if item["because"] else []
        if "reranker" in item["provenance"]:
            r = item["provenance"]["reranker"]
            why.append(f"P(click) {r['p_click']:.2f}" + (f", P(purchase) {r['p_purchase']:.2f}" if "p_purchase" in r else ""))
        why.append(f"need: {item['need']['name']}")
        click.echo(f"     {'; '.join(why)}")


def _read_users(path: str) -> list[str]:
    if path == "-":
        lines = sys.stdin.read().removeprefix("\ufeff").splitlines()
    else:
        p = Path(path)
        if not p.is_file():
            raise DataError(f"--users {path}: no such file; give a file with one user id per line, or - for stdin")
        try:
            lines = read_text(p).splitlines()  # a byte-order mark, as spreadsheets write, is not part of the first id
        except DataError as e:
            raise DataError(f"--users {e}") from None
    users = [x.strip().split(",")[0].strip() for x in lines if x.strip()]
    if users and users[0] == "user_id":
        users = users[1:]
    if not users:
        raise DataError(f"--users {path}: no user ids found; write one user id per line")
    return users


@click.command("recommend")
@ARTIFACTS
@click.option("--users", "users_path", required=True, metavar="FILE|-",
              help="User ids, one per line (a 'user_id' header line is skipped); - reads stdin.")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output JSON Lines file.")
@INCLUDE_SEEN
@AT
@NO_RERANK
@FUSION_WEIGHTS
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=1024, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--timing", is_flag=True, help="Print load time and throughput on stderr.")
@THREADS
def recommend(artifacts: Path, users_path: str, k: int, out: Path, include_seen: bool | None, at: str | None,
              no_rerank: bool, fusion_weights: str | None, batch_size: int, quiet: bool, timing: bool,
              threads: int | None) -> None:
    """Batch inference: one JSON line per user, {"user_id", "items", "scores"}, written atomically."""
    from tqdm.auto import tqdm

    configure(threads)
    when = parse_at(at)
    users = _read_users(users_path)
    t0 = time.perf_counter()
    rec, user_ids = load_engine(artifacts, not no_rerank, fusion_weights)
    t1 = time.perf_counter()
    stored = [user_ids(u) for u in users]
    known = rec.users.to_internal(stored, missing="ignore") >= 0
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f, tqdm(total=len(users), disable=quiet, unit="user") as bar:
            for s in range(0, len(users), batch_size):
                part, keys = users[s:s + batch_size], stored[s:s + batch_size]
                mask = known[s:s + batch_size]
                ids = np.full((len(part), k), None, dtype=object)
                scores = np.full((len(part), k), -np.inf, dtype=np.float32)
                if mask.any():
                    got = rec.recommend([u for u, m in zip(keys, mask) if m], k=k, include_seen=include_seen, at=when)
                    ids[mask], scores[mask] = got
                for r in np.flatnonzero(~mask):
                    cold = rec.explain_one(keys[r], k=k, include_seen=include_seen, at=when)["items"]
                    ids[r, :len(cold)] = [c["item_id"] for c in cold]
                    scores[r, :len(cold)] = [c["score"] for c in cold]
                for u, row_ids, row_scores in zip(part, ids, scores):
                    keep = [j for j, i in enumerate(row_ids) if i is not None]
                    f.write(json.dumps({"user_id": u, "items": [str(row_ids[j]) for j in keep],
                                        "scores": [round(float(row_scores[j]), 6) for j in keep]}) + "\n")
                bar.update(len(part))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    t2 = time.perf_counter()
    n_cold = int((~known).sum())
    click.echo(f"wrote {len(users)} users to {out}" + (f" ({n_cold} unknown: popular items)" if n_cold else ""), err=True)
    if timing:
        click.echo(f"timing: load {t1 - t0:.2f} s, recommend {t2 - t1:.2f} s ({len(users) / max(t2 - t1, 1e-9):,.0f} "
                   "users/s)", err=True)
