"""Which signals would rank a user's own items better than the ``reorder`` source's model does?

    python benchmarks/reorder_features.py --dataset instacart --data-dir ../shared/data
    python benchmarks/reorder_features.py --dataset instacart --data-dir ../shared/data --gbdt  # needs scikit-learn
    python benchmarks/reorder_features.py --dataset instacart --data-dir ../shared/data --artifacts artifacts/instacart

The ``reorder`` source (:mod:`recsys.reorder`) ranks the user's own items by gradient-boosted trees
(LightGBM) of repeat features, the request's time (the days since the user's last basket, since
their last basket holding the item, that over the item's mean interval, and the user's mean
interval) and every user's rates of buying the item and its catalogue group again in the next
basket, learnt on the history cut before each user's last baskets. Before the trees it was a
logistic model of the first two, the baseline (``lr``, first row) every row is compared with. This
script ranks the same items, on the dataset's own split, by either model with fewer or more inputs:

- ``− request time``: the repeat features alone (the build before the request's time was read);
- ``+ rates``: every user's rates of buying the item and its group again (the build's inputs);
- ``+ tifu``: the item's TIFU-KNN weight in the user's own vector and in their neighbours' mean
  (the ``tifu_knn`` peer's tuned settings from ``results/<dataset>.json``), recomputed at each cut;

and, with ``--more``, inputs tried and left out:

- ``+ basket place``: the item's place in the user's baskets (0 first added, 1 last: its mean and
  its newest) and its mean place over every user;
- ``+ repeat style``: the share of the user's baskets that was in the basket before and that was
  bought before at all (mean over their last 10), and their products with "in the last basket",
  ``decay_7`` and ``share``;
- ``+ last 10 baskets``: whether each of the user's last 10 baskets holds the item;
- ``+ aisle`` (a catalogue with an ``aisle`` column): the user's buys from the item's aisle (how
  recent, how often, the item's share of them, whether another product was bought there since);

by the build's trees (``trees``: :class:`~recsys.reorder.RepeatTrees`) on the same inputs, and, with
``--gbdt``, by scikit-learn's HistGradientBoostingClassifier (a probe, not a dependency). It also reports the headroom: the
share of test targets the user never bought, and the NDCG@10 of the own items in the best order.
With ``--artifacts`` (an artifact built on the same data with ``recsys build-index``) it also
reports what the user's *new* items could add: the artifact's own-item list (``reorder``) with its
last 10 - k places given to the fused list's best items the user never had, for one k for every
user and for the best k of each user (an oracle, which no model reaches), and how often the item at
each place of the own list and of the new items is in the held basket.
With ``--listwise`` it also fits the logistic model listwise: per user and cut, a softmax over the
user's items against the ones bought (ListNet's loss) instead of one logistic loss over every row.
Scores NDCG@10 of the own-item list on the validation and test stages, each variant against the
first row (the logistic model the build used before the trees) with a paired bootstrap interval. Writes ``results/reorder_features_<dataset>.json``
and ``.md`` (``_cuts<N>`` added with ``--cuts N`` other than the build's 8).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit

from recsys.artifacts import Artifact, machine_info
from recsys.baskets import basket_vectors, neighbour_mean, unit_rows, visit_ages
from recsys.catalog import item_groups
from recsys.datasets import dataset_spec, default_cleaning, load_dataset
from recsys.eval.metrics import ndcg_many, paired_bootstrap
from recsys.eval.protocols import make_task
from recsys.pipeline.evaluate import engine_lists, evaluation_engine
from recsys.prepare import prepare
from recsys.reorder import (
    FEATURES,
    HISTORY_FEATURES,
    RATE_FEATURES,
    RepeatModel,
    RepeatTrees,
    basket_rows,
    cuts,
    expand,
    next_rates,
    repeat_features,
)
from recsys.retrieval.personal import top_n_sparse

RESULTS = Path(__file__).resolve().parent / "results"
TIFU = ("tifu_own", "tifu_neighbours")
PLACE = ("place_mean", "place_newest", "item_place")
STYLE = ("user_from_previous", "user_bought_before", "last_x_previous", "decay_7_x_previous", "share_x_before")
LAST10 = tuple(f"in_basket_{a}" for a in range(10))
AISLE = ("aisle_since", "aisle_share", "item_over_aisle", "other_since", "aisle_decay_7", "aisle_products",
         "aisle_since_over_gap")


def place_features(f: pl.DataFrame, events: pl.DataFrame) -> np.ndarray:
    """:data:`PLACE` of each (user, item) row of ``f``: its place in its baskets of ``events`` (0 the
    first added, 1 the last; events ordered by time), the user's mean and newest, every user's mean."""
    e = (events.sort("user_idx", "_v", "timestamp", "item_idx").unique(["user_idx", "_v", "item_idx"], keep="first",
                                                                       maintain_order=True)
         .with_columns(pl.col("timestamp").rank("ordinal").over("user_idx", "_v").alias("_r"),
                       pl.len().over("user_idx", "_v").alias("_s"))
         .with_columns(((pl.col("_r") - 1) / pl.max_horizontal(pl.col("_s") - 1, 1)).alias("_p")))
    # each mean sums its values sorted: float sums that do not depend on polars' grouping (the trees split on them)
    mine = e.group_by("user_idx", "item_idx").agg(pl.col("_p").sort().mean().alias(PLACE[0]),
                                                  pl.col("_p").sort_by("_age").first().alias(PLACE[1]))
    every = e.group_by("item_idx").agg(pl.col("_p").sort().mean().alias(PLACE[2]))
    return (f.select("user_idx", "item_idx").join(mine.join(every, on="item_idx", how="left"), on=["user_idx", "item_idx"],
                                                  how="left", maintain_order="left").select(PLACE).fill_null(0.5).to_numpy())


def style_features(f: pl.DataFrame, before: pl.DataFrame) -> np.ndarray:
    """:data:`STYLE` of each row of ``f`` (repeat features) from the baskets ``before``."""
    b = before.select("user_idx", "item_idx", "_age").unique()
    previous = b.with_columns(pl.col("_age") - 1, pl.lit(1).alias("_in_previous"))
    first = b.group_by("user_idx", "item_idx").agg(pl.col("_age").max().alias("_first"))
    oldest = b.group_by("user_idx").agg(pl.col("_age").max().alias("_oldest"))
    x = (b.join(previous, on=["user_idx", "item_idx", "_age"], how="left").join(first, on=["user_idx", "item_idx"])
         .join(oldest, on="user_idx").with_columns(pl.col("_in_previous").fill_null(0),
                                                   (pl.col("_first") > pl.col("_age")).cast(pl.Int32).alias("_old"))
         .filter((pl.col("_age") < pl.col("_oldest")) & (pl.col("_age") < 10)))
    per = x.group_by("user_idx", "_age").agg(pl.col("_in_previous").mean().alias("a"), pl.col("_old").mean().alias("b"))
    user = per.group_by("user_idx").agg(pl.col("a").sort().mean().alias(STYLE[0]),  # sorted: as in place_features
                                        pl.col("b").sort().mean().alias(STYLE[1]))
    s = (f.select("user_idx", "since", "decay_7", "share").join(user, on="user_idx", how="left", maintain_order="left")
         .fill_null(0.5))
    last = (s["since"] == 0).cast(pl.Float64)
    return np.column_stack([s[STYLE[0]], s[STYLE[1]], last * s[STYLE[0]], s["decay_7"] * s[STYLE[0]],
                            s["share"] * s[STYLE[1]]])


def last10_features(f: pl.DataFrame, before: pl.DataFrame) -> np.ndarray:
    """:data:`LAST10` of each row of ``f``: 1 where the basket of that age in ``before`` holds the item."""
    out = np.zeros((f.height, len(LAST10)))
    held = before.filter(pl.col("_age") < len(LAST10)).select("user_idx", "item_idx", "_age").unique()
    rows = f.select("user_idx", "item_idx").with_row_index("_row").join(held, on=["user_idx", "item_idx"])
    out[rows["_row"].to_numpy(), rows["_age"].to_numpy()] = 1.0
    return out


def aisle_features(f: pl.DataFrame, before: pl.DataFrame, aisle: pl.DataFrame) -> np.ndarray:
    """:data:`AISLE` of each row of ``f`` (repeat features) from the baskets ``before``, ``aisle``
    mapping ``item_idx`` to a shelf code ``_g``: of the user's baskets holding anything from the
    item's aisle, the newest's age, their share, the item's baskets over theirs, the item's age less
    the aisle's (> 0: the user's newest buy there was another product), their decayed count (0.7),
    the user's products there, and the aisle's age over its mean gap."""
    aisle = aisle.with_columns(pl.col("item_idx").cast(before.schema["item_idx"]))
    b = before.join(aisle, on="item_idx", how="left").with_columns(pl.col("_g").fill_null(-1))
    per = (b.select("user_idx", "_g", "_age", "_n").unique().sort("user_idx", "_g", "_age")
           .group_by("user_idx", "_g", maintain_order=True)
           .agg(pl.len().alias("_b"), pl.col("_age").min().alias("_s"), pl.col("_age").max().alias("_f"),
                (0.7 ** pl.col("_age")).sum().alias("_d"), pl.col("_n").first().alias("_h")))
    products = b.select("user_idx", "_g", "item_idx").unique().group_by("user_idx", "_g").len("_p")
    a = (f.select("user_idx", "item_idx", "baskets", "since").join(aisle, on="item_idx", how="left", maintain_order="left")
         .with_columns(pl.col("_g").fill_null(-1)).join(per, on=["user_idx", "_g"], how="left", maintain_order="left")
         .join(products, on=["user_idx", "_g"], how="left", maintain_order="left"))
    gap = (a["_f"] - a["_s"]) / np.maximum(a["_b"] - 1, 1)
    return np.column_stack([a["_s"], a["_b"] / a["_h"], a["baskets"] / a["_b"], a["since"] - a["_s"], a["_d"], a["_p"],
                            a["_s"] / np.maximum(gap, 0.5)]).astype(np.float64)


def tifu_features(f: pl.DataFrame, events: pl.DataFrame, task, params: dict) -> np.ndarray:
    """:data:`TIFU` of each (user, item) row of ``f``: TIFU-KNN's vectors of ``events`` (session baskets)."""
    vec = basket_vectors(events, task.n_users, task.n_items, None, params["group_size"], 0.9, 0.7,
                         visit=pl.col("session_id")).tocsr()
    neigh = neighbour_mean(vec, vec, unit_rows(vec), params["n_neighbors"], self_rows=np.arange(task.n_users)).tocsr()
    u, i = f["user_idx"].to_numpy(), f["item_idx"].to_numpy()
    return np.column_stack([np.asarray(vec[u, i]).ravel(), np.asarray(neigh[u, i]).ravel()])


