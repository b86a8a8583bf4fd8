"""The record schema: round trips, and every rejection carries a reason."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from services.common.exceptions import RecordError
from services.common.messages import (
    Quote,
    Trade,
    parse_price_record,
    parse_spread,
    spread_id,
    to_json,
)
from tests.support.alerts import make_spread


def quote(**changes: object) -> Quote:
    fields = {"exchange": "binance", "symbol": "BTC-USD", "venue_symbol": "BTCUSDT",
              "bid": 60000.0, "bid_size": 1.5, "ask": 60000.01, "ask_size": None,
              "quote_ccy": "USDT", "fx_to_usd": 1.0003, "ts_ms": 1_700_000_000_500,
              "recv_ts_ms": 1_700_000_000_000, "exchange_ts_ms": None, "refresh": True}
    fields.update(changes)
    return Quote(**fields)


def test_quote_and_trade_round_trip() -> None:
    trade = Trade(exchange="coinbase", symbol="ETH-USD", venue_symbol="ETH-USD", price=3000.5,
                  size=0.25, side="sell", trade_id="981", quote_ccy="USD", fx_to_usd=1.0,
                  ts_ms=5, recv_ts_ms=5, exchange_ts_ms=3)
    for record in (quote(), trade):
        assert parse_price_record(to_json(record)) == record
    assert json.loads(to_json(quote()))["v"] == 1


def test_spread_round_trip_and_deterministic_id() -> None:
    spread = make_spread()
    assert parse_spread(to_json(spread)) == spread
    assert spread_id("BTC-USD", 1000, "coinbase", "binance") == "BTC-USD|1000|coinbase|binance"


def test_unknown_fields_are_ignored() -> None:
    obj = json.loads(to_json(quote()))
    obj["brand_new_field"] = {"x": 1}
    assert parse_price_record(json.dumps(obj)) == quote()


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda o: "not json", "not_json"),
    (lambda o: "[1, 2]", "not_object"),
    (lambda o: {**o, "v": 2}, "bad_version"),
    (lambda o: {k: v for k, v in o.items() if k != "bid"}, "missing_field"),
    (lambda o: {**o, "bid": "60000"}, "bad_field"),
    (lambda o: {**o, "bid": -1}, "bad_price"),
    (lambda o: {**o, "ask": 0}, "bad_price"),
    (lambda o: {**o, "bid_size": -2}, "bad_size"),
    (lambda o: {**o, "bid": 60001}, "crossed_book"),
    (lambda o: {**o, "ts_ms": 1.5}, "bad_field"),
    (lambda o: {**o, "type": "candle"}, "unknown_type"),
])
def test_rejections_have_reasons(mutate: Callable[[dict], object], reason: str) -> None:
    obj = json.loads(to_json(quote()))
    raw = mutate(obj)
    raw = raw if isinstance(raw, str) else json.dumps(raw)
    with pytest.raises(RecordError) as err:
        parse_price_record(raw)
    assert err.value.reason == reason


def test_nan_never_reaches_the_wire() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        to_json(quote(bid=float("nan")))
    with pytest.raises(RecordError) as err:
        parse_price_record(to_json(quote()).replace(b"60000.0,", b"NaN,", 1))
    assert err.value.reason == "bad_field"
