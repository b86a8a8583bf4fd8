"""Kraken WS v1 connector: recorded frames field by field, the whole recording, bad input."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from services.common.exceptions import RecordError
from services.common.messages import Quote, Trade
from services.producer import kraken

XMR = {"XMR/USD": "BTC-USD"}  # the recording has no XBT/USD: XMR/USD plays BTC-USD


def channel(name: str, pair: str | None = None):
    return lambda m: (isinstance(m, list) and m[-2] == name
                      and (pair is None or m[-1] == pair))


def event(name: str):
    return lambda m: isinstance(m, dict) and m.get("event") == name


def test_venue_is_data() -> None:
    assert kraken.VENUE.name == "kraken"
    assert kraken.VENUE.ws_url == "wss://ws.kraken.com"  # v1, see the module docstring
    assert kraken.VENUE.quote_ccy == "USD"
    assert kraken.VENUE.symbols == {"BTC-USD": "XBT/USD", "ETH-USD": "ETH/USD"}
    assert kraken.VENUE.fx_symbols == {"USDT-USD": "USDT/USD", "USDC-USD": "USDC/USD"}
    assert kraken.VENUE.market_quote_ccy("XBT/USDT") == "USDT"
    assert kraken.connect_url("ws://127.0.0.1:1", ["XBT/USD"]) == "ws://127.0.0.1:1"


def test_subscribe_messages_ticker_for_all_trades_for_markets() -> None:
    sent = [json.loads(m) for m in kraken.subscribe_messages(["XBT/USD"], ["USDT/USD"])]

    assert sent == [
        {"event": "subscribe", "pair": ["XBT/USD", "USDT/USD"], "subscription": {"name": "ticker"}},
        {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "trade"}},
    ]


def test_recorded_ticker_field_by_field(kraken_frames, find_frame) -> None:
    # Arrange: the first XMR/USD ticker of the recording
    frame = find_frame(kraken_frames, channel("ticker", "XMR/USD"))
    payload = json.loads(frame.raw)[1]

    # Act
    [quote] = kraken.parse_message(frame.raw, frame.recv_ts_ms, symbol_map=XMR)

    # Assert
    assert isinstance(quote, Quote)
    assert quote.exchange == "kraken"
    assert quote.symbol == "BTC-USD" and quote.venue_symbol == "XMR/USD"
    assert quote.bid == float(payload["b"][0]) == 354.32
    assert quote.ask == float(payload["a"][0]) == 355.24
    assert quote.bid_size == float(payload["b"][2]) == 6.87748868  # lotVolume, not whole lots
    assert quote.ask_size == float(payload["a"][2]) == 27.19106411
    assert quote.quote_ccy == "USD" and quote.fx_to_usd == 1.0
    assert quote.ts_ms == quote.recv_ts_ms == frame.recv_ts_ms
    assert quote.exchange_ts_ms is None  # v1 tickers carry no time
    assert quote.refresh is False


def test_recorded_trade_field_by_field(kraken_frames, find_frame) -> None:
    frame = find_frame(kraken_frames, channel("trade", "XMR/USD"))
    [item] = json.loads(frame.raw)[1]
    assert item[3] == "s"

    [trade] = kraken.parse_message(frame.raw, frame.recv_ts_ms, symbol_map=XMR)

    assert isinstance(trade, Trade)
    assert trade.side == "sell"  # "s": the taker sold
    assert trade.price == float(item[0]) == 354.11
    assert trade.size == float(item[1]) == 0.89594024
    assert trade.exchange_ts_ms == 1618678142557  # "1618678142.557535" s, truncated to ms
    assert trade.trade_id == "1618678142.557535-354.11000000-0.89594024"  # v1 has no id
    assert trade.ts_ms == trade.recv_ts_ms == frame.recv_ts_ms


def test_one_frame_many_trades(kraken_frames, find_frame) -> None:
    frame = find_frame(kraken_frames, channel("trade", "XMR/USD"), lambda m: len(m[1]) == 2)
    items = json.loads(frame.raw)[1]

    trades = kraken.parse_message(frame.raw, frame.recv_ts_ms, symbol_map=XMR)

    assert [(t.price, t.size, t.side) for t in trades] == [
        (float(i[0]), float(i[1]), "sell") for i in items]
    assert len({t.trade_id for t in trades}) == 2


@pytest.mark.parametrize(("kind", "pred"), [
    ("systemStatus", event("systemStatus")),
    ("subscriptionStatus", event("subscriptionStatus")),
    ("heartbeat", event("heartbeat")),
    ("book", channel("book-1000")),
])
def test_control_and_book_frames_give_no_records(kraken_frames, find_frame, kind, pred) -> None:
    frame = find_frame(kraken_frames, pred)

    assert kraken.parse_frame(frame.raw, 1, symbol_map=XMR)[:2] == (kind, [])


def test_whole_recording(kraken_frames) -> None:
    # Every pair mapped onto itself: each ticker is a quote, each trade item a trade
    msgs = [json.loads(f.raw) for f in kraken_frames]
    pairs = {m[-1] for m in msgs if isinstance(m, list)}
    identity = {p: p for p in pairs}
    kinds = Counter(m[-2] for m in msgs if isinstance(m, list))
    n_trades = sum(len(m[1]) for m in msgs if isinstance(m, list) and m[-2] == "trade")

    records = [r for f in kraken_frames
               for r in kraken.parse_message(f.raw, f.recv_ts_ms, symbol_map=identity)]

    quotes = [r for r in records if isinstance(r, Quote)]
    trades = [r for r in records if isinstance(r, Trade)]
    assert len(quotes) == kinds["ticker"]
    assert len(trades) == n_trades
    assert all(q.bid < q.ask for q in quotes)
    assert all(q.quote_ccy == q.venue_symbol.split("/")[1] for q in quotes)  # EUR, XBT ...


def test_default_map_knows_xbt_and_eth(kraken_frames, find_frame) -> None:
    frame = find_frame(kraken_frames, channel("ticker", "XMR/USD"))
    xbt = json.dumps([*json.loads(frame.raw)[:-1], "XBT/USD"])

    with pytest.raises(RecordError) as err:
        kraken.parse_message(frame.raw, 1)
    [quote] = kraken.parse_message(xbt, 1)

    assert err.value.reason == "unknown_symbol"
    assert quote.symbol == "BTC-USD" and quote.venue_symbol == "XBT/USD"


@pytest.fixture
def ticker(kraken_frames, find_frame) -> list:
    return json.loads(find_frame(kraken_frames, channel("ticker", "XMR/USD")).raw)


def with_payload(msg: list, **change) -> str:
    return json.dumps([msg[0], msg[1] | change, *msg[2:]])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"b": ["NaN", 6, "6.8"]}, "bad_price"),
        ({"b": ["-354.32", 6, "6.8"]}, "bad_price"),
        ({"a": ["0.00000000", 27, "27.1"]}, "bad_price"),
        ({"a": ["inf", 27, "27.1"]}, "bad_price"),
        ({"b": ["356.00000000", 6, "6.8"]}, "crossed_book"),
        ({"b": ["355.24000000", 6, "6.8"]}, "crossed_book"),
        ({"b": ["354.32", 6, "0"]}, "bad_size"),
        ({"a": None}, "missing_field"),
        ({"a": ["355.24"]}, "bad_field"),
    ],
)
def test_bad_ticker_is_a_record_error(ticker, change, reason) -> None:
    with pytest.raises(RecordError) as err:
        kraken.parse_message(with_payload(ticker, **change), 1, symbol_map=XMR)

    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (["354.11", "0.5", "1618678142.557535", "x", "l", ""], "bad_field"),
        (["354.11", "0.5", "yesterday", "s", "l", ""], "bad_time"),
        (["nan", "0.5", "1618678142.557535", "s", "l", ""], "bad_price"),
        (["354.11", "-0.5", "1618678142.557535", "s", "l", ""], "bad_size"),
        (["354.11", "0.5"], "bad_field"),
    ],
)
def test_bad_trade_is_a_record_error(item, reason) -> None:
    raw = json.dumps([993, [item], "trade", "XMR/USD"])

    with pytest.raises(RecordError) as err:
        kraken.parse_message(raw, 1, symbol_map=XMR)

    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not_json"),
        ("[1, 2]", "unknown_type"),
        ('[1, {}, "spread", "XMR/USD"]', "unknown_type"),
        ('[1, {}, 7, "XMR/USD"]', "unknown_type"),
        ('{"event":"mystery"}', "unknown_type"),
        ('{"event":"subscriptionStatus","status":"error","errorMessage":"Currency pair not '
         'supported XMR/XBT"}', "venue_error"),
        ('[1, [], "trade", "XMR/USD"]', "bad_field"),
        ('[1, [1,2], "ticker", "XMR/USD"]', "bad_field"),
        ('[1, {}, "ticker", null]', "missing_field"),
    ],
)
def test_garbage_is_a_record_error(raw, reason) -> None:
    with pytest.raises(RecordError) as err:
        kraken.parse_message(raw, 1, symbol_map=XMR)
    assert err.value.reason == reason


def test_pong_is_a_control_frame() -> None:
    assert kraken.parse_frame('{"event":"pong","reqid":42}', 1).kind == "pong"
