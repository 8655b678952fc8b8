"""Hypothesis over the files users hand to ``recsys data validate``: whatever the bytes, the command
answers a report (exit 0) or one line ``Error: ...`` that names the file (exit 2), never a traceback.

The files are built from cells a shop's export really holds (ids with zeros, blanks, ``NA``,
quotes, separators inside quotes, dates in several formats, Unix times, non-numbers, look-alike
Unicode), under headers that keep, drop, repeat or rename the contract's columns, and as raw
bytes (not UTF-8, a byte-order mark, a NUL).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.cli.main import cli

EXAMPLES = 60  # the suite stays quick; raise it locally to dig deeper
CELLS = st.one_of(
    st.sampled_from(["", "NA", "null", "00042", "42", "42.0", "-1", "1e400", "nan", "inf", "view", "purchase",
                     "cart", "click", "refund", "2019-10-01 00:00:00 UTC", "2019-10-01T00:00:00+02:00",
                     "2019/10/01", "1569888000", "1569888000000", "31-12-2019", "true", "é", "ｖｉｅｗ",
                     "a,b", 'say "hi"', "line\nbreak", " spaced "]),
    st.text(max_size=12),
    st.integers(min_value=-10**12, max_value=10**13).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
CONTRACT = ["user_id", "item_id", "event", "timestamp", "session_id", "value"]
HEADERS = st.lists(st.one_of(st.sampled_from(CONTRACT), st.text(min_size=1, max_size=8)), min_size=1, max_size=7)


@st.composite
def tables(draw) -> str:
    """CSV text: a header drawn around the contract's columns, then rows of drawn cells."""
    header = draw(st.one_of(st.just(CONTRACT[:4]), st.just(CONTRACT), HEADERS))
    rows = draw(st.lists(st.lists(CELLS, min_size=len(header), max_size=len(header)), max_size=8))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


GOOD = b"user_id,item_id,event,timestamp\nu1,00042,view,2019-10-01 00:00:00 UTC\nu1,7,purchase,1569888001\n"


def validate(tmp: Path, events: bytes, suffix: str = ".csv", items: bytes | None = None) -> tuple[int, str]:
    path = tmp / f"events{suffix}"
    path.write_bytes(events)
    args = ["data", "validate", "--events", str(path), "--kcore-users", "1", "--kcore-items", "1"]
    if items is not None:
        (tmp / "items.csv").write_bytes(items)
        args += ["--items", str(tmp / "items.csv")]
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception} on {events!r}")
    return result.exit_code, result.output


def check(code: int, output: str, path_name: str = "events.") -> None:
    assert code in (0, 2), output
    if code == 2:
        error = output.rstrip("\n").splitlines()[-1]
        assert error.startswith("Error: ") and output.count("Error: ") == 1, output
        assert path_name in output or "--" in error, output  # names the file, or the option to fix


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
@given(text=tables())
def test_any_csv_gets_a_report_or_one_line_error(tmp_path, text):
    check(*validate(tmp_path, text.encode()))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
@given(head=st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00"]), body=st.binary(max_size=80),
       suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".parquet"]))
def test_any_bytes_get_a_report_or_one_line_error(tmp_path, head, body, suffix):
    check(*validate(tmp_path, head + b"user_id,item_id,event,timestamp\n" + body, suffix))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
@given(text=tables())
def test_any_catalogue_gets_a_report_or_one_line_error(tmp_path, text):
    text = text.replace("user_id", "item_id", 1) if "item_id" not in text.split("\n", 1)[0] else text
    check(*validate(tmp_path, GOOD, items=text.encode()), path_name="items.csv")


def test_a_good_file_passes_the_same_checks(tmp_path):
    # the property is not vacuous: a valid file reports, a file without a user column names the fix
    code, output = validate(tmp_path, GOOD)
    assert code == 0, output
    code, output = validate(tmp_path, b"customer,item_id,event,timestamp\nu1,7,view,1569888001\n")
    assert (code, output.splitlines()[-1]) == (2, "Error: " + output.splitlines()[-1][len("Error: "):])
    assert "missing column 'user_id'" in output and "--map user_id=" in output, output
