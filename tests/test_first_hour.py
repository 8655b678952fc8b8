"""A new user's first hour: event names mapped, options and paths that exist, Ctrl-C, and
explanations that hold up (need names, "because" items, a one-item history)."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from recsys.cli.main import cli
from recsys.io import load_events

from .conftest import write

REPO = Path(__file__).resolve().parents[1]
SHOP = "customer,sku,action,ts\n" + "".join(
    f"c{u},s{(u * 3 + k) % 12},{a},2024-05-0{1 + k % 9}T1{u % 10}:00:00Z\n"
    for u in range(30) for k, a in enumerate(["pageview", "pageview", "addtocart", "order", "pageview"]))
MAP = ["--map", "user_id=customer", "--map", "item_id=sku", "--map", "event=action", "--map", "timestamp=ts"]


def test_event_names_are_mapped_onto_the_known_types(tmp_path):
    path = write(tmp_path / "shop.csv", SHOP)
    events, _ = load_events(path, mapping=dict(m.split("=") for m in MAP[1::2]),
                            event_map={"order": "purchase", "pageview": "view", "addtocart": "cart"})
    assert events.group_by("event").len().sort("event").rows() == [("cart", 30), ("purchase", 30), ("view", 90)]
    result = CliRunner().invoke(cli, ["data", "validate", "--events", str(path), *MAP, "--json"])
    assert result.exit_code == 2 and result.output == (
        f"Error: {path}: unknown event type 'pageview' in column 'action' (row 1); known: view, click, cart, purchase; "
        "map it to one with --event-map pageview=purchase (or view, click, cart), or declare it with "
        "--event-weight pageview=WEIGHT\n")
    ok = CliRunner().invoke(cli, ["data", "validate", "--events", str(path), *MAP, "--event-map",
                                  "order=purchase,pageview=view,addtocart=cart", "--json"])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(cli, ["data", "validate", "--events", str(path), *MAP, "--event-map", "order=buy"])
    assert bad.output == ("Error: --event-map order=buy: 'buy' is not an event type; map onto one of view, click, cart, "
                          "purchase (or declare it with --event-weight buy=WEIGHT)\n")


def test_a_tab_separated_file_named_csv_is_read(tmp_path):
    path = write(tmp_path / "shop.csv", SHOP.replace(",", "\t"))
    events, _ = load_events(path, mapping=dict(m.split("=") for m in MAP[1::2]), event_map={
        "order": "purchase", "pageview": "view", "addtocart": "cart"})
    assert events.height == 150 and events["user_id"][0] == "c0"


def _options() -> set[str]:
    out = set()

    def walk(cmd):
        for p in cmd.params:
            out.update(o for o in [*p.opts, *p.secondary_opts] if o.startswith("--"))
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(cli)
    return out


def test_every_option_the_readme_and_the_errors_name_exists():
    known = _options() | {"--help", "--version", "--index-url"} | {  # pip's, and torchrun's
        "--nproc_per_node", "--nnodes", "--node_rank", "--rdzv_endpoint", "--rdzv_backend", "--standalone"}
    for script in (REPO / "benchmarks").glob("*.py"):  # the options of the benchmark commands the README gives
        known |= set(re.findall(r"add_argument\(\"(--[a-z][a-z0-9-]*)\"", script.read_text(encoding="utf-8")))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*[a-z0-9]", readme))
    sources = [p for d in ("recsys", "retrieval", "rerank", "eval", "pipeline", "cli", "serve")
               for p in (REPO / d).rglob("*.py")]
    for path in sources:
        named |= set(re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*[a-z0-9]", path.read_text(encoding="utf-8")))
    assert sorted(named - known) == []
    for link in re.findall(r"`((?:recsys|retrieval|rerank|eval|pipeline|cli|serve|tests|benchmarks)/[\w/.]+)`", readme):
        assert (REPO / link).exists(), link


def test_ctrl_c_exits_130_and_leaves_nothing(tmp_path):
    out = tmp_path / "art"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # as from a terminal: a suite started in a script's background (`pytest &`) has SIGINT ignored, which
    # its children inherit; recsys then leaves Ctrl-C ignored, and only polars (whose own handler catches
    # it inside a query) would stop the build, so the test would pass or hang by where the signal lands
    proc = subprocess.Popen([sys.executable, "-m", "recsys", "build-index", "--out", str(out), "--no-reranker",
                             "--text-model", "char-ngram"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not any(tmp_path.glob(".art.tmp-*")):  # the build is writing
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert err.rstrip().endswith("Interrupted") and not out.exists() and not list(tmp_path.glob(".art.tmp-*"))


def test_the_demo_says_how_to_run_recsys():
    makefile = (REPO / "Makefile").read_text()
    assert "make demo: done in" in makefile and "source $(VENV)/bin/activate" in makefile
    assert "source .venv/bin/activate" in (REPO / "README.md").read_text()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    from recsys.pipeline import BuildOptions, build, load
    from recsys.retrieval.charngram import CharNgramEncoder
    from recsys.retrieval.towers import TowerConfig
    from recsys.retrieval.train import TrainConfig
    from recsys.synthetic import generate_synthetic

    d = generate_synthetic(n_users=600, n_items=300, n_needs=6, seed=3)
    out = tmp_path_factory.mktemp("hour") / "art"
    build(d.dataset, out, opts=BuildOptions(
        holdout="temporal", tower=TowerConfig(dim=32, max_len=20, n_layers=1, dropout=0.1, id_dropout=0.5),
        train=TrainConfig(epochs=10, pretrain_epochs=1, patience=10), text_encoder=CharNgramEncoder(dim=32),
        n_needs=6, show_progress=False))
    return d, load(out)


def test_a_need_is_named_by_the_words_its_items_share(shop):
    d, rec = shop
    planted = dict(zip(d.items["item_id"], d.items["need"]))
    named = [planted[i] in rec.needs.names[int(rec.needs.assign[k])]["name"].split(" / ")
             for k, i in enumerate(rec.items.ids)]
    print("items whose need is named by their planted need", np.mean(named))
    # chance is 1/6; measured 0.69 with this build's seed (0), 0.69 to 1.0 over build seeds 0-14 (mean 0.94):
    # how pure the clusters of trained item vectors come out varies with the run; names follow each cluster's majority
    assert np.mean(named) > 0.6


def test_a_one_item_history_gets_that_items_neighbours(shop):
    d, rec = shop
    planted = dict(zip(d.items["item_id"], d.items["need"]))
    same, overlap = [], []
    for item in rec.items.ids[::10]:
        got = [x["item_id"] for x in rec.explain_one("a-new-visitor", k=10, fresh=[(item, "view")])["items"]]
        i = rec.items.index(item)
        ids, _ = rec.index.search(rec.item_vectors[i:i + 1], 11)
        similar = {rec.items.ids[j] for j in ids[0] if j != i}
        same.append(np.mean([planted[x] == planted[item] for x in got]))
        overlap.append(len(similar & set(got)) / 10)
    print("one-item history: same planted need", np.mean(same), "overlap with /similar", np.mean(overlap))
    # measured 0.77 (random 0.17) and 0.17: the list is shared with the transitions source (what followed
    # the item in others' histories), which fusion weighs in for new visitors; before it, 0.70 and 0.4
    assert np.mean(same) > 0.6 and np.mean(overlap) > 0.1
    short = rec.fusion_weights(False, short=True)  # chosen on new visitors' held-out sessions: an item-to-item source
    assert short["similar"] > 0 or short["transitions"] > 0


def test_because_items_are_alike_and_read_right(shop):
    from recsys.retrieval.explain import BECAUSE_MIN, reason

    _, rec = shop
    out = rec.explain_one(rec.users.ids[0], k=10)
    sims = [b["similarity"] for i in out["items"] for b in i["because"]]
    assert sims and min(sims) >= BECAUSE_MIN
    assert reason("purchase", "Red mug") == "because you bought Red mug"
    assert reason("like", "Red mug") == "because of Red mug (like)"


def test_a_build_without_purchases_does_not_claim_a_purchase_head(tiny_bert, tmp_path):
    from recsys.pipeline import BuildOptions, RerankOptions, build, load
    from recsys.rerank.config import RerankTrainConfig
    from recsys.rerank.model import RerankerConfig
    from recsys.retrieval.charngram import CharNgramEncoder
    from recsys.retrieval.towers import TowerConfig
    from recsys.retrieval.train import TrainConfig
    from recsys.synthetic import generate_synthetic

    d = generate_synthetic(n_users=80, n_items=40, n_needs=4, seed=2)
    d.dataset.events = d.dataset.events.with_columns(
        pl.when(pl.col("event") == "purchase").then(pl.lit("cart")).otherwise(pl.col("event")).alias("event"))
    s = build(d.dataset, tmp_path / "art", opts=BuildOptions(
        holdout="temporal", tower=TowerConfig(dim=16, max_len=10, n_layers=1), text_encoder=CharNgramEncoder(dim=8),
        train=TrainConfig(epochs=1, pretrain_epochs=0), show_progress=False,
        reranker=RerankOptions(model=str(tiny_bert), config=RerankerConfig(max_length=16),
                               train=RerankTrainConfig(epochs=1, feature_steps=5))))
    assert s["reranker"]["heads"] == ["click"]
    rec = load(tmp_path / "art", rerank="always")
    assert rec.reranker.cfg.purchase_weight == 0.0
    items = rec.explain_one(rec.users.ids[0], k=3)["items"]
    assert items and all("p_click" in i["provenance"]["reranker"] and "p_purchase" not in i["provenance"]["reranker"]
                         for i in items)
    result = CliRunner().invoke(cli, ["evaluate", "--artifacts", str(tmp_path / "art"), "--k", "10"])
    assert "P(purchase) not scored" in result.output and "AUC P(purchase) nan" not in result.output


def test_the_config_example_is_valid(tmp_path):
    from recsys.config import __doc__ as doc
    from recsys.config import load_config

    example = doc.split("Example ``shop.toml``::", 1)[1].split("Options given", 1)[0]
    path = write(tmp_path / "shop.toml", "\n".join(line[4:] for line in example.splitlines()))
    cfg = load_config(path)
    assert cfg["events"]["event_map"]["order"] == "purchase" and cfg["cleaning"]["cancelled_orders"] == "C*"
    assert isinstance(click, object)
