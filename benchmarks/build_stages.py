"""A build, stage by stage: wall time, peak memory, each stage's seconds, and the test NDCG@10 it keeps.

    python benchmarks/build_stages.py --dataset instacart --data-dir ../shared/data
    python benchmarks/build_stages.py --dataset instacart --data-dir ../shared/data --peers  # + benchmarks/run.py
    python benchmarks/build_stages.py --dataset movielens-100k --data-dir ../shared/data --no-reranker \\
        --variant "fp32 text=--text-precision fp32"

Runs ``recsys build-index --dataset NAME --json`` in a fresh process per variant (the defaults first,
then each ``--variant "NAME=EXTRA ARGS"``), timing it end to end with its peak resident memory,
reads the summary's ``stage_seconds``, then ``recsys evaluate --json`` for the test NDCG@10 of the
merged and reranked lists. The reference is the engine's row in ``results/<dataset>.json`` (the
last full benchmark), so each row says how far from it the build's quality moved. Writes
``results/build_<dataset>.json`` and ``.md``. Run it alone on the machine: it measures time.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from recsys.artifacts import machine_info, machine_line

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
# runs a command and prints its wall seconds and peak RSS (of that command alone) as JSON on stderr
TIMED = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
         "rc = subprocess.call(sys.argv[1:]); r = resource.getrusage(resource.RUSAGE_CHILDREN); "
         "print(json.dumps({'rc': rc, 'wall_s': round(time.perf_counter() - t, 1), "
         "'peak_rss_mb': round(r.ru_maxrss / 1024)}), file=sys.stderr); sys.exit(rc)")


def timed(cmd: list[str], stdout_path: Path) -> dict:
    with open(stdout_path, "w") as out:
        done = subprocess.run([sys.executable, "-c", TIMED, *cmd], cwd=REPO, stdout=out, stderr=subprocess.PIPE,
                              text=True)
    info = json.loads(done.stderr.strip().splitlines()[-1])
    if info["rc"] != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return info


def reference(dataset: str, path: Path | None = None) -> dict:
    path = path or RESULTS / f"{dataset}.json"
    if not path.exists():
        return {}
    peers = json.loads(path.read_text()).get("peers", {})
    return {name: peers[f"engine/{name}"]["test"]["ndcg@10"] for name in ("merged", "reranked")
            if f"engine/{name}" in peers}


def artifact_folder(dataset: str, variant: str) -> Path:
    return REPO / "artifacts" / f"stages-{dataset}-{variant.replace(' ', '-')}"


def run_variant(name: str, extra: list[str], args) -> dict:
    out = artifact_folder(args.dataset, name)
    out.parent.mkdir(exist_ok=True)  # a fresh clone has no artifacts/ folder yet
    build = [sys.executable, "-m", "recsys", "build-index", "--dataset", args.dataset, "--data-dir", args.data_dir,
             "--out", str(out), "--quiet", "--json", *(["--no-reranker"] if args.no_reranker else []), *extra]
    log = Path(f"{out}.build.json")
    info = timed(build, log)
    summary = json.loads(log.read_text())
    ev = Path(f"{out}.evaluate.json")
    subprocess.run([sys.executable, "-m", "recsys", "evaluate", "--artifacts", str(out), "--json"], cwd=REPO,
                   stdout=open(ev, "w"), check=True)
    metrics = json.loads(ev.read_text())["metrics"]
    return {"variant": name, "args": extra, "command": shlex.join(["recsys", *build[3:]]), **info,
            "stage_seconds": summary["stage_seconds"], "epochs": summary.get("epochs"),
            "best_epoch": summary.get("best_epoch"), "text_precision": summary.get("text_precision"),
            "test_ndcg@10": {k: metrics[k]["ndcg@10"] for k in ("two_tower", "merged", "reranked") if k in metrics}}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--no-reranker", action="store_true")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=ARGS",
                   help="Another build with these extra build-index arguments (repeatable).")
    p.add_argument("--out", default=None, help="Result file stem (default: build_<dataset>).")
    p.add_argument("--peers", action="store_true",
                   help="Then score the peers beside the default build (benchmarks/run.py --artifacts): one command "
                        "for a dataset's whole results row.")
    p.add_argument("--peer-lists", nargs="*", default=[], help="With --peers: passed on to benchmarks/run.py.")
    p.add_argument("--reference", type=Path, default=None,
                   help="The run.py result to compare with (default: results/<dataset>.json).")
    args = p.parse_args(argv)
    variants = [("defaults", [])] + [(v.split("=", 1)[0].strip(), shlex.split(v.split("=", 1)[1])) for v in args.variant]
    rows = [run_variant(name, extra, args) for name, extra in variants]
    ref = reference(args.dataset, args.reference)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine_info(),
              "dataset": args.dataset, "reranker": not args.no_reranker, "reference_test_ndcg@10": ref,
              "reference": str(args.reference or f"results/{args.dataset}.json"), "rows": rows}
    stem = args.out or f"build_{args.dataset}{'_no-reranker' if args.no_reranker else ''}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    stages = list(dict.fromkeys(s for r in rows for s in r["stage_seconds"]))
    lines = [f"### Build stage by stage: {args.dataset}, {'with' if result['reranker'] else 'without'} the reranker, "
             f"{machine_line(result['machine'])}, {result['date']}", "",
             "| variant | wall s | peak RSS MB | " + " | ".join(f"{s} s" for s in stages)
             + " | epochs (best) | test NDCG@10 merged | reranked |",
             "|---" * (len(stages) + 6) + "|"]
    for r in rows:
        nd = r["test_ndcg@10"]
        cells = [f"{r['stage_seconds'].get(s, 0):.1f}" for s in stages]
        lines.append(f"| {r['variant']} | {r['wall_s']:.0f} | {r['peak_rss_mb']} | " + " | ".join(cells)
                     + f" | {r['epochs']} ({r['best_epoch']}) | {nd.get('merged', float('nan')):.4f} | "
                     + (f"{nd['reranked']:.4f} |" if "reranked" in nd else "– |"))
    if ref:
        lines += ["", "Reference (" + result["reference"] + "): " + ", ".join(f"{k} {v:.4f}" for k, v in ref.items())
                  + ". Commands: " + "; ".join(f"`{r['command']}`" for r in rows)]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.peers:
        run = [sys.executable, str(REPO / "benchmarks" / "run.py"), "--dataset", args.dataset, "--data-dir",
               args.data_dir, "--artifacts", str(artifact_folder(args.dataset, "defaults")),
               *(["--peer-lists", *args.peer_lists] if args.peer_lists else [])]
        subprocess.run(run, cwd=REPO, check=True)


if __name__ == "__main__":
    main()
