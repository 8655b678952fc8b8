"""Next purchase on event logs: the engine, built with defaults, against the user's own recency,
personal frequency, TIFU-KNN, ALS and sequential co-occurrence.

    python benchmarks/next_purchase.py --synthetic            # planted funnels (recsys.synthetic, funnel=5)
    python benchmarks/next_purchase.py --dataset rees46 --data-dir ../shared/data

The target is each user's last purchase; the history everything the user did before it (seen
items may be targets: :func:`recsys.splits.next_purchase`). Builds the artifact with
``recsys build-index --holdout next_purchase`` and nothing else set, then scores engine and peers
with ``benchmarks/run.py --protocol next_purchase`` on the same split. Writes
``results/next_purchase_<name>.json`` and ``.md``, whose first line compares the served list with the
best peer (ratio and difference, paired bootstrap intervals). Run it alone: it builds a model.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def synthetic_files(folder: Path, users: int, items: int, funnel: int, seed: int) -> list[str]:
    """Write the planted-funnel data as Parquet; the run.py / build-index data arguments for it."""
    from recsys.synthetic import generate_synthetic

    d = generate_synthetic(n_users=users, n_items=items, n_needs=8, funnel=funnel, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    d.dataset.events.write_parquet(folder / "events.parquet")
    d.dataset.items.write_parquet(folder / "items.parquet")
    return ["--events", str(folder / "events.parquet"), "--items", str(folder / "items.parquet")]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthetic", action="store_true", help="Planted funnels instead of a named dataset.")
    p.add_argument("--dataset", default="rees46")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--users", type=int, default=1000, help="--synthetic: users.")
    p.add_argument("--items", type=int, default=400, help="--synthetic: items.")
    p.add_argument("--funnel", type=int, default=5, help="--synthetic: items viewed before each final purchase.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-rerank", action="store_true", help="Score the fused list only (no reranker trained).")
    args = p.parse_args(argv)
    name = "synthetic" if args.synthetic else args.dataset
    art = REPO / "artifacts" / f"np-{name}"
    if args.synthetic:
        data = synthetic_files(REPO / "artifacts" / "np-synthetic-data", args.users, args.items, args.funnel, args.seed)
        run_data = [*data, "--name", f"next_purchase_{name}"]
    else:
        data = ["--dataset", args.dataset, "--data-dir", args.data_dir]
        run_data = [*data, "--name", f"next_purchase_{name}"]
    build = [sys.executable, "-m", "recsys", "build-index", *data, "--holdout", "next_purchase", "--out", str(art),
             "--quiet", *(["--no-reranker"] if args.no_rerank else [])]
    print("$", " ".join(build[2:]), file=sys.stderr)
    subprocess.run(build, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    run = [sys.executable, str(REPO / "benchmarks" / "run.py"), *run_data, "--protocol", "next_purchase",
           "--artifacts", str(art), "--out", str(RESULTS), "--seed", str(args.seed),
           *(["--no-rerank"] if args.no_rerank else [])]
    print("$", " ".join(run[1:]), file=sys.stderr)
    subprocess.run(run, cwd=REPO, check=True)


if __name__ == "__main__":
    main()
