"""The web inspector in a real browser: headless Chromium driven by Playwright against `recsys
serve`'s app on the synthetic shop, every page opened and read as a user would. A failing test
leaves a screenshot of the page in its temporary folder.

Needs Playwright (a dev dependency) and a Chromium: Debian's ``chromium`` package, which
``make test`` installs where it can (root with apt); elsewhere these tests skip and say why.
"""

import contextlib
import shutil

import pytest

from recsys.artifacts import Artifact
from recsys.pipeline import evaluate_artifact, store_evaluation
from recsys.serve.app import create_app

from .servers import serving

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')")
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: install Debian's chromium package "
                                                          "(make test does so where it runs as root with apt)")


@pytest.fixture(scope="module")
def shop(tmp_path_factory, tiny_bert):
    """A synthetic shop built with a tiny reranker, evaluated (so the model page has a funnel)."""
    from recsys.pipeline import BuildOptions, RerankOptions, build
    from recsys.rerank.config import RerankTrainConfig
    from recsys.rerank.model import RerankerConfig
    from recsys.retrieval.charngram import CharNgramEncoder
    from recsys.retrieval.towers import TowerConfig
    from recsys.retrieval.train import TrainConfig
    from recsys.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("browser")
    d = generate_synthetic(n_users=120, n_items=60, n_needs=4, seed=4)
    build(d.dataset, root / "shop", opts=BuildOptions(
        holdout="temporal", tower=TowerConfig(dim=16, max_len=20, n_layers=1), text_encoder=CharNgramEncoder(dim=16),
        train=TrainConfig(epochs=2, pretrain_epochs=0), show_progress=False,
        reranker=RerankOptions(model=str(tiny_bert), config=RerankerConfig(max_length=16),
                               train=RerankTrainConfig(epochs=1, feature_steps=5))))
    store_evaluation(root / "shop", evaluate_artifact(Artifact.open(root / "shop"), ks=(10, 20)), {"ks": [10, 20]})
    return root / "shop", d


@pytest.fixture(scope="module")
def base_url(shop):
    art, _ = shop
    root = art.parent
    with serving(create_app(art, root / "events.sqlite", rerank="always")) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser, tmp_path, request):
    pg = browser.new_page(viewport={"width": 1280, "height": 900})
    yield pg
    report = getattr(request.node, "rep_call", None)  # set by tests/serve/conftest.py
    if report is not None and report.failed:
        with contextlib.suppress(Exception):
            pg.screenshot(path=str(tmp_path / f"{request.node.name}.png"), full_page=True)
    pg.close()


def test_user_page_shows_history_needs_and_ten_explained_recommendations(page, base_url, shop):
    _, d = shop
    user = d.users["user_id"][0]
    page.goto(f"{base_url}/")
    page.fill("header input[name=user]", user)
    page.click("header button[type=submit]")
    page.wait_for_selector("table.recommendations")
    assert page.locator("h2").first.inner_text().startswith(f"User {user}")
    assert page.locator(".timeline li").count() >= 3
    assert page.locator(".need-card").count() >= 1
    rows = page.locator("table.recommendations tr.rec")
    assert rows.count() == 10
    for n in range(10):
        row = rows.nth(n)
        assert row.locator("td.need").inner_text().strip()
        assert row.locator("td.provenance .tag").count() >= 1


def test_an_anonymous_history_gets_recommendations(page, base_url, shop):
    _, d = shop
    items = d.items["item_id"].to_list()
    page.goto(f"{base_url}/")
    page.fill("textarea[name=history]", f"{items[0]}:view, {items[1]}")
    page.fill("input[name=k]", "5")
    page.click("form.history button[type=submit]")
    page.wait_for_selector("table.recommendations")
    assert page.locator("h2").first.inner_text().startswith("Anonymous history")
    assert page.locator("table.recommendations tr.rec").count() == 5
    assert page.locator(".timeline li").count() == 2


def test_an_unknown_user_gets_a_message(page, base_url):
    response = page.goto(f"{base_url}/?user=nobody-at-all")
    assert response.status == 404
    assert "user 'nobody-at-all': unknown, with no events" in page.locator(".error").inner_text()


def test_item_page_from_a_recommendation(page, base_url, shop):
    _, d = shop
    page.goto(f"{base_url}/?user={d.users['user_id'][1]}")
    link = page.locator("table.recommendations tr.rec td a").first
    title = link.inner_text()
    link.click()
    page.wait_for_selector("ol.similar")
    assert title in page.locator("h2").inner_text()
    assert page.locator("dd.need").inner_text().strip()
    assert page.locator("ol.similar li").count() == 10
    assert page.locator("ol.audience li").count() == 10


def test_needs_page_lists_every_need(page, base_url):
    page.goto(f"{base_url}/ui/needs")
    rows = page.locator("tr.need-row")
    assert rows.count() >= 2
    first = rows.first.locator("td")
    assert first.nth(0).inner_text().strip() and int(first.nth(1).inner_text()) > 0
    assert int(first.nth(2).inner_text()) + int(first.nth(3).inner_text()) >= 0


def test_model_page_shows_the_funnel_chart_and_the_cleaning_report(page, base_url):
    page.goto(f"{base_url}/ui/model")
    funnel = page.locator("section.funnel figure")
    assert funnel.count() == 3  # recall@20, recall@10, ndcg@10
    assert funnel.first.locator("svg rect").count() >= 3  # each source, merged
    assert "merged" in funnel.first.inner_text()
    assert page.locator("table.cleaning tr").count() >= 2


def test_the_compare_toggle_shows_both_lists(page, base_url, shop):
    _, d = shop
    page.goto(f"{base_url}/?user={d.users['user_id'][2]}")
    assert page.locator("table.recommendations").count() == 1
    heads = page.locator("table.recommendations tr.rec td.heads").first.inner_text()
    assert "P(click)" in heads and "P(purchase)" in heads and "fused #" in heads
    page.click("p.toggle a")
    page.wait_for_selector("section.recs >> nth=1")
    titles = page.locator("section.recs h3").all_inner_texts()
    assert titles == ["Top 10 (reranked)", "Top 10 without the reranker"]
    assert page.locator("section.recs").nth(1).locator("tr.rec").count() == 10
