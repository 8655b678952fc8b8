"""Reranker speed on this machine: pairs/s and the latency of reranking 100 candidates for one user.

    python benchmarks/rerank_speed.py                              # MiniLM-L6, untrained heads
    python benchmarks/rerank_speed.py --artifacts artifacts/bench-movielens-100k   # its trained reranker

Variants: fp32 and int8 (dynamic quantisation of the encoder's linear layers, one scale per
output channel), with all layers and with the first 3 only, at the config's token budgets and
at a few others; with ``--artifacts`` a last row times the reranker as ``query`` loads it (only that
row where the reranker was kept at its feature phase: it scores without the encoder). With ``--artifacts``
the pairs are real (the artifact's users, contexts and fused candidates) and each variant's
NDCG@10 on the test lists is compared with fp32's. Writes ``results/rerank_speed.json``
and ``.md`` (``rerank_speed_trained.*`` with ``--artifacts``).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from recsys import layout
from recsys.artifacts import machine_info, package_versions
from recsys.rerank.model import Reranker, RerankerConfig, truncate_layers

RESULTS = Path(__file__).resolve().parent / "results"
CONTEXT = ("bought: Organic Bananas | fresh fruits | produce; bought: Whole Milk | milk | dairy eggs; viewed: Sourdough "
           "Bread | bread | bakery; bought: Baby Spinach | packaged vegetables fruits | produce; carted: Greek Yogurt "
           "| yogurt | dairy eggs")


def variant(base: Reranker, layers: int, int8: bool, max_length: int, candidate_length: int,
            device: str = "cpu") -> Reranker:
    model = copy.deepcopy(base.model)
    if layers:
        truncate_layers(model.bert, layers)
    cfg = replace(base.cfg, max_length=max_length, candidate_length=candidate_length,
                  n_layers=layers or base.cfg.n_layers)
    model.cfg = cfg
    r = Reranker(model, base.tokenizer, device)
    return r.quantized() if int8 else r


def timing(r: Reranker, pairs: list, repeats: int) -> dict:
    r.predict(pairs[:8])  # warm-up
    lat = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r.predict(pairs, batch_size=128)
        lat.append(1000 * (time.perf_counter() - t0))
    lat = np.asarray(lat)
    return {"p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1),
            "pairs_per_s": round(len(pairs) / (np.median(lat) / 1000), 1)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU rows (bf16 autocast; no int8 there).")
    args = p.parse_args(argv)
    from recsys.device import resolve_device

    args.device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    valid = None
    if args.artifacts:
        from recsys.artifacts import Artifact

        art = Artifact.open(args.artifacts)
        base = Reranker.load(art.file(layout.RERANKER_CONFIG).parent, quantize=False)
        valid = _test_lists(art)
        pairs = [(valid[0].contexts[0], valid[1][i]) for i in valid[0].items[0][:100] if i >= 0]
    else:
        from recsys.retrieval.recommender import Recommender

        # all 6 layers: the fp32 starting point
        base = Reranker.from_pretrained(None, RerankerConfig(n_layers=0, features=Recommender.feature_names()))
        pairs = [(CONTEXT, f"Candidate product number {i} | aisle {i % 7} | department {i % 3}") for i in range(100)]
    rows = []
    own = (base.cfg.max_length, base.cfg.candidate_length)
    n_layers = len(base.model.bert.encoder.layer)
    grid = [(0, False, *own), (0, True, *own), (3, False, *own), (3, True, *own), (3, True, 64, 24), (3, True, 48, 24),
            (3, True, 48, 16)]
    if args.device != "cpu":  # int8 dynamic quantisation is a CPU kernel; on a GPU bf16 autocast does the work
        grid = [g for g in grid if not g[1]] + [(0, False, 64, 24)]
    if not base.model.reads_text:  # kept at its feature phase: every variant would score without the encoder
        grid = []
    done = set()
    for layers, int8, max_length, cand_length in grid:
        key = (min(layers or n_layers, n_layers), int8, max_length, cand_length)
        if key in done:
            continue  # the same variant as an earlier row
        done.add(key)
        r = variant(base, layers, int8, max_length, cand_length, args.device)
        row = {"layers": layers or len(base.model.bert.encoder.layer), "int8": int8, "max_length": max_length,
               "candidate_length": cand_length, **timing(r, pairs, args.repeats)}
        if valid is not None:
            from recsys.rerank.lists import list_ndcg
            from recsys.rerank.train import rerank_lists

            lists, titles = valid
            row["test_ndcg@10"] = round(list_ndcg(rerank_lists(r, lists, titles, 30), lists), 4)
        rows.append(row)
        print(row, flush=True)
    if args.artifacts:  # the reranker as `query`, `recommend` and `serve` load it
        served = Reranker.load(art.file(layout.RERANKER_CONFIG).parent, args.device)
        row = {"layers": f"{len(served.model.bert.encoder.layer)} (as served)", "int8": served.cfg.int8_on_cpu,
               "max_length": served.cfg.max_length, "candidate_length": served.cfg.candidate_length,
               **timing(served, pairs, args.repeats)}
        from recsys.rerank.lists import list_ndcg
        from recsys.rerank.train import rerank_lists

        row["test_ndcg@10"] = round(list_ndcg(rerank_lists(served, valid[0], valid[1], 30), valid[0]), 4)
        rows.append(row)
        print(row, flush=True)
    result = {"candidates": len(pairs), "artifact": args.artifacts, "threads": torch.get_num_threads(), "rows": rows,
              "device": args.device,
              "machine": machine_info(),
              "packages": package_versions(), "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = ("rerank_speed_trained" if args.artifacts else "rerank_speed") + ("" if args.device == "cpu" else "_gpu")
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    where = f"{torch.get_num_threads()} CPU threads" if args.device == "cpu" else torch.cuda.get_device_name()
    lines = [f"### Reranker speed, {len(pairs)} candidates for one user, {where}, "
             f"{result['date']}" + (f" ({args.artifacts})" if args.artifacts else " (MiniLM-L6, untrained heads)"), "",
             "| layers | int8 | context tokens | candidate tokens | p50 ms | p99 ms | pairs/s |"
             + (" test NDCG@10 |" if valid else ""),
             "|---|---|---|---|---|---|---|" + ("---|" if valid else "")]
    for r in rows:
        lines.append(f"| {r['layers']} | {'yes' if r['int8'] else 'no'} | {r['max_length']} | {r['candidate_length']} | "
                     f"{r['p50_ms']} | "
                     f"{r['p99_ms']} | {r['pairs_per_s']} |" + (f" {r['test_ndcg@10']} |" if valid else ""))
    if not base.model.reads_text:
        lines.append("\nThis reranker was kept at its feature phase (its heads' text columns are zero), so it scores "
                     "from the retrieval features without running the encoder, and the encoder variants are not "
                     "timed; time them without --artifacts, or on an artifact whose reranker kept its text phase.")
    if valid is not None:
        lines.append("\nNDCG@10 of the click labels on the first 300 test users' lists (top 30 candidates reranked), "
                     "so that every speed-up's cost in quality is read against fp32 on data no model saw.")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


def _test_lists(art):
    """The first 300 test-stage lists of the artifact (:func:`recsys.pipeline.artifact_lists`'s) and
    the item titles."""
    from recsys.pipeline import artifact_stage, stage_engine, stage_lists

    stage = artifact_stage(art, "test")
    rec = stage_engine(art, stage)
    include_seen = art.manifest["config"].get("holdout") == "last_basket"
    return stage_lists(rec, stage, include_seen, limit=300), rec.titles


if __name__ == "__main__":
    main()
