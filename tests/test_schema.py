import polars as pl
import pytest

from recsys.errors import ConfigError
from recsys.schema import DEFAULT_WEIGHTS, Dataset, EventWeights, parse_weights


def test_default_weights_are_the_contract():
    assert DEFAULT_WEIGHTS == {"view": 1.0, "click": 2.0, "cart": 4.0, "purchase": 8.0}
    assert EventWeights().to_dict() == DEFAULT_WEIGHTS


def test_override_and_declare():
    w = EventWeights.from_dict({"purchase": 10, "rating": 1.5})
    assert w.weight("purchase") == 10.0
    assert w.weight("rating") == 1.5
    assert w.names() == ("view", "click", "cart", "purchase", "rating")


def test_weight_expression_maps_events():
    df = pl.DataFrame({"event": ["view", "cart", "purchase"]})
    assert df.select(EventWeights().expr()).to_series().to_list() == [1.0, 4.0, 8.0]


def test_bad_weights():
    with pytest.raises(ConfigError, match=r"event weight for 'like': 'x' is not a number; write it as like=3"):
        EventWeights.from_dict({"like": "x"})
    with pytest.raises(ConfigError, match=r"event weight for 'like': -1.0 must be > 0"):
        EventWeights.from_dict({"like": -1})
    with pytest.raises(ConfigError, match=r"--event-weight 'like': expected NAME=WEIGHT, e.g. like=3"):
        parse_weights(["like"])
    with pytest.raises(ConfigError, match="unknown event type 'like'; known: view, click, cart, purchase"):
        EventWeights().weight("like")


def test_value_kind_checked():
    with pytest.raises(ConfigError, match="value_kind 'stars' is not one of price, quantity, rating"):
        Dataset("x", pl.DataFrame(), pl.DataFrame(), value_kind="stars")
