"""Coinbase Exchange connector: recorded frames field by field, the whole recording, bad input."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

import pytest

from services.common.exceptions import RecordError
from services.common.messages import Quote, Trade
from services.producer import coinbase
from services.producer.connector import rfc3339_to_ms
from tests.producer.conftest import coinbase_msg

SKL = {"SKL-USD": "BTC-USD"}


def ms(rfc3339: str) -> int:
    """Independent conversion for the assertions (microsecond precision is enough here)."""
    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)


def is_type(kind: str):
    return lambda m: m.get("type") == kind


def product(pid: str):
    return lambda m: m.get("product_id") == pid


def test_venue_is_data() -> None:
    assert coinbase.VENUE.name == "coinbase"
    assert coinbase.VENUE.ws_url == "wss://ws-feed.exchange.coinbase.com"
    assert coinbase.VENUE.quote_ccy == "USD"
    assert coinbase.VENUE.symbols == {"BTC-USD": "BTC-USD", "ETH-USD": "ETH-USD"}
    assert {"ticker", "matches"} <= set(coinbase.VENUE.channels)


def test_subscribe_messages_one_per_channel() -> None:
    sent = [json.loads(m) for m in coinbase.subscribe_messages(["BTC-USD", "ETH-USD"])]

    assert [m["channels"] for m in sent] == [[ch] for ch in coinbase.CHANNELS]
    assert all(m["type"] == "subscribe" for m in sent)
    assert all(m["product_ids"] == ["BTC-USD", "ETH-USD"] for m in sent)
    assert coinbase.connect_url("ws://127.0.0.1:1", ["BTC-USD"]) == "ws://127.0.0.1:1"


def test_recorded_ticker_field_by_field(coinbase_frames, find_frame) -> None:
    # Arrange: the first SKL-USD ticker of the recording
    frame = find_frame(coinbase_frames, is_type("ticker"), product("SKL-USD"))
    msg = json.loads(frame.raw)

    # Act
    [quote] = coinbase.parse_message(frame.raw, frame.recv_ts_ms, symbol_map=SKL)

    # Assert
    assert isinstance(quote, Quote)
    assert quote.exchange == "coinbase"
    assert quote.symbol == "BTC-USD"
    assert quote.venue_symbol == "SKL-USD"
    assert quote.bid == float(msg["best_bid"]) == 0.7901
    assert quote.ask == float(msg["best_ask"]) == 0.7911
    assert quote.bid_size is None and quote.ask_size is None  # the 2021 feed has no sizes
    assert quote.quote_ccy == "USD" and quote.fx_to_usd == 1.0
    assert quote.ts_ms == quote.recv_ts_ms == frame.recv_ts_ms
    assert quote.exchange_ts_ms == ms(msg["time"]) == ms("2021-04-17T16:43:37.056746Z")
    assert quote.refresh is False


def test_current_feed_ticker_sizes_are_read(coinbase_frames, find_frame) -> None:
    # Today's ticker adds best_bid_size/best_ask_size to the same fields
    frame = find_frame(coinbase_frames, is_type("ticker"), product("SKL-USD"))
    msg = json.loads(frame.raw) | {"best_bid_size": "120.5", "best_ask_size": "0.25"}

    [quote] = coinbase.parse_message(json.dumps(msg), 1, symbol_map=SKL)

    assert quote.bid_size == 120.5
    assert quote.ask_size == 0.25


def test_recorded_match_taker_side_is_inverted(coinbase_frames, find_frame) -> None:
    # A "sell" match (maker sold) printed at the ask: the taker bought
    frame = find_frame(coinbase_frames, is_type("match"), product("SKL-USD"))
    msg = json.loads(frame.raw)
    assert msg["side"] == "sell"

    [trade] = coinbase.parse_message(frame.raw, frame.recv_ts_ms, symbol_map=SKL)

    assert isinstance(trade, Trade)
    assert trade.side == "buy"
    assert trade.price == float(msg["price"]) == 0.791
    assert trade.size == float(msg["size"]) == 450.0
    assert trade.trade_id == str(msg["trade_id"]) == "1568268"
    assert trade.symbol == "BTC-USD" and trade.venue_symbol == "SKL-USD"
    assert trade.exchange_ts_ms == ms(msg["time"])
    assert trade.ts_ms == trade.recv_ts_ms == frame.recv_ts_ms


def test_last_match_is_a_trade(coinbase_frames, find_frame) -> None:
    frame = find_frame(coinbase_frames, is_type("last_match"), product("SKL-USD"))

    [trade] = coinbase.parse_message(frame.raw, frame.recv_ts_ms, symbol_map=SKL)

    assert trade.trade_id == str(json.loads(frame.raw)["trade_id"])
    assert trade.side == "buy"  # recorded maker side "sell"


@pytest.mark.parametrize("kind", ["subscriptions", "snapshot", "l2update"])
def test_control_and_book_frames_give_no_records(coinbase_frames, find_frame, kind) -> None:
    frame = find_frame(coinbase_frames, is_type(kind))

    assert coinbase.parse_frame(frame.raw, 1, symbol_map=SKL)[:2] == (kind, [])


def test_heartbeat_gives_no_record() -> None:
    raw = ('{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD",'
           '"time":"2014-11-07T08:19:28.464459Z"}')
    assert coinbase.parse_message(raw, 1) == []


def test_whole_recording(coinbase_frames) -> None:
    # Every product mapped onto itself: each ticker is a quote, each (last_)match a trade
    products = {coinbase_msg(f).get("product_id") for f in coinbase_frames} - {None}
    identity = {p: p for p in products}
    kinds = Counter(coinbase_msg(f)["type"] for f in coinbase_frames)

    records = [r for f in coinbase_frames
               for r in coinbase.parse_message(f.raw, f.recv_ts_ms, symbol_map=identity)]

    quotes = [r for r in records if isinstance(r, Quote)]
    trades = [r for r in records if isinstance(r, Trade)]
    assert len(quotes) == kinds["ticker"]
    assert len(trades) == kinds["match"] + kinds["last_match"]
    assert all(q.bid < q.ask for q in quotes)
    assert len({t.trade_id for t in trades}) == len(trades)


def test_default_map_knows_only_btc_and_eth(coinbase_frames, find_frame) -> None:
    frame = find_frame(coinbase_frames, is_type("ticker"), product("SKL-USD"))

    with pytest.raises(RecordError) as err:
        coinbase.parse_message(frame.raw, 1)

    assert err.value.reason == "unknown_symbol"


@pytest.fixture
def ticker(coinbase_frames, find_frame) -> dict:
    return json.loads(find_frame(coinbase_frames, is_type("ticker"), product("SKL-USD")).raw)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"best_bid": "NaN"}, "bad_price"),
        ({"best_bid": "-0.79"}, "bad_price"),
        ({"best_ask": "0"}, "bad_price"),
        ({"best_ask": "abc"}, "bad_price"),
        ({"best_ask": True}, "bad_price"),
        ({"best_bid": "0.8", "best_ask": "0.7911"}, "crossed_book"),
        ({"best_bid": "0.7911"}, "crossed_book"),
        ({"best_ask": None}, "missing_field"),
        ({"product_id": "DOGE-USD"}, "unknown_symbol"),
        ({"time": "yesterday"}, "bad_time"),
        ({"best_bid_size": "-1"}, "bad_size"),
        ({"type": "rfq_match"}, "unknown_type"),
        ({"type": "error", "message": "Failed to subscribe", "reason": "bad product"},
         "venue_error"),
    ],
)
def test_bad_ticker_is_a_record_error(ticker, change, reason) -> None:
    raw = json.dumps(ticker | change)

    with pytest.raises(RecordError) as err:
        coinbase.parse_message(raw, 1, symbol_map=SKL)

    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("not json at all", "not_json"), ("[1, 2]", "unknown_type"), ("{}", "unknown_type")],
)
def test_garbage_is_a_record_error(raw, reason) -> None:
    with pytest.raises(RecordError) as err:
        coinbase.parse_message(raw, 1)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"size": "0"}, "bad_size"), ({"size": "NaN"}, "bad_size"), ({"side": "up"}, "bad_field"),
     ({"price": "-1"}, "bad_price"), ({"trade_id": None}, "missing_field")],
)
def test_bad_match_is_a_record_error(coinbase_frames, find_frame, change, reason) -> None:
    msg = json.loads(find_frame(coinbase_frames, is_type("match"), product("SKL-USD")).raw)

    with pytest.raises(RecordError) as err:
        coinbase.parse_message(json.dumps(msg | change), 1, symbol_map=SKL)

    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("2021-04-17T16:43:37.056746Z", 1618677817056),
        ("2021-04-17T16:43:37.056746123Z", 1618677817056),  # nanoseconds (Advanced Trade)
        ("2021-04-17T16:43:37Z", 1618677817000),
        ("2021-04-17T18:43:37.5+02:00", 1618677817500),
    ],
)
def test_rfc3339_to_ms(text, expected_ms) -> None:
    assert rfc3339_to_ms(text) == expected_ms
