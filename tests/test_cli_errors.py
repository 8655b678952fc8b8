"""Bad input gives one line naming the file, column or row and the fix; exit code 2; no traceback."""

import pytest
from click.testing import CliRunner

from recsys.cli.main import cli

HEADER = "user_id,item_id,event,timestamp\n"


def run(*args):
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def _files(tmp_path):
    (tmp_path / "nocol.csv").write_text("user_id,item_id,timestamp\nu1,a,1\n")
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "latin.csv").write_bytes(HEADER.encode() + b"u1,caf\xe9,view,1\n")
    (tmp_path / "garbage.csv").write_text(HEADER + "u1,a,view,banana\nu2,b,view,apple\n")
    (tmp_path / "unknown.csv").write_text(HEADER + "u1,a,view,1\nu1,b,like,2\n")
    (tmp_path / "header.csv").write_text(HEADER)
    (tmp_path / "folder").mkdir()


CASES = [
    ("nocol.csv", "nocol.csv: missing column 'event' (found: user_id, item_id, timestamp); map it with "
     "--map event=COLUMN, or give one type for every row with --event-type purchase"),
    ("empty.csv", "empty.csv: file is empty; give a file with a header row and at least one row"),
    ("header.csv", "header.csv: has a header but no rows; give at least one row"),
    ("latin.csv", "latin.csv: not UTF-8 (byte 0xe9 at line 2, offset 38); re-encode it, e.g. "
     "iconv -f latin1 -t utf-8 latin.csv > latin.utf8.csv"),
    ("garbage.csv", "garbage.csv: column 'timestamp' is not a timestamp (2 of 2 values unparseable or outside "
     "1900-2200, e.g. row 1: 'banana'); use ISO-8601 (2024-05-01T12:00:00Z) or Unix seconds/milliseconds, or map another column "
     "with --map timestamp=COLUMN"),
    ("unknown.csv", "unknown.csv: unknown event type 'like' in column 'event' (row 2); known: view, click, cart, "
     "purchase; map it to one with --event-map like=purchase (or view, click, cart), or declare it with "
     "--event-weight like=WEIGHT"),
    ("folder", "folder: is a folder, expected a file; give the file itself, e.g. folder/events.csv"),
    ("missing.csv", "missing.csv: no such file; check the path"),
]


@pytest.mark.parametrize("name, message", CASES)
def test_bad_events_file(tmp_path, monkeypatch, name, message):
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out = run("data", "validate", "--events", name)
    assert code == 2
    assert out == f"Error: {message}\n"
    assert "Traceback" not in out


def test_folder_as_catalog(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ev.csv").write_text(HEADER + "u1,a,view,1\n")
    (tmp_path / "cat").mkdir()
    code, out = run("data", "validate", "--events", "ev.csv", "--items", "cat")
    assert (code, out) == (2, "Error: cat: is a folder, expected a file; give the file itself, e.g. cat/events.csv\n")


def test_unknown_event_declared_with_weight_passes(tmp_path, monkeypatch):
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out = run("data", "validate", "--events", "unknown.csv", "--event-weight", "like=3")
    assert code == 0, out
    assert out.splitlines()[-1] == "OK: the data meets the contract; no rule removed or flagged anything."


def test_mapping_to_absent_column(tmp_path, monkeypatch):
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out = run("data", "validate", "--events", "nocol.csv", "--map", "user_id=cust")
    assert (code, out) == (2, "Error: nocol.csv: --map user_id=cust: no column 'cust'; found: user_id, item_id, timestamp\n")


def test_unknown_dataset_and_missing_data_dir(monkeypatch):
    monkeypatch.delenv("RECSYS_DATA_DIR", raising=False)
    assert run("data", "validate", "--dataset", "nope") == (
        2, "Error: --dataset 'nope': unknown; use one of default, movielens-100k, instacart, rees46, "
           "or --events F [--items F]\n")
    assert run("data", "validate", "--dataset", "instacart") == (
        2, "Error: dataset 'instacart': no data folder; give --data-dir DIR or set RECSYS_DATA_DIR "
           "(the folder that holds instacart/orders_products_part1.csv)\n")


def test_help_lists_commands():
    code, out = run("--help")
    assert code == 0 and "data" in out
    code, out = run("data", "--help")
    assert "validate" in out and "stats" in out


def test_validate_default_dataset_json():
    import json

    code, out = run("data", "validate", "--json")
    assert code == 0
    summary = json.loads(out)
    assert (summary["rows_in"], summary["rows_kept"], summary["users"], summary["items"]) == (100000, 100000, 943, 1682)


def test_nothing_left_after_cleaning_shows_the_report_then_one_line(tmp_path):
    path = tmp_path / "dead.csv"
    path.write_text(HEADER + "NA,a,view,1569888000\nu1,b,view,1569888001\nu1,b,view,1569888001\n")
    code, out = run("data", "validate", "--events", str(path), "--kcore-users", "2")
    lines = out.splitlines()
    assert code == 2 and lines[0].split() == ["rule", "in", "removed", "out"]
    assert lines[1].split() == ["missing_user_id", "3", "1", "2"]  # then the duplicate, then the k-core
    assert lines[-1] == (f"Error: {path}: no event survives cleaning (of 3 rows: 1 by missing_user_id; 1 by "
                         "exact_duplicates; 1 by kcore); see the cleaning report (`recsys data validate`) and relax "
                         "the rule that removed them")
