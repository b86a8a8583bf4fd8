"""OKX v5 connector: recorded frames field by field, the whole recording, bad input."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from services.common.exceptions import RecordError
from services.common.messages import Quote, Trade
from services.producer import okx


def channel(name: str, inst: str = "BTC-USDT"):
    return lambda m: (m.get("arg", {}).get("channel") == name
                      and m["arg"].get("instId") == inst and "data" in m)


def test_venue_is_data() -> None:
    assert okx.VENUE.name == "okx"
    assert okx.VENUE.ws_url == "wss://ws.okx.com:8443/ws/v5/public"
    assert okx.VENUE.quote_ccy == "USDT"
    assert okx.VENUE.symbols == {"BTC-USD": "BTC-USDT", "ETH-USD": "ETH-USDT"}
    assert okx.VENUE.ping_message == "ping" and okx.VENUE.ping_after_s < 30
    assert okx.VENUE.market_quote_ccy("BTC-USDC") == "USDC"
    assert okx.VENUE.market_quote_ccy("BTC-USD-SWAP") == "USD"


def test_subscribe_message_has_an_arg_per_channel_and_instrument() -> None:
    [sent] = [json.loads(m) for m in okx.subscribe_messages(["BTC-USDT", "ETH-USDT"])]

    assert sent == {"op": "subscribe", "args": [
        {"channel": "tickers", "instId": "BTC-USDT"}, {"channel": "trades", "instId": "BTC-USDT"},
        {"channel": "tickers", "instId": "ETH-USDT"}, {"channel": "trades", "instId": "ETH-USDT"},
    ]}
    assert okx.connect_url("ws://127.0.0.1:1", ["BTC-USDT"]) == "ws://127.0.0.1:1"


def test_recorded_ticker_field_by_field(okx_frames, find_frame) -> None:
    # Arrange: the first BTC-USDT ticker of the recording, USDT at a given rate
    frame = find_frame(okx_frames, channel("tickers"))
    [data] = json.loads(frame.raw)["data"]
    usdt_usd = 1.0003

    # Act
    [quote] = okx.parse_message(frame.raw, frame.recv_ts_ms, fx_to_usd=usdt_usd)

    # Assert
    assert isinstance(quote, Quote)
    assert quote.exchange == "okx"
    assert quote.symbol == "BTC-USD" and quote.venue_symbol == "BTC-USDT"
    assert quote.bid == pytest.approx(30228.6 * usdt_usd)
    assert quote.ask == pytest.approx(30228.7 * usdt_usd)
    assert quote.bid / quote.fx_to_usd == pytest.approx(float(data["bidPx"]))
    assert quote.bid_size == float(data["bidSz"]) == 0.23393
    assert quote.ask_size == float(data["askSz"]) == 1.55896972
    assert quote.quote_ccy == "USDT" and quote.fx_to_usd == usdt_usd
    assert quote.exchange_ts_ms == int(data["ts"]) == 1652459224956
    assert quote.ts_ms == quote.recv_ts_ms == frame.recv_ts_ms


def test_recorded_trade_field_by_field(okx_frames, find_frame) -> None:
    frame = find_frame(okx_frames, channel("trades"))
    [data] = json.loads(frame.raw)["data"]

    parsed = okx.parse_frame(frame.raw, frame.recv_ts_ms)

    [trade] = parsed.records
    assert isinstance(trade, Trade)
    assert trade.side == data["side"] == "buy"  # the taker's side
    assert trade.price == float(data["px"]) == 30236.0
    assert trade.size == float(data["sz"]) == 0.0002
    assert trade.trade_id == data["tradeId"] == "338476307"
    assert trade.exchange_ts_ms == int(data["ts"])
    assert parsed.seqs == [(338476307, 338476307)]


def test_aggregated_trade_covers_count_ids(okx_frames, find_frame) -> None:
    # Newer OKX frames may carry count (trades merged into one, tradeId the last): not in the
    # recording, so a recorded frame is given a count of 3 here
    msg = json.loads(find_frame(okx_frames, channel("trades")).raw)
    msg["data"][0]["count"] = "3"

    assert okx.parse_frame(json.dumps(msg), 1).seqs == [(338476305, 338476307)]


@pytest.mark.parametrize(("raw", "kind"), [
    ('{"event":"subscribe","arg":{"channel":"tickers","instId":"BTC-USDT"}}', "subscribe"),
    ("pong", "pong"),
    ('{"event":"notice","code":"64008","msg":"The connection will soon be closed"}', "notice"),
])
def test_control_frames_give_no_records(raw, kind) -> None:
    assert okx.parse_frame(raw, 1)[:2] == (kind, [])


def test_books_frames_give_no_records(okx_frames, find_frame) -> None:
    frame = find_frame(okx_frames, channel("books"))

    assert okx.parse_frame(frame.raw, 1)[:2] == ("books", [])


def test_whole_recording(okx_frames) -> None:
    # Every instrument mapped onto itself (futures and swaps quote USD)
    msgs = [json.loads(f.raw) for f in okx_frames]
    data = [(m["arg"]["channel"], d) for m in msgs if "data" in m for d in m["data"]
            if m["arg"]["channel"] in {"tickers", "trades"}]
    identity = {d["instId"]: d["instId"] for _, d in data}
    kinds = Counter(ch for ch, _ in data)

    records = [r for f in okx_frames
               for r in okx.parse_message(f.raw, f.recv_ts_ms, symbol_map=identity)]

    quotes = [r for r in records if isinstance(r, Quote)]
    trades = [r for r in records if isinstance(r, Trade)]
    assert len(quotes) == kinds["tickers"]
    assert len(trades) == kinds["trades"]
    assert all(q.bid < q.ask for q in quotes)
    ids = [int(t.trade_id) for t in trades if t.venue_symbol == "BTC-USDT"]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # consecutive per instrument


@pytest.fixture
def ticker(okx_frames, find_frame) -> dict:
    return json.loads(find_frame(okx_frames, channel("tickers")).raw)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"bidPx": "NaN"}, "bad_price"),
        ({"bidPx": ""}, "bad_price"),  # OKX sends "" when a side is empty
        ({"askPx": "-1"}, "bad_price"),
        ({"askPx": "0"}, "bad_price"),
        ({"bidPx": "30228.7"}, "crossed_book"),
        ({"bidSz": "0"}, "bad_size"),
        ({"askSz": None}, "missing_field"),
        ({"instId": "DOGE-USDT"}, "unknown_symbol"),
        ({"ts": "soon"}, "bad_time"),
    ],
)
def test_bad_ticker_is_a_record_error(ticker, change, reason) -> None:
    raw = json.dumps(ticker | {"data": [ticker["data"][0] | change]})

    with pytest.raises(RecordError) as err:
        okx.parse_message(raw, 1)

    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"side": "up"}, "bad_field"), ({"side": None}, "missing_field"), ({"sz": "0"}, "bad_size"),
     ({"px": "inf"}, "bad_price"), ({"tradeId": None}, "missing_field")],
)
def test_bad_trade_is_a_record_error(okx_frames, find_frame, change, reason) -> None:
    msg = json.loads(find_frame(okx_frames, channel("trades")).raw)

    with pytest.raises(RecordError) as err:
        okx.parse_message(json.dumps(msg | {"data": [msg["data"][0] | change]}), 1)

    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("ping", "not_json"), ("[1]", "unknown_type"), ('{"arg":{"channel":"candle1m"},"data":[]}',
                                                     "unknown_type"),
     ('{"arg":{"channel":"tickers"},"data":{}}', "unknown_type"),
     ('{"event":"error","code":"60012","msg":"Invalid request"}', "venue_error"),
     ('{"arg":{"channel":"tickers"},"data":[7]}', "bad_field")],
)
def test_garbage_is_a_record_error(raw, reason) -> None:
    with pytest.raises(RecordError) as err:
        okx.parse_message(raw, 1)
    assert err.value.reason == reason
