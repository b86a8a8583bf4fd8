"""Binance spot connector: recorded frames field by field, the whole recording, bad input."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from services.common.exceptions import RecordError
from services.common.messages import Quote, Trade
from services.producer import binance
from tests.producer.conftest import binance_kind


def stream(suffix: str):
    return lambda m: m.get("stream", "").endswith(suffix)


def test_venue_is_data() -> None:
    assert binance.VENUE.name == "binance"
    assert binance.VENUE.ws_url == "wss://stream.binance.com:9443"
    assert binance.VENUE.quote_ccy == "USDT"
    assert binance.VENUE.symbols == {"BTC-USD": "BTCUSDT", "ETH-USD": "ETHUSDT"}
    assert binance.subscribe_messages(["BTCUSDT"]) == []


def test_combined_stream_url() -> None:
    assert (binance.connect_url("wss://stream.binance.com:9443", ["BTCUSDT"])
            == "wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker/btcusdt@trade"
                "/btcusdt@depth@100ms")
    assert (binance.connect_url("ws://127.0.0.1:8765/", ["BTCUSDT", "ETHUSDT"])
            == "ws://127.0.0.1:8765/stream?streams=btcusdt@bookTicker/btcusdt@trade/"
               "btcusdt@depth@100ms/ethusdt@bookTicker/ethusdt@trade/ethusdt@depth@100ms")


def test_recorded_book_ticker_field_by_field(binance_frames, find_frame) -> None:
    # Arrange: the first bookTicker of the recording, USDT at a given rate
    frame = find_frame(binance_frames, stream("@bookTicker"))
    data = json.loads(frame.raw)["data"]
    usdt_usd = 1.0003

    # Act
    [quote] = binance.parse_message(frame.raw, frame.recv_ts_ms, fx_to_usd=usdt_usd)

    # Assert
    assert isinstance(quote, Quote)
    assert quote.exchange == "binance"
    assert quote.symbol == "BTC-USD"
    assert quote.venue_symbol == "BTCUSDT"
    assert quote.bid == pytest.approx(61837.63 * usdt_usd)
    assert quote.ask == pytest.approx(61837.64 * usdt_usd)
    assert quote.bid / quote.fx_to_usd == pytest.approx(float(data["b"]))
    assert quote.bid_size == float(data["B"]) == 3.78826
    assert quote.ask_size == float(data["A"]) == 1.54698
    assert quote.quote_ccy == "USDT" and quote.fx_to_usd == usdt_usd
    assert quote.ts_ms == quote.recv_ts_ms == frame.recv_ts_ms
    assert quote.exchange_ts_ms is None  # spot bookTicker carries no time
    assert quote.refresh is False


def test_recorded_trade_field_by_field(binance_frames, find_frame) -> None:
    frame = find_frame(binance_frames, stream("@trade"))
    data = json.loads(frame.raw)["data"]
    assert data["m"] is True

    [trade] = binance.parse_message(frame.raw, frame.recv_ts_ms)

    assert isinstance(trade, Trade)
    assert trade.side == "sell"  # buyer was the maker: the taker sold
    assert trade.price == float(data["p"]) == 61837.63
    assert trade.size == float(data["q"]) == 0.02
    assert trade.trade_id == str(data["t"]) == "3735683259"
    assert trade.exchange_ts_ms == data["T"] == 1723161255342
    assert trade.ts_ms == trade.recv_ts_ms == frame.recv_ts_ms
    assert trade.quote_ccy == "USDT" and trade.fx_to_usd == 1.0


def test_taker_buy(binance_frames, find_frame) -> None:
    frame = find_frame(binance_frames, stream("@trade"), lambda m: m["data"]["m"] is False)

    [trade] = binance.parse_message(frame.raw, frame.recv_ts_ms)

    assert trade.side == "buy"


def test_raw_stream_frame_without_envelope(binance_frames, find_frame) -> None:
    # A single-stream connection sends the payload without {"stream","data"}
    frame = find_frame(binance_frames, stream("@bookTicker"))
    payload = json.dumps(json.loads(frame.raw)["data"])

    assert binance.parse_frame(payload, 5) == binance.parse_frame(frame.raw, 5)


def test_depth_and_subscription_reply_give_no_records(binance_frames, find_frame) -> None:
    frame = find_frame(binance_frames, stream("@depth@100ms"))

    assert binance.parse_frame(frame.raw, 1)[:2] == ("depthUpdate", [])
    assert binance.parse_message('{"result":null,"id":1}', 1) == []


def test_whole_recording(binance_frames) -> None:
    kinds = Counter(binance_kind(f) for f in binance_frames)

    records = [r for f in binance_frames for r in binance.parse_message(f.raw, f.recv_ts_ms)]

    quotes = [r for r in records if isinstance(r, Quote)]
    trades = [r for r in records if isinstance(r, Trade)]
    assert len(quotes) == kinds["bookTicker"]
    assert len(trades) == kinds["trade"]
    assert len(records) == len(quotes) + len(trades)  # depth frames give nothing
    assert all(q.bid < q.ask for q in quotes)
    # trade ids run without gaps over the recording (fixtures README)
    ids = [int(t.trade_id) for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


@pytest.fixture
def book_ticker(binance_frames, find_frame) -> dict:
    return json.loads(find_frame(binance_frames, stream("@bookTicker")).raw)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"b": "NaN"}, "bad_price"),
        ({"b": "Infinity"}, "bad_price"),
        ({"a": "-61837.64"}, "bad_price"),
        ({"a": "0.00000000"}, "bad_price"),
        ({"b": "61837.65000000"}, "crossed_book"),
        ({"B": "-1"}, "bad_size"),
        ({"A": "nan"}, "bad_size"),
        ({"a": None}, "missing_field"),
        ({"s": "DOGEUSDT"}, "unknown_symbol"),
    ],
)
def test_bad_book_ticker_is_a_record_error(book_ticker, change, reason) -> None:
    raw = json.dumps(book_ticker | {"data": book_ticker["data"] | change})

    with pytest.raises(RecordError) as err:
        binance.parse_message(raw, 1)

    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"m": "yes"}, "bad_field"), ({"T": "soon"}, "bad_time"), ({"q": "0"}, "bad_size"),
     ({"p": "NaN"}, "bad_price"), ({"e": "markPriceUpdate"}, "unknown_type")],
)
def test_bad_trade_is_a_record_error(binance_frames, find_frame, change, reason) -> None:
    msg = json.loads(find_frame(binance_frames, stream("@trade")).raw)

    with pytest.raises(RecordError) as err:
        binance.parse_message(json.dumps(msg | {"data": msg["data"] | change}), 1)

    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("\x00garbage", "not_json"), ('"text"', "unknown_type"),
     ('{"stream":"btcusdt@bookTicker","data":[]}', "unknown_type"),
     ('{"code":2,"msg":"Invalid request"}', "venue_error")],
)
def test_garbage_is_a_record_error(raw, reason) -> None:
    with pytest.raises(RecordError) as err:
        binance.parse_message(raw, 1)
    assert err.value.reason == reason
