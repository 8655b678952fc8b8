"""Config files mirror the CLI options; the command line wins."""

import json
from dataclasses import fields

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.cli.main import cli
from recsys.config import load_config
from recsys.errors import ConfigError
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig


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


def test_a_json_null_leaves_the_default_and_a_setting_out_of_range_names_the_file_key_and_fix(tmp_path):
    import json

    from recsys.pipeline.options import build_options

    path = tmp_path / "c.json"
    path.write_text(json.dumps({"tower": {"max_len": None, "dim": 32}, "train": {"epochs": None}}))
    opts = build_options(load_config(path), path)
    assert (opts.tower.max_len, opts.tower.dim, opts.train.epochs) == (50, 32, 40)
    assert opts.explicit == frozenset({"tower.dim"})  # the nulls are not settings the user chose
    path.write_text(json.dumps({"tower": {"dropout": 1.5}}))
    with pytest.raises(ConfigError) as e:
        build_options(load_config(path), path)
    assert str(e.value) == (f"{path}: [tower] dropout = 1.5: give a rate from 0 up to (not including) 1 (dropout in a config "
                            "file's [tower])")


VALUES = [0, 1, 2, 3, -1, 7, 64, 10**9, 0.0, 0.5, 1.0, 1.5, -0.5, float("nan"), float("inf"), None, True, "x", [1], {"a": 1}]


@settings(max_examples=200, deadline=None)
@given(tower=st.dictionaries(st.sampled_from(sorted(f.name for f in fields(TowerConfig))), st.sampled_from(VALUES),
                             max_size=4),
       train=st.dictionaries(st.sampled_from(sorted(f.name for f in fields(TrainConfig))), st.sampled_from(VALUES),
                             max_size=4))
def test_any_tower_and_train_settings_build_options_or_a_config_error(tower, train):
    from recsys.pipeline.options import build_options

    try:
        opts = build_options({"tower": tower, "train": train}, "c.json")
    except ConfigError as e:
        assert str(e).startswith("c.json: [") and "\n" not in str(e)
        return
    assert opts.tower.dim >= 1 and opts.tower.dim % opts.tower.n_heads == 0 and opts.train.lr > 0  # in range
    assert opts.train.mask_seen in (None, True, False)
