"""One map per dataset between external string ids and dense internal ints (0..n-1)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from .errors import DataError


def natural_order(ids: pl.Series) -> pl.Series:
    """Unique ids sorted numerically when all are integers (``"007"`` beside ``"7"``: by value, then
    as text), else as text.

    >>> natural_order(pl.Series(["10", "007", "9", "7"])).to_list(), natural_order(pl.Series(["b", "a1"])).to_list()
    (['007', '7', '9', '10'], ['a1', 'b'])
    """
    unique = ids.drop_nulls().unique().sort()
    as_int = unique.cast(pl.Int64, strict=False)
    if as_int.null_count() == 0:
        return unique.gather(pl.DataFrame({"i": as_int, "s": unique}).with_row_index().sort("i", "s")["index"])
    return unique


class IDMap:
    """External ids <-> internal indices; index order is the ids' natural order.

    >>> m = IDMap.from_ids(["b10", "a", "b10", "c"])
    >>> m.to_internal(["c", "a"]).tolist(), m.to_external([1]).tolist(), len(m)
    ([2, 0], ['b10'], 3)
    >>> IDMap.from_ids(["10", "9", "100"]).ids.tolist()
    ['9', '10', '100']
    """

    def __init__(self, ids: Sequence[str] | np.ndarray, kind: str = "id"):
        self.ids = np.asarray(ids, dtype=object)
        self.kind = kind
        self._series = pl.Series("id", self.ids.tolist(), dtype=pl.Utf8)
        if self._series.n_unique() != len(self._series):
            raise DataError(f"{kind} map: ids are not unique")
        self._lookup: dict[str, int] | None = None

    @classmethod
    def from_ids(cls, ids: Iterable[str] | pl.Series, kind: str = "id") -> IDMap:
        series = ids if isinstance(ids, pl.Series) else pl.Series("id", list(ids), dtype=pl.Utf8)
        return cls(natural_order(series.cast(pl.Utf8)).to_list(), kind=kind)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, key: str) -> bool:
        return str(key) in self.lookup

    @property
    def lookup(self) -> dict[str, int]:
        if self._lookup is None:
            self._lookup = {k: i for i, k in enumerate(self.ids.tolist())}
        return self._lookup

    def index(self, key: str) -> int:
        """Internal index of one id; a clear error when it is unknown."""
        try:
            return self.lookup[str(key)]
        except KeyError:
            raise DataError(f"unknown {self.kind} id {key!r}: not in this dataset's {self.kind} map") from None

    def to_internal(self, ids: Iterable[str] | pl.Series, missing: str = "error") -> np.ndarray:
        """Vectorised lookup. ``missing="error"`` raises on unknown ids; ``"ignore"`` gives -1."""
        series = ids if isinstance(ids, pl.Series) else pl.Series("id", list(ids), dtype=pl.Utf8)
        frame = pl.DataFrame({"id": series.cast(pl.Utf8)}).with_row_index("_pos")
        table = self._series.to_frame().with_row_index("_idx")
        joined = frame.join(table, on="id", how="left").sort("_pos")
        idx = joined["_idx"]
        if missing == "error" and idx.null_count():
            bad = joined.filter(pl.col("_idx").is_null())["id"][0]
            raise DataError(f"unknown {self.kind} id {bad!r}: not in this dataset's {self.kind} map")
        return idx.fill_null(-1).cast(pl.Int64).to_numpy()

    def to_external(self, idx: Iterable[int] | np.ndarray) -> np.ndarray:
        return self.ids[np.asarray(idx, dtype=np.int64)]

    def extend(self, ids: Iterable[str]) -> IDMap:
        """A new map with unseen ids appended at the end; old ids keep their indices."""
        new = [i for i in dict.fromkeys(str(x) for x in ids) if i not in self.lookup]
        return IDMap(np.concatenate([self.ids, np.asarray(new, dtype=object)]), kind=self.kind)

    def save(self, path: str | Path) -> None:
        self._series.to_frame().write_parquet(path)

    @classmethod
    def load(cls, path: str | Path, kind: str = "id") -> IDMap:
        return cls(pl.read_parquet(path)["id"].to_list(), kind=kind)
