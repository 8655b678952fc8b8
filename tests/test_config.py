"""Config files mirror the CLI options; the command line wins."""

import json

import pytest
from click.testing import CliRunner

from recsys.cli.main import cli
from recsys.config import load_config
from recsys.errors import ConfigError


def test_toml_config_drives_validate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ev.csv").write_text("cust,sku,ts\nc1,a,1700000000\nc1,b,1700000100\nc2,a,1700000200\n")
    (tmp_path / "items.csv").write_text("sku,name\na,Red mug\nb,Blue mug\n")
    (tmp_path / "shop.toml").write_text(
        '[events]\npath = "ev.csv"\nevent_type = "purchase"\nmap = { user_id = "cust", item_id = "sku", timestamp = "ts" }\n'
        '[items]\npath = "items.csv"\nmap = { item_id = "sku" }\n[cleaning]\nkcore_users = 2\n'
    )
    result = CliRunner().invoke(cli, ["data", "validate", "--config", "shop.toml", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["rows_in"], out["rows_kept"], out["users"]) == (3, 2, 1)  # c2 has one event: k-core drops it
    assert out["config"]["cleaning"]["kcore_users"] == 2
    # the command line wins over the file
    result = CliRunner().invoke(cli, ["data", "validate", "--config", "shop.toml", "--kcore-users", "0", "--json"])
    assert json.loads(result.output)["rows_kept"] == 3


def test_bad_config_files(tmp_path):
    (tmp_path / "a.json").write_text('{"events": {"path": "x.csv"}, "colour": 1}')
    with pytest.raises(ConfigError, match=r"a.json: unknown key\(s\) colour; known: cleaning, data_dir"):
        load_config(tmp_path / "a.json")
    (tmp_path / "b.json").write_text("{oops")
    with pytest.raises(ConfigError, match=r"b.json: invalid JSON at line 1, column 2"):
        load_config(tmp_path / "b.json")
    (tmp_path / "c.yaml").write_text("a: 1")
    with pytest.raises(ConfigError, match=r"unknown config type '.yaml'; use .toml or .json"):
        load_config(tmp_path / "c.yaml")


def test_the_shipped_id_only_config_is_a_valid_build_config():
    from pathlib import Path

    from recsys.config import dataclass_section
    from recsys.retrieval.towers import TowerConfig

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "configs" / "id-only.toml"
    tower = TowerConfig(**dataclass_section(load_config(path), "tower", TowerConfig, path))
    assert (tower.use_text, tower.id_dropout) == (False, 0.0)
