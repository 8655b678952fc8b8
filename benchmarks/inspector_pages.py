"""The web inspector's pages in headless Chromium: load time per page, and a screenshot of each.

    python benchmarks/inspector_pages.py --artifacts artifacts/bench-movielens-100k artifacts/bench-instacart

For each artifact, starts ``recsys serve`` (a subprocess, as deployed), opens every page with
Playwright and Debian's ``chromium`` (the user page of a user with a history, the same with the
reranker comparison, an item the user is recommended, the needs and the model pages), and times
``page.goto`` until the page has loaded: once cold (the first load after ``/health`` answers,
while the server may still be computing the views it prepares at start) and the median of
``--repeats`` warm loads. Writes
``results/inspector.json`` and ``.md``, and ``results/inspector/<artifact>-<page>.png`` (800 px wide).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from http_load import free_port, wait_until_up

from recsys.artifacts import machine_info, machine_line

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
SHOTS = RESULTS / "inspector"


def shrink(path: Path, width: int = 800) -> None:
    from PIL import Image

    img = Image.open(path)
    img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS).convert("RGB")
    img.quantize(colors=128).save(path, optimize=True)


def pages_of(artifacts: str) -> dict[str, str]:
    """The URLs to open: a user with a history (the first one in the id map), that user's first
    recommended item, the needs and the model pages."""
    from recsys.pipeline import load

    rec = load(artifacts, "cpu", rerank=False)
    user = next(str(rec.users.ids[u]) for u in range(rec.n_users) if rec.seen(u).size >= 3)
    item = rec.explain_one(user, k=1, rerank=False)["items"][0]["item_id"]
    return {"user": f"/?user={quote(user)}", "compare": f"/?user={quote(user)}&compare=1",
            "item": f"/ui/item?item={quote(item)}", "needs": "/ui/needs", "model": "/ui/model"}


def measure(artifacts: str, browser, repeats: int) -> list[dict]:
    name = Path(artifacts).name.removeprefix("bench-")
    urls = pages_of(artifacts)
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="inspector-"))
    server = subprocess.Popen([sys.executable, "-m", "recsys", "serve", "--artifacts", artifacts, "--store",
                               str(work / "events.sqlite"), "--port", str(port), "--always-rerank"], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rows = []
    try:
        wait_until_up(port, server)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        for kind, path in urls.items():
            url = f"http://127.0.0.1:{port}{path}"
            times = []
            for _ in range(repeats + 1):
                t = time.perf_counter()
                response = page.goto(url, wait_until="load")
                times.append(time.perf_counter() - t)
                if response.status != 200:
                    raise SystemExit(f"{url}: HTTP {response.status}")
            shot = SHOTS / f"{name}-{kind}.png"
            page.screenshot(path=str(shot))
            shrink(shot)
            rows.append({"artifact": name, "page": kind, "path": path, "cold_ms": round(1000 * times[0]),
                         "warm_ms": round(1000 * statistics.median(times[1:])), "screenshot": str(shot.relative_to(REPO))})
            print(rows[-1], flush=True)
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", nargs="+", default=["artifacts/bench-movielens-100k", "artifacts/bench-instacart"])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    chromium = next((c for c in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if c), None)
    if chromium is None:
        raise SystemExit("no Chromium found: apt-get install chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        rows = [r for a in args.artifacts for r in measure(a, browser, args.repeats)]
        browser.close()
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine_info(),
              "command": "python benchmarks/inspector_pages.py --artifacts " + " ".join(args.artifacts), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "inspector.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"### Web inspector page loads, headless Chromium on loopback, {machine_line(result['machine'])}, {result['date']}", "",
             "| artifact | page | first load ms | warm load ms (median of 5) |", "|---|---|---|---|"]
    lines += [f"| {r['artifact']} | {r['page']} | {r['cold_ms']} | {r['warm_ms']} |" for r in rows]
    lines += ["", f"`{result['command']}` (served with `--always-rerank`; the browser and the server share the "
                  "machine's cores)."]
    (RESULTS / "inspector.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
