"""Ingest and cleaning speed: synthetic events at 100k, 1M and 10M rows, from CSV and Parquet.

    python benchmarks/ingest.py                 # 100k, 1M, 10M (about 3 minutes on 2 cores)
    python benchmarks/ingest.py --sizes 100000  # quick

For each size: generate, write CSV and Parquet, then time ``load_events`` (read + map + parse +
checks), ``clean_events`` and id-map construction, with the process's peak memory. Writes
``results/ingest.json`` and ``results/ingest.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from recsys.artifacts import machine_info, machine_line, package_versions
from recsys.cleaning import clean_events
from recsys.idmap import IDMap
from recsys.io import load_events
from recsys.synthetic import generate_synthetic

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(n_events: int, tmp: Path) -> list[dict]:
    # about 58 events per user with the generator's defaults
    n_users = max(10, n_events // 58)
    t0 = time.perf_counter()
    data = generate_synthetic(n_users=n_users, n_items=max(64, n_users // 2), n_needs=16, seed=1)
    gen_s = time.perf_counter() - t0
    events = data.dataset.events
    rows = []
    for fmt in ("parquet", "csv"):
        path = tmp / f"events_{n_events}.{fmt}"
        if fmt == "csv":
            events.write_csv(path)
        else:
            events.write_parquet(path)
        t0 = time.perf_counter()
        loaded, _ = load_events(path)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        kept, _ = clean_events(loaded, value_kind="price")
        clean_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        IDMap.from_ids(kept["user_id"])
        IDMap.from_ids(kept["item_id"])
        map_s = time.perf_counter() - t0
        rows.append({"events": events.height, "format": fmt, "file_mb": round(path.stat().st_size / 2**20, 1),
                     "generate_s": round(gen_s, 2), "load_s": round(load_s, 2), "clean_s": round(clean_s, 2),
                     "idmap_s": round(map_s, 2), "peak_rss_mb": round(peak_rss_mb(), 0)})
        print(rows[-1], flush=True)
        path.unlink()
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000, 10_000_000])
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            rows += measure(n, Path(tmp))
    result = {"rows": rows, "machine": machine_info(),
              "packages": package_versions(), "date": time.strftime("%Y-%m-%d")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"### Ingest and cleaning ({result['date']}, {machine_line(result['machine'])})", "",
             "| events | format | file MB | load s | clean s | id maps s | peak RSS MB |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['events']:,} | {r['format']} | {r['file_mb']} | {r['load_s']} | {r['clean_s']} | {r['idmap_s']} | "
              f"{r['peak_rss_mb']:.0f} |" for r in rows]
    lines += ["", "Peak RSS is the process's high-water mark so far (it includes the generated data).", ""]
    (args.out / "ingest.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
