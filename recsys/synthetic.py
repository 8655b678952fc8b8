"""A seeded generator of shop data with a known answer.

Each user has a few strong hidden *needs* (sets of items from one category) and one *latent*
need. Past sessions mostly serve the strong needs; the latent one shows up only weakly (a few
views, no purchase). The user's final sessions — the future that splits hold out — buy from
the latent need. Items carry text drawn from their need's vocabulary, so a text encoder can
place never-seen items. Views lead to clicks, carts and purchases in that order.

With ``funnel=N`` the final sessions plant a shop's buying funnel instead: the user views N items
of the latent need, carts some of them, and buys one of the carted items — the better an item
converts (a hidden per-item appeal that also sets how often it is bought in past sessions), the
more often — or, with probability ``unseen_purchase``, an item of that need they never viewed.

Vectorised with numpy: 10 million events generate in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import polars as pl

from .errors import ConfigError
from .schema import EVENT_SCHEMA, Dataset, EventWeights

VOCAB: dict[str, list[str]] = {
    "coffee": ["espresso", "arabica", "roast", "beans", "grinder", "latte", "mug", "brew"],
    "running": ["shoes", "trail", "marathon", "socks", "jacket", "gps", "insoles", "shorts"],
    "baby": ["diapers", "wipes", "stroller", "bottle", "formula", "onesie", "pacifier", "crib"],
    "gaming": ["console", "controller", "headset", "keyboard", "mouse", "joystick", "monitor", "arcade"],
    "gardening": ["seeds", "soil", "hose", "pruner", "planter", "compost", "trowel", "rake"],
    "baking": ["flour", "yeast", "whisk", "mixer", "oven", "tray", "sugar", "vanilla"],
    "camping": ["tent", "sleeping", "lantern", "stove", "backpack", "compass", "hammock", "cooler"],
    "pets": ["kibble", "leash", "collar", "litter", "aquarium", "catnip", "treats", "kennel"],
    "skincare": ["serum", "moisturizer", "sunscreen", "cleanser", "toner", "retinol", "mask", "balm"],
    "photography": ["camera", "lens", "tripod", "flash", "filter", "shutter", "sensor", "gimbal"],
    "cycling": ["bike", "helmet", "pedals", "saddle", "chain", "tyre", "derailleur", "bell"],
    "tea": ["matcha", "oolong", "chamomile", "teapot", "kettle", "infuser", "earl", "sencha"],
    "yoga": ["mat", "block", "strap", "bolster", "leggings", "meditation", "cushion", "towel"],
    "fishing": ["rod", "reel", "lure", "bait", "hook", "tackle", "waders", "sinker"],
    "music": ["guitar", "strings", "piano", "drums", "amplifier", "metronome", "ukulele", "violin"],
    "reading": ["novel", "paperback", "bookmark", "ereader", "poetry", "thriller", "atlas", "memoir"],
}
BRAND_SYLLABLES = ["ka", "lo", "mi", "ze", "ru", "ta", "no", "vi", "sa", "pe", "do", "xu"]
# language="zh": Chinese titles (with an emoji here and there) for the first needs
VOCAB_ZH: dict[str, list[str]] = {
    "咖啡": ["浓缩咖啡", "阿拉比卡", "烘焙", "咖啡豆", "磨豆机", "拿铁", "马克杯", "手冲☕"],
    "跑步": ["跑鞋", "越野", "马拉松", "运动袜", "风衣", "手表", "鞋垫", "短裤🏃"],
    "母婴": ["纸尿裤", "湿巾", "婴儿车", "奶瓶", "奶粉", "连体衣", "安抚奶嘴", "婴儿床"],
    "游戏": ["游戏机", "手柄", "耳机", "机械键盘", "鼠标", "摇杆", "显示器", "街机🎮"],
    "园艺": ["种子", "营养土", "水管", "剪刀", "花盆", "堆肥", "铲子", "耙子🌱"],
    "烘焙": ["面粉", "酵母", "打蛋器", "搅拌机", "烤箱", "烤盘", "白砂糖", "香草精"],
    "露营": ["帐篷", "睡袋", "营地灯", "炉具", "背包", "指南针", "吊床", "冷藏箱⛺"],
    "宠物": ["狗粮", "牵引绳", "项圈", "猫砂", "鱼缸", "猫薄荷", "零食", "狗窝🐶"],
}
BRAND_SYLLABLES_ZH = ["华", "美", "小", "九", "苏", "格", "海", "联", "康", "佳", "乐", "星"]


@dataclass
class SyntheticData:
    """The generated dataset plus its hidden truth.

    ``users``: user_id, ``needs`` (strong, list), ``latent_need``; ``items``: item_id, ``need``,
    ``cold`` (True when the item appears only in the users' final sessions).
    """

    dataset: Dataset
    users: pl.DataFrame
    items: pl.DataFrame


def _positions(counts: np.ndarray) -> np.ndarray:
    """[2, 3] -> [0, 1, 0, 1, 2]: each element's position inside its group."""
    starts = np.cumsum(counts) - counts
    return np.arange(counts.sum()) - np.repeat(starts, counts)


def _ids(prefix: str, numbers: np.ndarray) -> pl.Series:
    return pl.select(pl.lit(prefix) + pl.Series(numbers).cast(pl.Utf8).str.zfill(5)).to_series()


def _need_names(n_needs: int, language: str = "en") -> list[str]:
    names = list(VOCAB_ZH if language == "zh" else VOCAB)[:n_needs]
    return names + [f"need{i}" for i in range(len(names), n_needs)]


def _vocab(name: str, rng: np.random.Generator) -> list[str]:
    if name in VOCAB or name in VOCAB_ZH:
        return VOCAB.get(name) or VOCAB_ZH[name]
    return ["".join(rng.choice(BRAND_SYLLABLES, 3)) for _ in range(8)]


def generate_synthetic(
    n_users: int = 500,
    n_items: int = 400,
    n_needs: int = 8,
    sessions_per_user: float = 8.0,
    views_per_session: float = 3.0,
    strong_needs: int = 2,
    latent_view_rate: float = 0.08,
    future_sessions: int = 2,
    cold_item_fraction: float = 0.0,
    p_click: float = 0.5,
    p_cart: float = 0.4,
    p_purchase: float = 0.6,
    zipf: float = 0.8,
    seed: int = 0,
    start: datetime = datetime(2024, 1, 1, tzinfo=timezone.utc),
    language: str = "en",
    funnel: int = 0,
    unseen_purchase: float = 0.1,
) -> SyntheticData:
    """Generate users, items and events (see the module docstring). Same seed, same data.

    ``language="zh"`` gives Chinese titles, categories and brands (for the first 8 needs).

    >>> d = generate_synthetic(n_users=20, n_items=40, n_needs=4, seed=1)
    >>> d.dataset.events.height > 0, d.users.height, d.items.height
    (True, 20, 40)
    """
    if n_needs < strong_needs + 1:
        raise ConfigError(f"n_needs={n_needs}: needs at least strong_needs + 1 = {strong_needs + 1}")
    if n_items < n_needs * 2:
        raise ConfigError(f"n_items={n_items}: needs at least 2 items per need ({n_needs * 2})")
    if language not in ("en", "zh"):
        raise ConfigError(f"language={language!r}: use 'en' or 'zh'")
    if not 0 <= cold_item_fraction < 1:
        raise ConfigError(f"cold_item_fraction={cold_item_fraction}: must be in [0, 1)")
    if funnel < 0 or not 0 <= unseen_purchase <= 1:
        raise ConfigError(f"funnel={funnel}, unseen_purchase={unseen_purchase}: give funnel ≥ 0 (0: off) and "
                          "unseen_purchase in [0, 1]")
    rng = np.random.default_rng(seed)
    names = _need_names(n_needs, language)

    # items: contiguous blocks per need; a permutation gives each need its own popularity order
    item_need = np.sort(np.arange(n_items) % n_needs)
    block_start = np.searchsorted(item_need, np.arange(n_needs))
    block_size = np.bincount(item_need, minlength=n_needs)
    cold = np.zeros(n_items, dtype=bool)
    n_cold = (block_size * cold_item_fraction).astype(int)
    for n in range(n_needs):  # the least popular ranks of each block are cold
        cold[block_start[n] + block_size[n] - n_cold[n]: block_start[n] + block_size[n]] = True
    vocab = {n: _vocab(names[n], rng) for n in range(n_needs)}
    syllables = BRAND_SYLLABLES_ZH if language == "zh" else BRAND_SYLLABLES
    brands = {n: ["".join(rng.choice(syllables, 2)).capitalize() for _ in range(3)] for n in range(n_needs)}
    words = np.array([vocab[n] for n in range(n_needs)])  # (n_needs, 8)
    w1 = rng.integers(0, 8, n_items)
    w2 = (w1 + rng.integers(1, 8, n_items)) % 8
    item_brand = np.array([brands[n] for n in range(n_needs)])[item_need, rng.integers(0, 3, n_items)]
    titles = pl.select(pl.concat_str([
        pl.Series(item_brand), pl.Series(words[item_need, w1]), pl.Series(words[item_need, w2]),
        pl.Series(np.arange(n_items)).cast(pl.Utf8)], separator=" ")).to_series()
    price = np.round(rng.lognormal(3.0, 0.7, n_items), 2)

    # users: strong needs drawn with a popularity skew, one latent need outside them
    need_pop = 1.0 / np.arange(1, n_needs + 1) ** 0.5
    need_pop /= need_pop.sum()
    keys = np.log(need_pop) + rng.gumbel(size=(n_users, n_needs))  # Gumbel top-k: sampling without replacement
    strong = np.argsort(-keys, axis=1)[:, :strong_needs]
    other = rng.random((n_users, n_needs))
    np.put_along_axis(other, strong, -1.0, axis=1)
    latent = other.argmax(axis=1)  # uniform among the needs that are not strong

    # sessions: past ones serve strong needs (latent with a small rate, views only); the last
    # `future_sessions` of each user buy from the latent need
    n_past = np.maximum(1, rng.poisson(sessions_per_user, n_users))
    n_sess = n_past + future_sessions
    s_user = np.repeat(np.arange(n_users), n_sess)
    s_pos = _positions(n_sess)
    s_future = s_pos >= np.repeat(n_past, n_sess)
    s_latent = s_future | (rng.random(s_user.size) < latent_view_rate)
    s_need = np.where(s_latent, latent[s_user], strong[s_user, rng.integers(strong_needs, size=s_user.size)])
    gaps = rng.exponential(2 * 86400, s_user.size) + 3600
    cum = np.cumsum(gaps)
    first = np.cumsum(n_sess) - n_sess
    s_start = cum - np.repeat(cum[first] - gaps[first], n_sess)  # per-user running sum
    s_start += rng.uniform(0, 30 * 86400, n_users)[s_user]

    # views within sessions, items by Zipf rank inside the session's need
    n_views = 1 + rng.poisson(views_per_session - 1, s_user.size)
    frng = np.random.default_rng([seed, 7])  # the funnel's own draws: without it, the data stay as they were
    appeal = frng.lognormal(0.0, 0.75, n_items) if funnel else np.ones(n_items)
    if funnel:
        n_views = np.where(s_future, funnel, n_views)
    v_sess = np.repeat(np.arange(s_user.size), n_views)
    v_pos = _positions(n_views)
    v_need = s_need[v_sess]
    v_future = s_future[v_sess]
    size = block_size[v_need] - np.where(v_future, 0, n_cold[v_need])  # warm ranks only in the past
    u01 = rng.random(v_sess.size)
    rank = np.minimum((size * u01 ** (1 + zipf * 2)).astype(np.int64), size - 1)
    v_item = block_start[v_need] + rank
    # a future session draws its first view from the cold tail when there is one
    first_future = v_future & (v_pos == 0) & (n_cold[v_need] > 0)
    v_item = np.where(first_future, block_start[v_need] + block_size[v_need] - 1
                      - rng.integers(0, np.maximum(n_cold[v_need], 1)), v_item)
    v_time = s_start[v_sess] + v_pos * 90
    weak = s_latent[v_sess] & ~v_future  # weak interest: views only
    click = (rng.random(v_sess.size) < p_click) & ~weak
    cart = click & (rng.random(v_sess.size) < p_cart)
    p_buy = np.minimum(1.0, p_purchase * appeal[v_item] / appeal.mean()) if funnel else p_purchase
    buy = cart & (rng.random(v_sess.size) < p_buy)
    last_view = np.r_[v_sess[1:] != v_sess[:-1], True]
    if funnel:  # future views are clicked, about half carted (the first one when none is), none bought yet
        first_view = np.r_[True, v_sess[1:] != v_sess[:-1]]
        carted = frng.random(v_sess.size) < 0.5
        none = np.bincount(v_sess, weights=carted & v_future, minlength=s_user.size) == 0
        carted |= first_view & none[v_sess]
        click, cart, buy = click | v_future, np.where(v_future, carted, cart), buy & ~v_future
    else:
        force = v_future & last_view  # every future session ends in a purchase
        click, cart, buy = click | force, cart | force, buy | force

    parts = []
    for code, mask, offset in ((0, np.ones_like(click), 0), (1, click, 10), (2, cart, 20), (3, buy, 30)):
        idx = np.flatnonzero(mask)
        parts.append((idx, np.full(idx.size, code), v_time[idx] + offset))
    idx = np.concatenate([p[0] for p in parts])
    code = np.concatenate([p[1] for p in parts])
    t = np.concatenate([p[2] for p in parts])
    e_sess, e_item = v_sess[idx], v_item[idx]
    if funnel:
        b_sess, b_item, b_time = _funnel_purchases(v_sess, v_item, v_time, v_future & cart, appeal, s_need,
                                                   block_start, block_size, unseen_purchase, frng)
        e_sess, e_item = np.r_[e_sess, b_sess], np.r_[e_item, b_item]
        code, t = np.r_[code, np.full(b_sess.size, 3)], np.r_[t, b_time]
    order = np.lexsort((code, t, s_user[e_sess]))
    e_sess, e_item, code, t = e_sess[order], e_item[order], code[order], t[order]
    event_names = np.array(["view", "click", "cart", "purchase"])
    base_ms = int(start.timestamp() * 1000)
    events = pl.DataFrame({
        "user_id": _ids("u", s_user[e_sess]),
        "item_id": _ids("i", e_item),
        "event": event_names[code],
        "timestamp": pl.Series(base_ms + (t * 1000).astype(np.int64)).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
        "session_id": _ids("s", e_sess),
        "value": price[e_item],
    }).select([pl.col(c).cast(tp) if c != "price" else pl.lit(None, tp).alias(c) for c, tp in EVENT_SCHEMA.items()])
    item_ids = _ids("i", np.arange(n_items)).to_list()
    catalog = pl.DataFrame({
        "item_id": item_ids, "title": titles, "category": [names[n] for n in item_need],
        "brand": pl.Series(item_brand), "price": price,
    })
    users = pl.DataFrame({
        "user_id": _ids("u", np.arange(n_users)),
        "needs": [[names[n] for n in row] for row in strong],
        "latent_need": [names[n] for n in latent],
    })
    items = pl.DataFrame({"item_id": item_ids, "need": [names[n] for n in item_need], "cold": cold})
    ds = Dataset("synthetic", events, catalog, ("title", "category", "brand"), EventWeights(), "price", {},
                 f"recsys synthetic generator (seed={seed})")
    return SyntheticData(ds, users, items)


def _funnel_purchases(v_sess, v_item, v_time, carted, appeal, s_need, block_start, block_size, unseen, rng):
    """One purchase per future session (those with a carted view): a carted item drawn in proportion
    to its appeal, or with probability ``unseen`` an item of the session's need not viewed in it;
    bought a minute after the session's last view. Returns (session, item, time) arrays."""
    key = np.where(carted, np.log(appeal[v_item]) + rng.gumbel(size=v_item.size), -np.inf)  # Gumbel-max
    order = np.lexsort((-key, v_sess))
    sess = v_sess[order]
    first = np.r_[True, sess[1:] != sess[:-1]]
    pick = order[first & np.isfinite(key[order])]
    b_sess, b_item = v_sess[pick], v_item[pick].copy()
    last_time = np.zeros(s_need.size)
    np.maximum.at(last_time, v_sess, v_time)
    for j in np.flatnonzero(rng.random(b_sess.size) < unseen):
        need = s_need[b_sess[j]]
        viewed = set(v_item[v_sess == b_sess[j]].tolist())
        fresh = [i for i in range(block_start[need], block_start[need] + block_size[need]) if i not in viewed]
        if fresh:
            b_item[j] = rng.choice(fresh)
    return b_sess, b_item, last_time[b_sess] + 60


NA_FORMS = ("NA", "N/A", "NaN", "null", "None", "", "  ")


def plant_dirt(data: SyntheticData, seed: int = 0, na_rows: int = 14, cancellations: int = 12,
               postage_orders: int = 30, free_rows: int = 9, placeholder_share: float = 0.1) -> tuple[SyntheticData, dict]:
    """The data with the dirt of a real shop export planted in it, and how much of each kind:

    - ``na_rows`` rows whose user id is a missing-value marker (each form of :data:`NA_FORMS` in turn),
      and as many whose item id is ``NULL``;
    - ``cancellations`` purchases cancelled by a second order whose id is the first's with a ``C`` in front;
    - a ``POST`` item ("POSTAGE") bought in ``postage_orders`` orders;
    - ``free_rows`` purchases at a price of 0;
    - a ``GUEST`` user holding ``placeholder_share`` of the events (copies of other users' purchases).
    """
    rng = np.random.default_rng(seed)
    ev = data.dataset.events.with_row_index("_r")
    buys = ev.filter(pl.col("event") == "purchase").unique(["user_id", "item_id"], keep="first", maintain_order=True)
    pick = buys.sample(cancellations + free_rows, seed=seed, shuffle=True)
    cancel, free = pick.head(cancellations), pick.tail(free_rows)
    cancelled = cancel.with_columns(("C" + pl.col("session_id")).alias("session_id"),
                                    (pl.col("timestamp") + pl.duration(hours=1)).alias("timestamp"))
    ev = ev.with_columns(pl.when(pl.col("_r").is_in(free["_r"].implode())).then(0.0).otherwise(pl.col("value"))
                         .alias("value"))
    orders = ev.filter(pl.col("session_id").is_not_null()).unique("session_id", keep="last", maintain_order=True)
    postage = orders.sample(postage_orders, seed=seed + 1).with_columns(
        pl.lit("POST").alias("item_id"), pl.lit("purchase").alias("event"), pl.lit(3.5).alias("value"),
        (pl.col("timestamp") + pl.duration(seconds=5)).alias("timestamp"))
    n_guest = int(placeholder_share * ev.height / (1 - placeholder_share))
    guest = (ev.filter((pl.col("event") == "purchase") & (pl.col("value") > 0)).sample(n_guest, seed=seed + 2, with_replacement=True)
             .with_columns(pl.lit("GUEST").alias("user_id"), pl.lit(None, pl.Utf8).alias("session_id"),
                           (pl.col("timestamp") + pl.duration(milliseconds=pl.int_range(pl.len()) * 977)).alias("timestamp")))
    rows = rng.choice(ev.height, 2 * na_rows, replace=False)
    markers = [NA_FORMS[k % len(NA_FORMS)] for k in range(na_rows)]
    users = ev["user_id"].to_list()
    items = ev["item_id"].to_list()
    for k, r in enumerate(rows[:na_rows]):
        users[r] = markers[k]
    for r in rows[na_rows:]:
        items[r] = "NULL"
    ev = ev.with_columns(pl.Series("user_id", users), pl.Series("item_id", items))
    events = pl.concat([ev, cancelled, postage, guest], how="vertical_relaxed").drop("_r")
    catalog = pl.concat([data.dataset.items, pl.DataFrame({"item_id": ["POST"], "title": ["POSTAGE"], "category": [""],
                                                           "brand": [""], "price": [3.5]})], how="vertical_relaxed")
    dataset = Dataset(data.dataset.name, events, catalog, data.dataset.text_fields, data.dataset.weights,
                      data.dataset.value_kind, data.dataset.sources, data.dataset.citation)
    truth = {"missing_user_id": na_rows, "missing_item_id": na_rows, "returns": cancellations,
             "non_products": postage_orders, "nonpositive_price": free_rows, "placeholder": "GUEST",
             "placeholder_events": n_guest}
    return SyntheticData(dataset, data.users, data.items), truth
