"""The re-engagement source: items the user viewed, carted or favoured and has not bought yet,
scored by how recent, strong and repeated that interest is (:func:`~recsys.engagement.engagement_scores`)
times how often the item's interest turns into a purchase (:func:`~recsys.engagement.conversion_rates`).

On a shop's event log most purchases are of items the user looked at shortly before; this source
ranks those. It proposes only the user's own items, so it runs only where seen items are served.
The conversion rates are learnt from the stored history (every user's events).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.engagement import UNITS, conversion_rates, engagement_scores
from recsys.errors import ConfigError
from recsys.sources import Batch, CandidateSource, FitInfo, Space, item_lists

from ..personal import top_n_sparse

RATES = "conversion_rates.npy"


@dataclass(frozen=True)
class ReengageConfig:
    """``decay``: the weight an interest keeps per visit of age; ``step_decay``: per item the user
    turned to since (within a visit, the items looked at last count most); ``prior``: how many
    buyers' worth of the catalogue's overall conversion an item's own rate starts from
    (``prior_unit="users"``: how many users' worth, the rule of artifacts built before 2026-12-03,
    whose saved config reads ``prior`` 20 users); ``purchase``: the buying event."""

    decay: float = 0.8
    step_decay: float = 0.7
    prior: float = 3.0
    purchase: str = "purchase"
    prior_unit: str = "buyers"

    def __post_init__(self) -> None:
        if not (0.0 < self.decay <= 1.0 and 0.0 < self.step_decay <= 1.0) or self.prior < 0:
            raise ConfigError(f"reengage decay={self.decay}, step_decay={self.step_decay}, prior={self.prior}: give "
                              "decay and step_decay in (0, 1] and prior ≥ 0")
        if self.prior_unit not in UNITS:
            raise ConfigError(f"reengage prior_unit={self.prior_unit!r}: give {' or '.join(map(repr, UNITS))}")


class ReengageSource(CandidateSource):
    name = "reengage"
    fusion_grid = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    seen_only = True
    learns = True
    must_earn = True
    Config = ReengageConfig

    def __init__(self, space: Space, config: ReengageConfig | None = None, device: str | None = None):
        super().__init__(space, config or ReengageConfig(), device)
        self.rates = np.ones(space.n_items, dtype=np.float32)

    def fit(self, events: pl.DataFrame, parts: tuple[str, ...] = ()) -> ReengageSource:
        self.rates = conversion_rates(events, self.space.n_items, self.config.purchase, self.config.prior,
                                      self.config.prior_unit)
        self.fit_info = FitInfo(tuple(parts), events.height)
        return self

    def candidates(self, batch: Batch, n: int, include_seen: bool, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        c, s = self.config, self.space
        interest = batch.history.view("engagement", lambda h: engagement_scores(h.events, h.n_rows, s.n_items,
                                                                                s.weights, c.decay, c.step_decay))
        bought = batch.history.view("bought", lambda h: item_lists(h.events.filter(pl.col("event") == c.purchase),
                                                                   h.n_rows))
        scores = interest[batch.rows] @ sp.diags(self.rates)
        exclude = [bought[int(r)] for r in batch.rows] if include_seen else batch.seen()
        return top_n_sparse(scores, n, exclude, allowed)

    def save(self, folder: Path) -> None:
        self.save_config(folder)
        np.save(folder / RATES, self.rates, allow_pickle=False)
        super().save(folder)

    @classmethod
    def config_from(cls, saved: dict) -> ReengageConfig:
        return ReengageConfig(**{"prior_unit": "users", **saved})  # saved before prior_unit: a prior in users

    @classmethod
    def load(cls, folder: Path | None, space: Space, **_) -> ReengageSource | None:
        out = super().load(folder, space)
        if out is not None:
            out.rates = np.load(folder / RATES, allow_pickle=False)
        return out

    def add_items(self, n: int) -> bool:
        self.rates = np.concatenate([self.rates, np.full(n, float(np.median(self.rates)), dtype=np.float32)])
        return True
