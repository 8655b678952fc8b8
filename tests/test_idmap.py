import numpy as np
import pytest

from recsys.errors import DataError
from recsys.idmap import IDMap


def test_natural_order_and_round_trip(tmp_path):
    m = IDMap.from_ids(["10", "2", "33", "2", "1"], kind="item")
    assert m.ids.tolist() == ["1", "2", "10", "33"]
    assert m.to_internal(["33", "1", "10"]).tolist() == [3, 0, 2]
    assert m.to_external(np.array([1, 2])).tolist() == ["2", "10"]
    m.save(tmp_path / "m.parquet")
    assert IDMap.load(tmp_path / "m.parquet").ids.tolist() == m.ids.tolist()


def test_unknown_ids():
    m = IDMap.from_ids(["a", "b"], kind="user")
    assert m.to_internal(["b", "zz"], missing="ignore").tolist() == [1, -1]
    with pytest.raises(DataError, match="unknown user id 'zz': not in this dataset's user map"):
        m.to_internal(["zz"])
    with pytest.raises(DataError, match="unknown user id 'q': not in this dataset's user map"):
        m.index("q")


def test_extend_keeps_old_ids_stable():
    m = IDMap.from_ids(["a", "c"])
    m2 = m.extend(["c", "b", "d", "b"])
    assert m2.ids.tolist() == ["a", "c", "b", "d"]
    assert m2.index("a") == m.index("a") and m2.index("c") == m.index("c")