def stage_data(prepared, protocol: str, stage: str, params: dict, extra: bool = False,
               aisle: pl.DataFrame | None = None, max_back: int = 8) -> dict:
    """Training rows (every cut of the stage's history) and the rows to rank (the items before the
    held basket); ``extra``: with the ``--more`` inputs too (``aisle``: the items' shelves, if the
    catalogue has them; see :func:`aisle_features`); ``max_back``: cuts per user (the build's: 8).
    The rates are read, as the build reads them, from every user's baskets before the cut."""
    task = make_task(protocol, prepared.split, prepared.users, prepared.items, stage)
    rows = basket_rows(task.history)
    popularity = np.bincount(rows["item_idx"].to_numpy(), minlength=task.n_items).astype(np.float64)
    shelves = item_groups(prepared.catalog, prepared.items.ids)  # the build's catalogue groups
    events = task.history.filter(pl.col("session_id").is_not_null()).with_columns(pl.col("session_id").alias("_v"))
    events = events.join(visit_ages(events), on=["user_idx", "_v"])

    def inputs(before: pl.DataFrame, now: pl.DataFrame, history: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
        f = repeat_features(before, popularity, now)  # as the build's model reads them, at the request's time
        more = [place_features(f, history), style_features(f, before), last10_features(f, before)] if extra else []
        more += [aisle_features(f, before, aisle)] if extra and aisle is not None else []
        rates = next_rates(before, shelves, task.n_items)[0][f["item_idx"].to_numpy()]
        return f, np.hstack([f.select(FEATURES).to_numpy().astype(np.float64), rates,
                             tifu_features(f, history, task, params), *more])

    xs, ys, groups = [], [], []
    for back, (before, following) in enumerate(cuts(rows, max_back), start=1):
        now = following.group_by("user_idx").agg(pl.col("_day").min().alias("_now"))
        f, x = inputs(before, now, events.filter(pl.col("_age") >= back))
        bought = following.select("user_idx", "item_idx", pl.lit(1.0).alias("_y")).unique()
        xs.append(x)
        ys.append(f.join(bought, on=["user_idx", "item_idx"], how="left").sort("user_idx", "item_idx")["_y"]
                  .fill_null(0.0).to_numpy())
        groups.append(f["user_idx"].to_numpy().astype(np.int64) + back * task.n_users)  # one list per (cut, user)
    now = pl.DataFrame({"user_idx": task.users, "_now": task.request_times() / 86400.0})  # as the evaluation asks
    f, x = inputs(rows, now, events)
    return {"task": task, "x": np.vstack(xs), "y": np.concatenate(ys), "groups": np.concatenate(groups),
            "rank": f.select("user_idx", "item_idx"), "X": x}


def own_lists(rank: pl.DataFrame, score: np.ndarray, task, width: int = 10) -> np.ndarray:
    """Each test user's own items, best score first, as the ``reorder`` source ranks them
    (:func:`~recsys.retrieval.personal.top_n_sparse`: ties by the smaller index, -1 padded)."""
    m = sp.csr_matrix((score, (rank["user_idx"].to_numpy(), rank["item_idx"].to_numpy())),
                      shape=(task.n_users, task.n_items))
    return top_n_sparse(m[task.users], width)[0]


def own_then_new(own: list[int], new: list[int], width: int = 10) -> np.ndarray:
    """Row k (0 … ``width``): the first k ``own`` items, then the ``new`` ones, then (too few new
    items) the rest of the own ones; -1 padded to ``width``.

    >>> own_then_new([1, 2, 3], [7], 3).tolist()
    [[7, 1, 2], [1, 7, 2], [1, 2, 7], [1, 2, 3]]
    """
    rows = np.full((width + 1, width), -1, dtype=np.int64)
    for k in range(width + 1):
        row = (own[:k] + new)[:width]
        row += own[k:][:width - len(row)]
        rows[k, :len(row)] = row
    return rows


def blend_headroom(path: Path, fingerprint: str, width: int = 10) -> dict:
    """Test NDCG@``width`` of the artifact's own-item list (``reorder``) with its places from k on
    given to the fused list's items the user never had, for k = 0 … ``width``; and of each user's
    best k (the oracle). The artifact must hold the data of ``fingerprint``."""
    art = Artifact.open(path)
    if art.manifest["data"]["fingerprint"] != fingerprint:
        raise SystemExit(f"--artifacts {path}: built on other data than --dataset's; build it with "
                         "`recsys build-index --dataset NAME --data-dir DIR`")
    rec, task = evaluation_engine(art, 100, rerank=False)
    lists, _ = engine_lists(rec, task)
    seen = task.seen_matrix()[task.users]
    n = task.users.size
    rows, own_in_fused = [], np.zeros(n, dtype=np.int64)
    hits = np.zeros((2, width))  # of the own list's and the new items' place 1 … width, over the users with one there
    held = np.zeros((2, width))
    for u in range(n):
        had, wanted = set(seen[u].indices.tolist()), set(np.asarray(task.targets[u]).tolist())
        fused = [int(i) for i in lists["merged"][u] if i >= 0]
        own_in_fused[u] = sum(i in had for i in fused[:width])
        own, new = [int(i) for i in lists["reorder"][u] if i >= 0], [i for i in fused if i not in had]
        for side, items in enumerate((own[:width], new[:width])):
            held[side, :len(items)] += 1
            hits[side, :len(items)] += [i in wanted for i in items]
        rows.append(own_then_new(own, new, width))
    # one scoring call: row u * (width + 1) + k is user u's list with k own items
    per_k = ndcg_many(np.concatenate(rows), [t for t in task.targets for _ in range(width + 1)], width).reshape(n, width + 1).T
    mean = per_k.mean(axis=1)
    return {"artifact": str(path), "merged_ndcg@10": round(float(ndcg_many(lists["merged"], task.targets, width).mean()), 4),
            "own_items_in_fused_top10": round(float(own_in_fused.mean()), 2),
            "users_fused_top10_all_own": int((own_in_fused == width).sum()),
            "own_then_new_ndcg@10": [round(float(x), 4) for x in mean], "best_k": int(mean.argmax()),
            "oracle_k_ndcg@10": round(float(per_k.max(axis=0).mean()), 4),
            "own_hit_rate_by_place": [round(float(x), 4) for x in hits[0] / np.maximum(held[0], 1)],
            "new_hit_rate_by_place": [round(float(x), 4) for x in hits[1] / np.maximum(held[1], 1)]}


def listwise_scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray, X: np.ndarray, l2: float = 100.0) -> np.ndarray:
    """Scores of ``X`` by a linear model of the same inputs as :class:`RepeatModel`, fitted listwise:
    per list (one ``groups`` value: a user at a cut), the softmax of its scores against the bought
    items (ListNet's loss, equal weight on each bought item), mean over lists with an item bought
    and one not, + ``l2`` / 2 · |w|² / lists; L-BFGS."""
    z = expand(x)
    mean, scale = z.mean(axis=0), z.std(axis=0)
    scale[scale == 0] = 1.0
    _, g = np.unique(groups, return_inverse=True)
    bought = np.bincount(g, weights=y)
    keep = (bought[g] > 0) & (bought[g] < np.bincount(g)[g])
    order = np.argsort(g[keep], kind="stable")
    a, t, g = ((z[keep] - mean) / scale)[order], y[keep][order], np.unique(g[keep], return_inverse=True)[1][order]
    t = t / np.bincount(g, weights=t)[g]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    lists = starts.size

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = a @ w
        top = np.maximum.reduceat(s, starts)
        e = np.exp(s - top[g])
        total = np.add.reduceat(e, starts)
        value = (top + np.log(total)).sum() - (t * s).sum()
        return (value + 0.5 * l2 * w @ w) / lists, (a.T @ (e / total[g] - t) + l2 * w) / lists

    w = minimize(loss, np.zeros(a.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 500}).x
    return ((expand(X) - mean) / scale) @ w


