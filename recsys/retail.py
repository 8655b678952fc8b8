"""The dirt of real shop exports, found: missing-value markers, returns and cancellations, fee and
adjustment lines, placeholder accounts. The rules themselves run in :mod:`recsys.cleaning`.
"""

from __future__ import annotations

import re

import polars as pl

# texts that mean "missing" in an id column (R writes NA, pandas NaN, databases NULL, spreadsheets #N/A)
NA_VALUES: tuple[str, ...] = ("NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "Null", "None", "none", "#N/A", "nil")
# words of lines that are not products, matched case-insensitively against an item's id and title
NON_PRODUCT_PATTERN = (r"\b(postage|shipping|delivery|fees?|charges?|manual|adjustments?|vouchers?|"
                       r"gift ?cards?|discounts?)\b")
# "manual" names a product too (a manual toothbrush): alone, or as "manual adjustment", it is a line of its own
WEAK_ALONE = r"^(manual)( adjustments?)?$"
MAX_TITLE_WORDS = 4  # a fee line is named in a few words; a longer title naming a fee is a product's


def glob_regex(pattern: str) -> str:
    """A shell-style pattern (``*``, ``?``) as an anchored regular expression.

    >>> glob_regex("C*"), bool(re.match(glob_regex("C*"), "C536379")), bool(re.match(glob_regex("C*"), "536379C"))
    ('^C.*$', True, False)
    """
    return "^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$"


def return_rows(df: pl.DataFrame, value_kind: str | None, cancelled_orders: str | None) -> pl.Series:
    """True for returns: a quantity of 0 or below, or an order id (``session_id``) matching ``cancelled_orders``."""
    mask = pl.lit(False)
    if value_kind == "quantity":
        mask = mask | (pl.col("value") <= 0).fill_null(False)
    if cancelled_orders:
        mask = mask | pl.col("session_id").str.contains(glob_regex(cancelled_orders)).fill_null(False)
    return df.select(mask.alias("_return")).to_series()


def apply_returns(df: pl.DataFrame, mask: pl.Series, value_kind: str | None) -> tuple[pl.DataFrame, dict]:
    """Returns as a negative signal: each (user, item)'s returned amount (the quantity, else one per
    return row) is taken off that user's purchases of the item, latest first: a purchase wholly
    returned is removed, one partly returned keeps the rest of its quantity. The return rows go.

    >>> import datetime as dt
    >>> t = [dt.datetime(2024, 1, d, tzinfo=dt.timezone.utc) for d in (1, 2, 3, 4)]
    >>> df = pl.DataFrame({"_row": [0, 1, 2, 3], "user_id": ["u"] * 4, "item_id": ["a", "a", "a", "b"],
    ...                    "event": ["purchase"] * 4, "timestamp": t, "value": [2.0, 3.0, -4.0, -1.0]})
    >>> kept, effect = apply_returns(df, return_rows(df, "quantity", None), "quantity")
    >>> kept["value"].to_list(), effect   # 4 returned of a: the latest 3 go, then 1 of the earlier 2
    ([1.0], {'purchases_removed': 1, 'purchases_lowered': 1, 'unmatched': 1})
    """
    quantity = value_kind == "quantity"
    amount = (pl.col("value").abs() if quantity else pl.lit(1.0)).fill_null(1.0)
    returned = df.filter(mask).group_by("user_id", "item_id").agg(amount.sum().alias("_returned"))
    rest = df.filter(~mask)
    has_purchase = (rest["event"] == "purchase").any()
    bought = rest.filter(pl.col("event") == "purchase") if has_purchase else rest
    q = (pl.when(pl.col("value") > 0).then(pl.col("value")).otherwise(1.0) if quantity else pl.lit(1.0))
    matched = (bought.join(returned, on=["user_id", "item_id"], how="inner")
               .sort("timestamp", "_row", descending=True)
               .with_columns(q.fill_null(1.0).alias("_q"))
               .with_columns(pl.col("_q").cum_sum().over("user_id", "item_id").alias("_cum"))
               .with_columns((pl.col("_cum") - pl.col("_q")).alias("_prev")))
    gone = matched.filter(pl.col("_cum") <= pl.col("_returned"))
    lowered = matched.filter((pl.col("_prev") < pl.col("_returned")) & (pl.col("_cum") > pl.col("_returned")))
    kept = rest.join(gone.select("_row"), on="_row", how="anti")
    if quantity and lowered.height:
        new = lowered.select("_row", (pl.col("_cum") - pl.col("_returned")).alias("_new"))
        kept = (kept.join(new, on="_row", how="left")
                .with_columns(pl.coalesce("_new", "value").alias("value")).drop("_new"))
    unmatched = returned.join(bought.select("user_id", "item_id").unique(), on=["user_id", "item_id"], how="anti")
    return kept, {"purchases_removed": gone.height, "purchases_lowered": lowered.height if quantity else 0,
                  "unmatched": unmatched.height}


def _title_words(col: str) -> pl.Expr:
    """The item's title (the text's first field), lower-cased, without numbers, prices and punctuation;
    hyphenated and apostrophised words run together ("sugar-free" is one word, "fee" is not in it)."""
    return (pl.col(col).str.split(" | ").list.first().fill_null("").str.to_lowercase().str.replace_all(r"['’-]", "")
            .str.replace_all(r"[^\p{L}\s]+", " ").str.replace_all(r"\s+", " ").str.strip_chars())


def non_products(df: pl.DataFrame, texts: pl.DataFrame, pattern: str | None,
                 share: float | None, min_orders: int = 20) -> tuple[list[str], list[str], list[str]]:
    """Items of ``df`` that look like fee or adjustment lines: (unambiguous ones: the id or a title of
    at most 4 words names a fee, or the title is just "manual"; ones whose longer title merely
    mentions such a word; others in more than ``share`` of the orders). ``texts``: ``item_id``, ``text``.

    >>> df = pl.DataFrame({"item_id": ["POST", "22", "T", "M"], "session_id": ["o1", "o1", "o2", "o3"]})
    >>> texts = pl.DataFrame({"item_id": ["POST", "22", "T", "M"], "text": ["POSTAGE", "Pink mug", "Manual toothbrush",
    ...                                                                      "Manual"]})
    >>> non_products(df, texts, NON_PRODUCT_PATTERN, None)
    (['M', 'POST'], ['T'], [])
    """
    present = df.select("item_id").unique()
    sure: list[str] = []
    maybe: list[str] = []
    if pattern:
        rx = f"(?i){pattern}"
        t = present.join(texts.select("item_id", "text"), on="item_id", how="left").with_columns(
            _title_words("text").alias("_title"))
        named = pl.col("_title").str.contains(rx)
        short = pl.col("_title").str.count_matches(r"\S+") <= MAX_TITLE_WORDS
        weak_only = ~pl.col("_title").str.replace_all(r"(?i)\bmanual\b", "").str.contains(rx)
        clear = (pl.col("item_id").str.contains(rx) | (named & short & ~weak_only)
                 | pl.col("_title").str.contains(WEAK_ALONE))
        sure = sorted(t.filter(clear)["item_id"].to_list())
        maybe = sorted(t.filter(named & ~clear)["item_id"].to_list())
    by_share: list[str] = []
    orders = df["session_id"].drop_nulls().n_unique() if "session_id" in df.columns else 0
    if share and orders >= min_orders:
        per_item = (df.filter(pl.col("session_id").is_not_null()).group_by("item_id")
                    .agg(pl.col("session_id").n_unique().alias("_orders")))
        common = per_item.filter(pl.col("_orders") > share * orders)["item_id"].to_list()
        by_share = sorted(i for i in common if i not in sure and i not in maybe)
    return sure, maybe, by_share


def suspicious_users(df: pl.DataFrame, max_share: float, times_average: float = 10.0) -> list[str]:
    """Users holding more than ``max_share`` of all events and more than ``times_average`` times an
    average user's share (so that a dataset of a handful of users flags nobody).

    >>> df = pl.DataFrame({"user_id": ["guest"] * 30 + [f"u{k}" for k in range(70)]})
    >>> suspicious_users(df, 0.05)
    ['guest']
    """
    if df.height == 0:
        return []
    counts = df.group_by("user_id").len()
    share = counts["len"] / df.height
    limit = max(max_share, times_average / counts.height)
    return sorted(counts.filter(share > limit)["user_id"].to_list())
