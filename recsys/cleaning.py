"""Cleaning rules, each reported with rows in and out and examples of what it removed or flagged.

Rules run in this order (each can be tuned or turned off in :class:`CleaningConfig`):

========================  ===================================================================  ==================
rule                      what it does                                                         default / option
========================  ===================================================================  ==================
missing_user_id,          ids that are empty, blank or a missing-value marker (NA, N/A,        on; ``--na-values``
missing_item_id           NaN, null, None, ...) are missing: the row is dropped
missing_event,            no event type; a missing or unparseable timestamp, or one before     on
bad_timestamp             1900 or after 2200
exact_duplicates          rows equal in every contract column: the first is kept               on
nonpositive_price         a price of 0 or below (free lines, adjustments, errors)              on
returns                   a quantity of 0 or below, or an order id marked as a cancellation:   dropped;
                          dropped, or kept as a negative signal that removes or lowers the     ``--cancelled-orders``,
                          matching purchases                                                   ``--returns negative``
non_products              items that look like fees or adjustments (id or text matching        text matches dropped;
                          postage, shipping, fee, charge, voucher, discount, ...), or that     ``--non-product-pattern``,
                          are in an implausibly large share of orders                          ``--keep-non-products``
view_bursts               a repeated view of the same item within the burst window             60 s; ``--burst-window``
bots                      users with more events in a minute than the limit                    60; ``--bot-max-per-minute``
suspicious_users          a user holding over 5% of all events (and over 10x an average       reported;
                          user's share): a placeholder such as "guest", or a bot               ``--max-user-share``,
                                                                                               ``--drop-suspicious-users``
kcore                     users / items with too few events, repeated until stable             off; ``--kcore-users``
========================  ===================================================================  ==================

Nothing is dropped silently; :meth:`CleaningReport.verdict` says what was removed or flagged.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import polars as pl

from .errors import ConfigError
from .retail import NA_VALUES, NON_PRODUCT_PATTERN, apply_returns, non_products, return_rows, suspicious_users

log = logging.getLogger(__name__)
N_EXAMPLES = 3
RETURNS = ("drop", "negative")


@dataclass(frozen=True)
class CleaningConfig:
    """What cleaning does; ``None`` or 0 turns a rule off (see the module doc for each rule).

    - ``na_values``: the texts that mean "missing" in an id column.
    - ``dedupe``: drop exact duplicate rows.
    - ``drop_nonpositive``: drop rows whose price is <= 0 (never applied to ratings).
    - ``cancelled_orders``: a glob over ``session_id`` (e.g. ``"C*"``) marking cancellation orders.
    - ``returns``: "drop" returns and cancellations, or "negative": remove or lower the matching purchases.
    - ``non_product_pattern``: a regular expression (case-insensitive) for fee and adjustment lines;
      ``non_product_order_share``: an item in more than this share of orders is flagged too;
      ``drop_non_products``: None drops the items whose id or text matches the pattern and reports
      the rest, True drops every flagged item, False only reports.
    - ``burst_window_s``: a ``view`` of the same item by the same user within this many seconds of
      the previous such view is a refresh, not a new signal.
    - ``bot_max_per_minute``: users with more events than this in any 60-second window are bots.
    - ``max_user_share``: a user holding more than this share of all events is suspicious;
      ``drop_suspicious_users`` drops them (default: report only).
    - ``kcore_users`` / ``kcore_items``: keep only users / items with at least this many events.
    """

    na_values: tuple[str, ...] = NA_VALUES
    dedupe: bool = True
    drop_nonpositive: bool = True
    cancelled_orders: str | None = None
    returns: str = "drop"
    non_product_pattern: str | None = NON_PRODUCT_PATTERN
    non_product_order_share: float | None = 0.25
    drop_non_products: bool | None = None
    burst_window_s: float | None = 60.0
    bot_max_per_minute: int | None = 60
    max_user_share: float | None = 0.05
    drop_suspicious_users: bool = False
    kcore_users: int = 0
    kcore_items: int = 0

    def __post_init__(self) -> None:
        if self.burst_window_s is not None and self.burst_window_s < 0:
            raise ConfigError(f"burst_window_s={self.burst_window_s}: must be >= 0 (or None to turn it off)")
        if self.bot_max_per_minute is not None and self.bot_max_per_minute < 1:
            raise ConfigError(f"bot_max_per_minute={self.bot_max_per_minute}: must be >= 1 (or None to turn it off)")
        if self.kcore_users < 0 or self.kcore_items < 0:
            raise ConfigError("kcore_users / kcore_items: must be >= 0")
        if self.returns not in RETURNS:
            raise ConfigError(f"--returns {self.returns!r}: use one of {', '.join(RETURNS)}")
        for name in ("max_user_share", "non_product_order_share"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise ConfigError(f"{name}={value}: give a share in (0, 1] (or None to turn it off)")
        object.__setattr__(self, "na_values", tuple(self.na_values))

    def to_dict(self) -> dict:
        return {**asdict(self), "na_values": list(self.na_values)}


@dataclass
class CleaningReport:
    rows_in: int
    rows_out: int = 0
    rules: list[dict] = field(default_factory=list)
    dropped_items: list[str] = field(default_factory=list)  # items removed from the catalogue too (non-products)

    def add(self, rule: str, before: pl.DataFrame, after: pl.DataFrame, removed: pl.DataFrame, note: str = "",
            **extra) -> None:
        examples = [
            {k: (None if v is None else str(v)) for k, v in row.items()}
            for row in removed.head(N_EXAMPLES).with_columns((pl.col("_row") + 1).alias("row")).drop("_row").to_dicts()
        ]
        self.rules.append({"rule": rule, "rows_in": before.height, "rows_out": after.height,
                           "removed": before.height - after.height, "note": note, "examples": examples, **extra})
        if before.height != after.height:
            log.info("cleaning %s: removed %d of %d rows", rule, before.height - after.height, before.height)

    def to_dict(self) -> dict:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "rules": self.rules,
                "dropped_items": self.dropped_items}

    def table(self) -> str:
        lines = [f"{'rule':<22}{'in':>10}{'removed':>10}{'out':>10}"]
        for r in self.rules:
            flag = f"  ({len(r['flagged'])} flagged)" if r.get("flagged") else ""
            lines.append(f"{r['rule']:<22}{r['rows_in']:>10}{r['removed']:>10}{r['rows_out']:>10}{flag}")
        return "\n".join(lines)

    def verdict(self) -> str:
        """"OK" when nothing was removed or flagged; else one paragraph on what was and what to change."""
        removed = [r for r in self.rules if r["removed"]]
        flagged = [r for r in self.rules if r.get("flagged")]
        if not removed and not flagged:
            return "OK: the data meets the contract; no rule removed or flagged anything."
        parts = [f"{r['removed']:,} rows by {r['rule']}" + (f" ({r['note']})" if r["note"] else "") for r in removed]
        text = (f"Cleaned: {self.rows_in - self.rows_out:,} of {self.rows_in:,} rows removed "
                f"({100 * (self.rows_in - self.rows_out) / max(self.rows_in, 1):.1f}%): " + "; ".join(parts) + ".")
        for r in flagged:
            text += f" Flagged by {r['rule']}, kept: {', '.join(map(str, r['flagged'][:5]))}" + (
                " ..." if len(r["flagged"]) > 5 else "") + f" ({r['advice']})."
        tips = [r["advice"] for r in removed if r.get("advice")]
        if tips:
            text += " To change this: " + "; ".join(dict.fromkeys(tips)) + "."
        return text


def _step(report: CleaningReport, rule: str, df: pl.DataFrame, keep: pl.Expr | pl.Series, note: str = "",
          **extra) -> pl.DataFrame:
    mask = df.select(keep).to_series() if isinstance(keep, pl.Expr) else keep
    after, removed = df.filter(mask), df.filter(~mask)
    report.add(rule, df, after, removed, note, **extra)
    return after


def _present(column: str, na_values: tuple[str, ...]) -> pl.Expr:
    text = pl.col(column).str.strip_chars()
    return pl.col(column).is_not_null() & (text != "") & ~text.is_in(list(na_values))


def clean_events(
    events: pl.DataFrame, config: CleaningConfig | None = None, value_kind: str | None = None,
    texts: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, CleaningReport]:
    """Apply the cleaning rules; returns the kept events (input order) and the report.

    ``texts`` (``item_id``, ``text``): the catalogue's item texts, for the non-product rule.
    """
    config = config or CleaningConfig()
    report = CleaningReport(rows_in=events.height)
    df = events.with_row_index("_row")
    na = config.na_values
    df = _step(report, "missing_user_id", df, _present("user_id", na), "empty, or a missing-value marker",
               advice="map the user column with --map user_id=COLUMN, or --na-values to change the markers")
    df = _step(report, "missing_item_id", df, _present("item_id", na), "empty, or a missing-value marker",
               advice="map the item column with --map item_id=COLUMN")
    if "session_id" in df.columns:  # a marker in the optional session column just means "no session"
        df = df.with_columns(pl.when(_present("session_id", na)).then(pl.col("session_id")).alias("session_id"))
    df = _step(report, "missing_event", df, pl.col("event").is_not_null())
    df = _step(report, "bad_timestamp", df, pl.col("timestamp").is_not_null(),
               "missing, unparseable or outside 1900-2200 timestamp",
               advice="map the time column with --map timestamp=COLUMN (and --timestamp-unit s|ms)")
    if config.dedupe:
        cols = [c for c in df.columns if c != "_row"]
        df = _step(report, "exact_duplicates", df, pl.struct(cols).is_first_distinct())
    if config.drop_nonpositive:
        bad = pl.lit(False)
        if value_kind == "price":
            bad = bad | (pl.col("value") <= 0).fill_null(False)
        if "price" in df.columns:
            bad = bad | (pl.col("price") <= 0).fill_null(False)
        df = _step(report, "nonpositive_price", df, ~bad, "price <= 0",
                   advice="rows with a price of 0 or below are free lines or adjustments")
    if value_kind == "quantity" or config.cancelled_orders:
        df = _returns(report, df, config, value_kind)
    if texts is not None and (config.non_product_pattern or config.non_product_order_share):
        df = _non_products(report, df, config, texts)
    if config.burst_window_s:
        df = _drop_view_bursts(report, df, config.burst_window_s)
    if config.bot_max_per_minute:
        df = _drop_bots(report, df, config.bot_max_per_minute)
    if config.max_user_share:
        users = suspicious_users(df, config.max_user_share)
        keep = ~pl.col("user_id").is_in(pl.Series(users, dtype=pl.Utf8).implode()) if config.drop_suspicious_users \
            else pl.lit(True)
        df = _step(report, "suspicious_users", df, keep,
                   f"users with over {config.max_user_share:.0%} of all events", flagged=users, flags="users",
                   advice="a placeholder account (guest, NA) or a bot: drop them with --drop-suspicious-users, or "
                          "map the real user column")
    if config.kcore_users or config.kcore_items:
        df = _kcore(report, df, config.kcore_users, config.kcore_items)
    df = df.sort("_row").drop("_row")
    report.rows_out = df.height
    return df, report


def _returns(report: CleaningReport, df: pl.DataFrame, config: CleaningConfig, value_kind: str | None) -> pl.DataFrame:
    mask = return_rows(df, value_kind, config.cancelled_orders)
    note = "quantity <= 0" if value_kind == "quantity" else ""
    if config.cancelled_orders:
        note += (" or " if note else "") + f"order id matching {config.cancelled_orders!r}"
    if config.returns == "drop":
        return _step(report, "returns", df, ~mask, note,
                     advice="returns are dropped; --returns negative takes them off the purchases they return")
    kept, effect = apply_returns(df, mask, value_kind)
    report.add("returns", df, kept, df.join(kept.select("_row"), on="_row", how="anti"),
               f"{note}; as a negative signal: {effect['purchases_removed']} purchases removed, "
               f"{effect['purchases_lowered']} lowered, {effect['unmatched']} returns with no purchase", **effect)
    return kept


def _non_products(report: CleaningReport, df: pl.DataFrame, config: CleaningConfig, texts: pl.DataFrame) -> pl.DataFrame:
    sure, maybe, by_share = non_products(df, texts, config.non_product_pattern, config.non_product_order_share)
    every = sure + maybe + by_share
    drop = every if config.drop_non_products else sure if config.drop_non_products is None else []
    flagged = [i for i in every if i not in drop]
    report.dropped_items += drop
    return _step(report, "non_products", df, ~pl.col("item_id").is_in(pl.Series(drop, dtype=pl.Utf8).implode()),
                 "fees, postage, adjustments" + (f"; {len(by_share)} in over {config.non_product_order_share:.0%} "
                                                 "of orders" if by_share else ""),
                 flagged=flagged, flags="items", items=drop,
                 advice="change what counts with --non-product-pattern, or keep them with --keep-non-products")


def _drop_view_bursts(report: CleaningReport, df: pl.DataFrame, window_s: float) -> pl.DataFrame:
    window_ms = int(window_s * 1000)
    views = (
        df.filter(pl.col("event") == "view")
        .sort(["user_id", "item_id", "timestamp", "_row"])
        .with_columns(
            (pl.col("timestamp").dt.epoch("ms") - pl.col("timestamp").dt.epoch("ms").shift(1))
            .over(["user_id", "item_id"]).alias("_gap")
        )
    )
    burst_rows = views.filter(pl.col("_gap").is_not_null() & (pl.col("_gap") < window_ms))["_row"]
    return _step(report, "view_bursts", df, ~pl.col("_row").is_in(burst_rows.implode()),
                 f"repeat view of the same item within {window_s:g} s",
                 advice="page refreshes are collapsed; --burst-window 0 keeps every view")


def _drop_bots(report: CleaningReport, df: pl.DataFrame, max_per_minute: int) -> pl.DataFrame:
    counts = (
        df.select("user_id", "timestamp").sort(["user_id", "timestamp"])
        .rolling(index_column="timestamp", period="60s", group_by="user_id")
        .agg(pl.len().alias("n"))
        .group_by("user_id").agg(pl.col("n").max())
    )
    bots = counts.filter(pl.col("n") > max_per_minute)["user_id"]
    return _step(report, "bots", df, ~pl.col("user_id").is_in(bots.implode()),
                 f"{bots.len()} users with more than {max_per_minute} events in a minute",
                 advice="raise --bot-max-per-minute (or 0 to turn the rule off) for data entered in bulk")


def _kcore(report: CleaningReport, df: pl.DataFrame, k_users: int, k_items: int) -> pl.DataFrame:
    before = df
    while True:
        n = df.height
        if k_users:
            df = df.filter(pl.len().over("user_id") >= k_users)
        if k_items:
            df = df.filter(pl.len().over("item_id") >= k_items)
        if df.height == n:
            break
    removed = before.join(df.select("_row"), on="_row", how="anti")
    report.add("kcore", before, df, removed, f"users >= {k_users}, items >= {k_items} events")
    return df