def fit_predict(kind: str, names: tuple[str, ...], d: dict, cols: list[int]) -> np.ndarray:
    x, y, X = d["x"][:, cols], d["y"], d["X"][:, cols]
    if kind == "lr":
        return RepeatModel.fit(x, y, features=names).predict(X)
    if kind == "listwise":
        return expit(listwise_scores(x, y, d["groups"], X))  # positive, in the same order
    if kind == "trees":
        return RepeatTrees.fit(x, y, prior=0.0).predict(X)  # the build's settings; prior: no item is added
    from sklearn.ensemble import HistGradientBoostingClassifier  # the probe's optional dependency

    return HistGradientBoostingClassifier(learning_rate=0.05, max_iter=500, max_leaf_nodes=15,
                                          random_state=0).fit(x, y).predict_proba(X)[:, 1]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="instacart")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--gbdt", action="store_true", help="Also fit gradient-boosted trees (needs scikit-learn).")
    p.add_argument("--cuts", type=int, default=8,
                   help="Training cuts per user: before each of their last N baskets (default 8, the build's).")
    p.add_argument("--listwise", action="store_true",
                   help="Also fit the build's model listwise (a softmax over each user's items at each cut).")
    p.add_argument("--more", action="store_true",
                   help="Also the inputs tried and left out: basket place, repeat style, last 10 baskets, aisle.")
    p.add_argument("--artifacts", type=Path, default=None,
                   help="An artifact built on the same data: also what its new items could add (see above).")
    args = p.parse_args(argv)
    if args.cuts < 1:
        p.error(f"--cuts {args.cuts}: give at least 1 (the build uses 8)")
    t0 = time.perf_counter()
    ds = load_dataset(args.dataset, args.data_dir)
    protocol = dataset_spec(ds.name).holdout
    prepared = prepare(ds, default_cleaning(ds.name), holdout=protocol)
    peers = RESULTS / f"{ds.name}.json"
    tifu = json.loads(peers.read_text())["peers"].get("tifu_knn", {}).get("params", {}) if peers.exists() else {}
    params = {"group_size": tifu.get("group_size", 3), "n_neighbors": tifu.get("n_neighbors", 100)}
    aisle = None
    if "aisle" in prepared.catalog.columns:
        aisle = (pl.DataFrame({"item_id": [str(i) for i in prepared.items.ids]}).with_row_index("item_idx")
                 .join(prepared.catalog.select("item_id", "aisle"), on="item_id", how="left", maintain_order="left")
                 .select("item_idx", pl.col("aisle").rank("dense").alias("_g")))
    data = {s: stage_data(prepared, protocol, s, params, args.more, aisle, args.cuts) for s in ("valid", "test")}
    columns = FEATURES + RATE_FEATURES + TIFU + ((PLACE + STYLE + LAST10 + (AISLE if aisle is not None else ())) if args.more else ())
    sets = {"repeat features + request time": FEATURES, "− request time": HISTORY_FEATURES,
            "+ rates (the build's)": FEATURES + RATE_FEATURES, "+ tifu": FEATURES + TIFU}
    if args.more:
        sets.update({"+ basket place": FEATURES + PLACE, "+ repeat style": FEATURES + STYLE,
                     "+ last 10 baskets": FEATURES + LAST10})
        if aisle is not None:
            sets["+ aisle"] = FEATURES + AISLE
    variants = ([("lr", s) for s in sets] + [("trees", s) for s in sets]
                + ([("listwise", s) for s in sets] if args.listwise else [])
                + ([("gbdt", s) for s in sets] if args.gbdt else []))
    rows, base = [], None
    for kind, name in variants:
        cols, per = [columns.index(c) for c in sets[name]], {}
        for stage, d in data.items():
            score = fit_predict(kind, sets[name], d, cols)
            per[stage] = ndcg_many(own_lists(d["rank"], score, d["task"]), d["task"].targets, 10)
        base = per if base is None else base
        row = {"model": kind, "inputs": name, "valid_ndcg@10": round(float(per["valid"].mean()), 4),
               "test_ndcg@10": round(float(per["test"].mean()), 4)}
        if row["model"] != "lr" or name != next(iter(sets)):
            for stage in ("valid", "test"):
                b = paired_bootstrap(base[stage], per[stage])
                row[f"{stage}_minus_build"] = [round(b[k], 4) for k in ("diff", "low", "high")]
        rows.append(row)
        print(row, flush=True)
    task = data["test"]["task"]
    own = dict(data["test"]["rank"].group_by("user_idx").agg("item_idx").iter_rows())
    mine = [np.asarray(own.get(int(u), []), dtype=np.int64) for u in task.users]
    new = [np.isin(t, m, invert=True).mean() for t, m in zip(task.targets, mine)]
    # the best order puts the targets among the own items first
    best = np.stack([np.pad(np.intersect1d(t, m)[:10], (0, 10), constant_values=-1)[:10]
                     for t, m in zip(task.targets, mine)])
    result = {"dataset": ds.name, "protocol": protocol, "test_users": int(task.users.size), "tifu_params": params,
              "cuts": args.cuts,
              "new_target_share": round(float(np.mean(new)), 4),
              "own_items_best_order_ndcg@10": round(float(ndcg_many(best, task.targets, 10).mean()), 4),
              "rows": rows, "blend": blend_headroom(args.artifacts, prepared.fingerprint()) if args.artifacts else None,
              "seconds": round(time.perf_counter() - t0, 1), "machine": machine_info(), "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(exist_ok=True)
    name = f"reorder_features_{ds.name}" + ("" if args.cuts == 8 else f"_cuts{args.cuts}")
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"### The user's own items ranked with more signals: {ds.name}, {protocol} ({result['test_users']} test "
             f"users), {args.cuts} training cuts per user, {result['date']}", "", "| model | inputs | valid NDCG@10 | test NDCG@10 | valid − first row | "
             "test − first row (paired bootstrap, 95%) |", "|---|---|---|---|---|---|"]

    def interval(d: list | None) -> str:
        return f"{d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}]" if d else "–"

    for r in rows:
        lines.append(f"| {r['model']} | {r['inputs']} | {r['valid_ndcg@10']:.4f} | {r['test_ndcg@10']:.4f} | "
                     f"{interval(r.get('valid_minus_build'))} | {interval(r.get('test_minus_build'))} |")
    lines += ["", f"Headroom: {result['new_target_share']:.1%} of a test user's targets (mean over users) were never "
              f"bought before; the own items in the best order read {result['own_items_best_order_ndcg@10']:.4f}."]
    b = result["blend"]
    if b:
        lines += ["", f"New items ({b['artifact']}): k own items, then the fused list's best items the user never had. "
                  f"NDCG@10 for k = 0 … 10: {', '.join(f'{x:.4f}' for x in b['own_then_new_ndcg@10'])} (best k = "
                  f"{b['best_k']}); each user's best k (an oracle): {b['oracle_k_ndcg@10']:.4f}; the fused list: "
                  f"{b['merged_ndcg@10']:.4f}, with {b['own_items_in_fused_top10']} own items in its top 10 on average "
                  f"({b['users_fused_top10_all_own']} users: all 10).", "",
                  "Share of the item at each place 1 … 10 that the held basket holds: own list "
                  f"{', '.join(f'{x:.3f}' for x in b['own_hit_rate_by_place'])}; new items "
                  f"{', '.join(f'{x:.3f}' for x in b['new_hit_rate_by_place'])}."]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
