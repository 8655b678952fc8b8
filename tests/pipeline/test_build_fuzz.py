"""Hypothesis over small event logs through ``recsys build-index`` and ``recsys query`` (each example
is a build of a few dozen events, under a second): whatever the log, the build writes an artifact that answers a query, or
stops with one line ``Error: ...`` and exit 2, never a traceback, and leaves no pending folder.

The logs are drawn as a shop's first days look: a few users and items, views, clicks, carts and
purchases at hours that tie and repeat, with or without order ids, built under each split.
"""

from __future__ import annotations

import csv
import io

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.cli.main import cli
from recsys.splits import HOLDOUTS

EXAMPLES = 25  # about 20 s in all; raise it locally to dig deeper
ROW = st.tuples(st.integers(0, 9), st.integers(0, 7), st.sampled_from(["view", "click", "cart", "purchase"]),
                st.integers(0, 40), st.integers(0, 3))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=10, max_size=120), holdout=st.sampled_from(HOLDOUTS), orders=st.booleans())
def test_any_small_log_builds_and_answers_or_stops_with_one_line(tmp_path_factory, rows, holdout, orders):
    d = tmp_path_factory.mktemp("log")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["user_id", "item_id", "event", "timestamp"] + (["session_id"] if orders else []))
    for u, i, e, hour, order in rows:
        writer.writerow([f"u{u}", f"i{i}", e, 1569888000 + 3600 * hour] + ([f"o{u}-{order}"] if orders else []))
    (d / "events.csv").write_text(out.getvalue())
    result = CliRunner().invoke(cli, ["build-index", "--events", str(d / "events.csv"), "--out", str(d / "art"),
                                      "--holdout", holdout, "--no-reranker", "--text-model", "char-ngram", "--epochs",
                                      "2", "--pretrain-epochs", "0", "--quiet", "--kcore-users", "1", "--kcore-items", "1"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert not list(d.glob(".art.tmp-*"))  # nothing pending, built or not
    if result.exit_code == 2:
        assert result.output.count("Error: ") == 1 and result.output.rstrip("\n").splitlines()[-1].startswith("Error: ")
        assert not (d / "art").exists()
        return
    assert result.exit_code == 0, result.output
    query = CliRunner().invoke(cli, ["query", "--artifacts", str(d / "art"), "--user", f"u{rows[0][0]}", "-k", "3",
                                     "--json"])
    assert query.exit_code == 0, query.output
