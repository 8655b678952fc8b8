"""Cleaning rules, each reported with rows in and out and examples of what it removed.

Rules run in this order: missing ids, unparseable timestamps, exact duplicates, non-positive
prices or quantities, view bursts, bots, k-core. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import polars as pl

from .errors import ConfigError

log = logging.getLogger(__name__)
N_EXAMPLES = 3


@dataclass(frozen=True)
class CleaningConfig:
    """What cleaning does; ``None`` or 0 turns a rule off.

    - ``dedupe``: drop exact duplicate rows (all six contract columns equal).
    - ``burst_window_s``: a ``view`` of the same item by the same user within this many seconds of
      the previous such view is a refresh, not a new signal (default 60).
    - ``bot_max_per_minute``: users with more events than this in any 60-second window are bots
      (default 60, i.e. one a second for a whole minute).
    - ``drop_nonpositive``: drop rows whose price or quantity is <= 0 (cancellations, errors);
      never applied to ratings.
    - ``kcore_users`` / ``kcore_items``: keep only users / items with at least this many events,
      repeated until stable (0 = off).
    """

    dedupe: bool = True
    burst_window_s: float | None = 60.0
    bot_max_per_minute: int | None = 60
    drop_nonpositive: bool = True
    kcore_users: int = 0
    kcore_items: int = 0

    def __post_init__(self) -> None:
        if self.burst_window_s is not None and self.burst_window_s < 0:
            raise ConfigError(f"burst_window_s={self.burst_window_s}: must be >= 0 (or None to turn it off)")
        if self.bot_max_per_minute is not None and self.bot_max_per_minute < 1:
            raise ConfigError(f"bot_max_per_minute={self.bot_max_per_minute}: must be >= 1 (or None to turn it off)")
        if self.kcore_users < 0 or self.kcore_items < 0:
            raise ConfigError("kcore_users / kcore_items: must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CleaningReport:
    rows_in: int
    rows_out: int = 0
    rules: list[dict] = field(default_factory=list)

    def add(self, rule: str, before: pl.DataFrame, after: pl.DataFrame, removed: pl.DataFrame, note: str = "") -> None:
        examples = [
            {k: (None if v is None else str(v)) for k, v in row.items()}
            for row in removed.head(N_EXAMPLES).with_columns((pl.col("_row") + 1).alias("row")).drop("_row").to_dicts()
        ]
        self.rules.append(
            {"rule": rule, "rows_in": before.height, "rows_out": after.height,
             "removed": before.height - after.height, "note": note, "examples": examples}
        )
        if before.height != after.height:
            log.info("cleaning %s: removed %d of %d rows", rule, before.height - after.height, before.height)

    def to_dict(self) -> dict:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "rules": self.rules}

    def table(self) -> str:
        lines = [f"{'rule':<22}{'in':>10}{'removed':>10}{'out':>10}"]
        for r in self.rules:
            lines.append(f"{r['rule']:<22}{r['rows_in']:>10}{r['removed']:>10}{r['rows_out']:>10}")
        return "\n".join(lines)


def _step(report: CleaningReport, rule: str, df: pl.DataFrame, keep: pl.Expr | pl.Series, note: str = "") -> pl.DataFrame:
    mask = df.select(keep).to_series() if isinstance(keep, pl.Expr) else keep
    after, removed = df.filter(mask), df.filter(~mask)
    report.add(rule, df, after, removed, note)
    return after


def clean_events(
    events: pl.DataFrame, config: CleaningConfig | None = None, value_kind: str | None = None
) -> tuple[pl.DataFrame, CleaningReport]:
    """Apply the cleaning rules; returns the kept events (input order) and the report."""
    config = config or CleaningConfig()
    report = CleaningReport(rows_in=events.height)
    df = events.with_row_index("_row")

    df = _step(report, "missing_user_id", df, pl.col("user_id").is_not_null())
    df = _step(report, "missing_item_id", df, pl.col("item_id").is_not_null())
    df = _step(report, "missing_event", df, pl.col("event").is_not_null())
    df = _step(report, "bad_timestamp", df, pl.col("timestamp").is_not_null(),
               "missing or unparseable timestamp")
    if config.dedupe:
        cols = [c for c in df.columns if c != "_row"]
        df = _step(report, "exact_duplicates", df, pl.struct(cols).is_first_distinct())
    if config.drop_nonpositive and value_kind in ("price", "quantity"):
        df = _step(report, "nonpositive_value", df, pl.col("value").is_null() | (pl.col("value") > 0),
                   f"{value_kind} <= 0")
    if config.burst_window_s:
        df = _drop_view_bursts(report, df, config.burst_window_s)
    if config.bot_max_per_minute:
        df = _drop_bots(report, df, config.bot_max_per_minute)
    if config.kcore_users or config.kcore_items:
        df = _kcore(report, df, config.kcore_users, config.kcore_items)
    df = df.sort("_row").drop("_row")
    report.rows_out = df.height
    return df, report


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
                 f"repeat view of the same item within {window_s:g} s")


def _drop_bots(report: CleaningReport, df: pl.DataFrame, max_per_minute: int) -> pl.DataFrame:
    counts = (
        df.select("user_id", "timestamp").sort(["user_id", "timestamp"])
        .rolling(index_column="timestamp", period="60s", group_by="user_id")
        .agg(pl.len().alias("n"))
        .group_by("user_id").agg(pl.col("n").max())
    )
    bots = counts.filter(pl.col("n") > max_per_minute)["user_id"]
    return _step(report, "bots", df, ~pl.col("user_id").is_in(bots.implode()),
                 f"{bots.len()} users with more than {max_per_minute} events in a minute")


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
