"""Does the reranker's text phase pay, and where? The reranker with and without it, on the test
users, the cold slice and the new-item slice.

    python benchmarks/rerank_text.py --artifacts artifacts/stages-rees46-defaults

The reranker is trained as ``recsys build-index`` trains it (:func:`recsys.pipeline.reranking.fit_reranker`
on the artifact's validation stage, default options), twice from the same start:

- **feature phase**: phase one alone (the heads on the retrieval features, ``epochs=0``);
- **text phase**: phase two's best epoch kept even where phase one ranked the early-stopping lists
  better (``keep_text``), so its worth is measured where the build would not keep it.

Both rerank the test stage's fused candidates as served (history: training + validation events;
models that never saw the test events; int8 on a CPU), and every list is scored by
NDCG@10 against all of the user's test targets over the full catalogue, as ``recsys evaluate``
scores ``merged`` and ``reranked``. Slices as in benchmarks/run.py: cold = every target with at
most 5 events in the history, new = every target without one (what ``add-items`` brings in).
Each difference has a paired bootstrap 95% interval. The last row is what the build's rules
would serve from these two: the text phase only where it beat the feature phase on the
early-stopping lists with an interval above zero, either served only where the build's rule
serves it (it learnt something, and the deciding lists do not show it behind the fused order). Writes ``results/rerank_text_<dataset>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from run import slice_users

RESULTS = Path(__file__).resolve().parent / "results"
SLICES = (("all", None), ("cold", 5), ("new", 0))
ROWS = ("fused order", "feature phase", "text phase")
DIFFS = (("feature phase", "fused order"), ("text phase", "fused order"), ("text phase", "feature phase"))


def per_list(ranked: np.ndarray, users: np.ndarray, targets: dict) -> np.ndarray:
    """NDCG@10 of each list's ranking (-1 pads) against its user's test targets."""
    from recsys.eval.metrics import ndcg_many

    return ndcg_many(ranked, [targets[int(u)] for u in users], 10)


def served_phase(fits: dict) -> str:
    """What the build's rules serve from the two fits: the text phase where its early-stopping lists
    beat the feature phase's with a paired interval above zero (:func:`recsys.rerank.train.text_earns`),
    else the feature phase; either only where the build's rule serves it
    (:func:`recsys.pipeline.reranking.reranker_decision`)."""
    from recsys.pipeline.reranking import reranker_helps

    interval = fits["text phase"]["text_phase"].get("interval")
    phase = "text phase" if interval and interval[0] > 0 else "feature phase"
    return phase if reranker_helps({"reranker": fits[phase]}) else "fused order"


def main(argv=None) -> dict:
    from recsys.artifacts import Artifact, package_versions
    from recsys.defaults import RERANK_DEPTH
    from recsys.eval.metrics import paired_bootstrap
    from recsys.eval.protocols import keeps_seen
    from recsys.pipeline import RerankOptions, artifact_stage, stage_engine, stage_lists
    from recsys.pipeline.reranking import fit_reranker
    from recsys.rerank.config import RerankTrainConfig
    from recsys.rerank.train import rerank_lists

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", required=True)
    p.add_argument("--epochs", type=int, default=RerankTrainConfig.epochs, help="Text-phase epochs (the build's default).")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    art = Artifact.open(args.artifacts)
    valid_stage, test_stage = artifact_stage(art, "valid"), artifact_stage(art, "test")
    seen = keeps_seen(valid_stage.protocol)
    test_rec = stage_engine(art, test_stage)
    task = test_stage.task(test_rec.users, test_rec.items)
    test = stage_lists(test_rec, test_stage, seen)
    targets = dict(zip(task.users.tolist(), task.targets))
    position = {int(u): i for i, u in enumerate(task.users)}
    rows = np.array([position[int(u)] for u in test.users])  # each list's row in the task
    masks = {name: np.ones(len(test), bool) if k is None else slice_users(task, k)[rows] for name, k in SLICES}

    valid_rec = stage_engine(art, valid_stage)
    fits, per_user = {}, {"fused order": per_list(test.items, test.users, targets)}
    for name, epochs in (("feature phase", 0), ("text phase", args.epochs)):
        opts = RerankOptions(train=RerankTrainConfig(epochs=epochs, keep_text=epochs > 0, seed=args.seed))
        reranker, fits[name] = fit_reranker(valid_rec, valid_stage, opts, include_seen=seen, progress=print)
        served = reranker.quantized() if reranker.cfg.int8_on_cpu else reranker
        per_user[name] = per_list(rerank_lists(served, test, test_rec.titles, RERANK_DEPTH), test.users, targets)
        print(name, round(float(per_user[name].mean()), 4), flush=True)
    choice = served_phase(fits)
    table = {}
    for sl, _ in SLICES:
        m = masks[sl]
        out = {"users": int(m.sum())}
        if m.any():
            out["ndcg@10"] = {r: round(float(per_user[r][m].mean()), 4) for r in ROWS}
            out["served"] = out["ndcg@10"][choice]
            out["diffs"] = {f"{a} - {b}": {k: round(v, 4) if isinstance(v, float) else v
                                           for k, v in paired_bootstrap(per_user[b][m], per_user[a][m]).items()}
                            for a, b in DIFFS}
        table[sl] = out
    name = art.manifest.get("data", {}).get("name") or Path(args.artifacts).name
    result = {"artifact": args.artifacts, "dataset": name, "include_seen": seen, "test_lists": len(test),
              "served": choice, "slices": table, "seed": args.seed, "text_epochs": args.epochs,
              "fits": {k: {x: v for x, v in f.items() if x != "heads"} for k, f in fits.items()},
              "seconds": round(time.perf_counter() - t0, 1), "packages": package_versions(),
              "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"rerank_text_{name}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    """The result as a Markdown table: NDCG@10 per slice, then each difference with its interval."""
    sl = result["slices"]
    head = " | ".join(f"{s} ({sl[s]['users']} users)" for s, _ in SLICES)
    lines = [f"### Reranker with and without its text phase, {result['dataset']} ({result['test_lists']} test lists), "
             f"{result['date']}", "", f"| ranking | {head} |", "|---|---|---|---|"]

    def cell(s: str, value) -> str:
        return "–" if "ndcg@10" not in sl[s] else value(sl[s])

    for r in ROWS:
        lines.append(f"| {r} | " + " | ".join(cell(s, lambda x, r=r: f"{x['ndcg@10'][r]:.4f}") for s, _ in SLICES) + " |")
    lines.append(f"| served by the build's rules ({result['served']}) | "
                 + " | ".join(cell(s, lambda x: f"{x['served']:.4f}") for s, _ in SLICES) + " |")
    for a, b in DIFFS:
        key = f"{a} - {b}"
        lines.append(f"| {key} | " + " | ".join(
            cell(s, lambda x, k=key: f"{x['diffs'][k]['diff']:+.4f} [{x['diffs'][k]['low']:+.4f}, "
                                     f"{x['diffs'][k]['high']:+.4f}]") for s, _ in SLICES) + " |")
    text = result["fits"]["text phase"]["history"]
    lines += ["", "NDCG@10 against every test target of the user, full catalogue; differences: paired bootstrap, 95%. "
              f"Early-stopping lists: feature phase {text[0]['valid_ndcg@10']}, text epochs "
              + ", ".join(str(h["valid_ndcg@10"]) for h in text[1:]) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
