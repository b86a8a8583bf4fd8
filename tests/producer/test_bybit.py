"""Bybit v5 connector: recorded frames field by field, the whole recording, bad input, replay and
record mode.

The recording holds ``orderbook.1`` frames from the spot and the linear endpoint (told apart only
by each line's ``url``) and no trade: the trade tests use Bybit's documented ``publicTrade``
frame, marked as such.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from services.common.exceptions import RecordError
from services.common.messages import Quote, Trade
from services.producer import bybit
from services.producer.feed import Feed, FeedOptions
from services.producer.processor import FrameProcessor
from services.producer.recorder import DiscardSink, FrameRecorder
from services.producer.replay import Frame, Recording, plan_replay, recordings_in
from tests.producer.ws_venue import RecordedVenue, Session, run_until

BYBIT_FILE = "bybit_orderbook1_2025.jsonl"
SPOT_URL = "wss://stream.bybit.com/v5/public/spot"
LINEAR_URL = "wss://stream.bybit.com/v5/public/linear"
#: Bybit's documented publicTrade frame (no trade was recorded), spot-style digit trade id
DOC_TRADE = ('{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{'
             '"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50",'
             '"i":"2290000000061666327","BT":false,"RPI":false,"seq":1783284617}]}')
#: Bybit's documented answers to {"op":"ping"}
SPOT_PONG = ('{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a",'
             '"op":"ping"}')
LINEAR_PONG = ('{"success":true,"ret_msg":"","conn_id":"465772b1-7630-4fdc-a492-e003e6f0f260",'
               '"req_id":"","args":["1672114591946"],"op":"pong"}')


def frames_from(path: Path, endpoint: str) -> list[Frame]:
    """The WebSocket frames of a Bybit recording that came in on ``endpoint``, in file order."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("url") == endpoint and rec.get("source") != "rest":
            out.append(Frame(rec["recv_ts_ns"] // 1_000_000, rec["raw"]))
    return out


@pytest.fixture
def spot_frames(fixtures_dir: Path) -> list[Frame]:
    return frames_from(fixtures_dir / BYBIT_FILE, SPOT_URL)


@pytest.fixture
def linear_frames(fixtures_dir: Path) -> list[Frame]:
    return frames_from(fixtures_dir / BYBIT_FILE, LINEAR_URL)


def book_of(frames: list[Frame], symbol: str) -> list[Frame]:
    return [f for f in frames if json.loads(f.raw).get("topic") == f"orderbook.1.{symbol}"]


def identity(frames: list[Frame]) -> dict[str, str]:
    msgs = [json.loads(f.raw) for f in frames]
    return {m["data"]["s"]: m["data"]["s"] for m in msgs if "topic" in m}


def test_venue_is_data() -> None:
    assert bybit.VENUE.name == "bybit"
    assert bybit.VENUE.ws_url == SPOT_URL
    assert bybit.VENUE.quote_ccy == "USDT"
    assert bybit.VENUE.symbols == {"BTC-USD": "BTCUSDT", "ETH-USD": "ETHUSDT"}
    assert json.loads(bybit.VENUE.ping_message or "") == {"op": "ping"}
    assert bybit.VENUE.ping_after_s == 20.0
    assert bybit.VENUE.market_quote_ccy("ARBUSDC") == "USDC"
    assert bybit.VENUE.market_quote_ccy("TUSDUSDT") == "USDT"
    assert bybit.VENUE.market_quote_ccy("BTCEUR") == "EUR"
    bybit.VENUE.check_markets(["BTCUSDT", "ETHUSDC"])


def test_subscribe_message_has_a_topic_per_channel_and_symbol() -> None:
    [sent] = [json.loads(m) for m in bybit.subscribe_messages(["BTCUSDT", "ETHUSDT"],
                                                              quote_only=["USDCUSDT"])]

    assert sent == {"op": "subscribe", "args": [
        "orderbook.1.BTCUSDT", "publicTrade.BTCUSDT", "orderbook.1.ETHUSDT",
        "publicTrade.ETHUSDT", "orderbook.1.USDCUSDT",
    ]}
    assert bybit.connect_url("ws://127.0.0.1:1", ["BTCUSDT"]) == "ws://127.0.0.1:1"


def test_subscribe_sends_at_most_ten_topics_per_message() -> None:
    symbols = [f"C{i}USDT" for i in range(6)]

    sent = [json.loads(m)["args"] for m in bybit.subscribe_messages(symbols)]

    assert [len(args) for args in sent] == [10, 2]
    assert [a for args in sent for a in args] == [
        f"{ch}.{s}" for s in symbols for ch in ("orderbook.1", "publicTrade")]


def test_recorded_book_field_by_field(spot_frames) -> None:
    # Arrange: the docstring's frame, KCSUSDT's first change after the subscribe snapshot
    frame = next(f for f in book_of(spot_frames, "KCSUSDT")
                 if json.loads(f.raw)["data"]["u"] == 462749)
    msg = json.loads(frame.raw)
    usdt_usd = 1.0003

    # Act
    parsed = bybit.parse_frame(frame.raw, frame.recv_ts_ms, symbol_map={"KCSUSDT": "KCS-USD"},
                               fx_to_usd=usdt_usd)

    # Assert
    [quote] = parsed.records
    assert parsed.kind == "orderbook.1"
    assert isinstance(quote, Quote)
    assert quote.exchange == "bybit"
    assert quote.symbol == "KCS-USD" and quote.venue_symbol == "KCSUSDT"
    assert quote.bid == pytest.approx(11.258 * usdt_usd)
    assert quote.ask == pytest.approx(11.259 * usdt_usd)
    assert quote.bid / quote.fx_to_usd == pytest.approx(float(msg["data"]["b"][0][0]))
    assert quote.bid_size == float(msg["data"]["b"][0][1]) == 4.8
    assert quote.ask_size == float(msg["data"]["a"][0][1]) == 0.78
    assert quote.quote_ccy == "USDT" and quote.fx_to_usd == usdt_usd
    assert quote.exchange_ts_ms == msg["ts"] == 1749833477570
    assert quote.ts_ms == quote.recv_ts_ms == frame.recv_ts_ms
    number = 462749 * 10**13 + 1749833477570
    assert parsed.seqs == [(number, number)]


def test_a_usdc_market_takes_the_usdc_rate(spot_frames) -> None:
    frame = book_of(spot_frames, "ARBUSDC")[0]
    rates = {"USDT": 0.999, "USDC": 1.0002}

    [quote] = bybit.parse_message(frame.raw, 1, symbol_map={"ARBUSDC": "ARB-USD"},
                                  fx_to_usd=rates)

    bid = float(json.loads(frame.raw)["data"]["b"][0][0])
    assert quote.quote_ccy == "USDC" and quote.fx_to_usd == 1.0002
    assert quote.bid == pytest.approx(bid * 1.0002)
    with pytest.raises(RecordError) as err:
        bybit.parse_message(frame.raw, 1, symbol_map={"ARBUSDC": "ARB-USD"},
                            fx_to_usd={"USDT": 0.999})
    assert err.value.reason == "no_fx_rate"


def test_whole_spot_recording(spot_frames) -> None:
    # Every spot frame parses: each orderbook.1 frame one quote, each ack no record
    msgs = [json.loads(f.raw) for f in spot_frames]
    kinds = Counter("book" if "topic" in m else m["op"] for m in msgs)
    symbols = identity(spot_frames)

    parsed = [bybit.parse_frame(f.raw, f.recv_ts_ms, symbol_map=symbols) for f in spot_frames]

    quotes = [r for p in parsed for r in p.records]
    assert len(quotes) == kinds["book"] == sum(m.get("type") == "snapshot" for m in msgs)
    assert Counter(p.kind for p in parsed) == {"orderbook.1": kinds["book"],
                                              "subscribe": kinds["subscribe"]}
    assert all(isinstance(q, Quote) and 0 < q.bid < q.ask for q in quotes)
    assert {q.quote_ccy for q in quotes} == {"USDT", "USDC"}
    assert all(q.bid_size and q.ask_size and q.exchange_ts_ms for q in quotes)


def test_whole_spot_recording_through_the_processor_counts_no_error(spot_frames) -> None:
    """Re-pushes of an unchanged book (same ``u``, newer ``ts``) are accepted, not duplicates."""
    processor = FrameProcessor(bybit.VENUE, identity(spot_frames))

    outcomes = [processor.process(f.raw, f.recv_ts_ms) for f in spot_frames]

    assert [o.errors for o in outcomes if o.errors] == []
    n_books = sum(1 for f in spot_frames if "topic" in json.loads(f.raw))
    assert sum(len(o.records) for o in outcomes) == n_books
    repushed = Counter((m["data"]["s"], m["data"]["u"]) for m in
                       (json.loads(f.raw) for f in spot_frames) if "topic" in m)
    assert max(repushed.values()) > 1  # the recording does hold such re-pushes


def test_an_older_book_is_out_of_order_and_a_repeat_a_duplicate(spot_frames) -> None:
    books = book_of(spot_frames, "KCSUSDT")
    processor = FrameProcessor(bybit.VENUE, {"KCSUSDT": "KCS-USD"})
    for frame in books[:6]:
        processor.process(frame.raw, frame.recv_ts_ms)

    older = processor.process(books[2].raw, 1)
    again = processor.process(books[5].raw, 2)
    newer = processor.process(books[6].raw, 3)

    assert (older.records, older.errors) == ([], ("out_of_order",))
    assert (again.records, again.errors) == ([], ("duplicate",))
    assert len(newer.records) == 1 and newer.errors == ()


def test_linear_frames_are_read_only_when_their_symbols_are_mapped(linear_frames) -> None:
    # Spot and linear frames look alike: only the endpoint tells them apart. A linear symbol is
    # not a spot market this producer asked for, so it is unknown_symbol, never a quote.
    book = next(f for f in linear_frames if "topic" in json.loads(f.raw))
    spot_map = {"KCSUSDT": "KCS-USD"}

    with pytest.raises(RecordError) as err:
        bybit.parse_message(book.raw, 1, symbol_map=spot_map)
    assert err.value.reason == "unknown_symbol"
    quotes = [r for f in linear_frames
              for r in bybit.parse_message(f.raw, 1, symbol_map=identity(linear_frames))]
    assert len(quotes) == sum(1 for f in linear_frames if "topic" in json.loads(f.raw))


@pytest.mark.parametrize("raw", [
    '{"success":true,"ret_msg":"subscribe","conn_id":"1764937c","op":"subscribe"}',
    '{"success":true,"ret_msg":"","conn_id":"a38867ec","req_id":"","op":"subscribe"}',
])
def test_subscribe_acks_give_no_records(raw) -> None:
    assert bybit.parse_frame(raw, 1)[:2] == ("subscribe", [])


def test_recorded_acks_of_both_endpoints_give_no_records(spot_frames, linear_frames) -> None:
    acks = [f for f in [*spot_frames, *linear_frames] if "op" in json.loads(f.raw)]

    assert len(acks) == 10
    assert all(bybit.parse_frame(f.raw, 1)[:2] == ("subscribe", []) for f in acks)


@pytest.mark.parametrize("raw", [SPOT_PONG, LINEAR_PONG])
def test_pongs_are_control_frames(raw) -> None:
    assert bybit.parse_frame(raw, 1)[:2] == ("pong", [])


def test_other_topics_give_no_records(spot_frames) -> None:
    msg = json.loads(book_of(spot_frames, "KCSUSDT")[0].raw)
    deeper = json.dumps(msg | {"topic": "orderbook.50.KCSUSDT"})
    ticker = '{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"data":{"symbol":"BTCUSDT"}}'

    assert bybit.parse_frame(deeper, 1)[:2] == ("orderbook", [])
    assert bybit.parse_frame(ticker, 1)[:2] == ("tickers", [])


def test_documented_trade_field_by_field() -> None:
    parsed = bybit.parse_frame(DOC_TRADE, 7)

    [trade] = parsed.records
    assert parsed.kind == "publicTrade"
    assert isinstance(trade, Trade)
    assert trade.symbol == "BTC-USD" and trade.venue_symbol == "BTCUSDT"
    assert trade.side == "buy"  # S is the taker's side
    assert trade.price == 16578.5 and trade.size == 0.001
    assert trade.trade_id == "2290000000061666327"
    assert trade.exchange_ts_ms == 1672304486865
    assert trade.quote_ccy == "USDT" and trade.ts_ms == trade.recv_ts_ms == 7
    assert parsed.seqs == [None]  # no recording shows spot trade ids to be consecutive


@pytest.fixture
def book(spot_frames) -> dict[str, Any]:
    return json.loads(book_of(spot_frames, "KCSUSDT")[1].raw)


def with_data(msg: dict[str, Any], change: dict[str, Any]) -> str:
    return json.dumps(msg | {"data": msg["data"] | change})


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"b": [["NaN", "1"]]}, "bad_price"),
        ({"b": [["", "1"]]}, "bad_price"),
        ({"a": [["-1", "1"]]}, "bad_price"),
        ({"a": [["0", "1"]]}, "bad_price"),
        ({"a": [[11.259, "1"]], "b": [[1e400, "1"]]}, "bad_price"),
        ({"b": []}, "bad_price"),  # an empty side has no best price
        ({"b": [["11.259", "1"]]}, "crossed_book"),  # bid == ask
        ({"b": [["11.3", "1"]]}, "crossed_book"),
        ({"b": [["11.2", "0"]]}, "bad_size"),
        ({"a": [["11.3", "nan"]]}, "bad_size"),
        ({"a": None}, "missing_field"),
        ({"a": [["11.3"]]}, "bad_field"),
        ({"b": "11.2"}, "bad_field"),
        ({"s": None}, "missing_field"),
        ({"s": "DOGEUSDT"}, "unknown_symbol"),
    ],
)
def test_bad_book_is_a_record_error(book, change, reason) -> None:
    with pytest.raises(RecordError) as err:
        bybit.parse_message(with_data(book, change), 1, symbol_map={"KCSUSDT": "KCS-USD"})

    assert err.value.reason == reason


@pytest.mark.parametrize(("change", "reason"), [
    ({"ts": "soon"}, "bad_time"), ({"ts": -5}, "bad_time"), ({"ts": None}, "missing_field"),
    ({"data": None}, "missing_field"), ({"data": []}, "bad_field"),
])
def test_bad_book_envelope_is_a_record_error(book, change, reason) -> None:
    with pytest.raises(RecordError) as err:
        bybit.parse_message(json.dumps(book | change), 1, symbol_map={"KCSUSDT": "KCS-USD"})

    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"S": "up"}, "bad_field"), ({"S": None}, "missing_field"), ({"v": "0"}, "bad_size"),
     ({"p": "inf"}, "bad_price"), ({"p": "-3"}, "bad_price"), ({"i": None}, "missing_field"),
     ({"i": [1]}, "bad_field"), ({"s": "DOGEUSDT"}, "unknown_symbol"), ({"T": "x"}, "bad_time")],
)
def test_bad_trade_is_a_record_error(change, reason) -> None:
    msg = json.loads(DOC_TRADE)

    with pytest.raises(RecordError) as err:
        bybit.parse_message(json.dumps(msg | {"data": [msg["data"][0] | change]}), 1)

    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("pong", "not_json"), ("garbage{", "not_json"), ("[1]", "unknown_type"),
     ('{"unexpected":"message"}', "unknown_type"),
     ('{"topic":"liquidation.BTCUSDT","data":{}}', "unknown_type"),
     ('{"topic":7,"data":{}}', "unknown_type"),
     ('{"success":true,"op":"auth"}', "unknown_type"),
     ('{"success":false,"ret_msg":"Invalid symbol :[orderbook.1.XYZ]","conn_id":"c",'
      '"req_id":"","op":"subscribe"}', "venue_error"),
     ('{"topic":"publicTrade.BTCUSDT","data":{}}', "bad_field"),
     ('{"topic":"publicTrade.BTCUSDT","data":[7]}', "bad_field")],
)
def test_garbage_is_a_record_error(raw, reason) -> None:
    with pytest.raises(RecordError) as err:
        bybit.parse_message(raw, 1)
    assert err.value.reason == reason


# --- replay and record mode -----------------------------------------------------------------

def test_replay_of_the_recording_plays_the_spot_book(fixtures_dir, spot_frames) -> None:
    recording = Recording(BYBIT_FILE, "bybit", {"KCSUSDT": "BTC-USD"})

    plan = plan_replay(fixtures_dir, [recording], start_ms=1_000_000, refresh_ms=60_000)

    quotes = [r for r in plan.records if isinstance(r, Quote) and not r.refresh]
    want = [json.loads(f.raw)["data"] for f in book_of(spot_frames, "KCSUSDT")]
    assert [(q.bid, q.ask) for q in quotes] == [
        (float(d["b"][0][0]), float(d["a"][0][0])) for d in want]
    assert {(q.exchange, q.symbol, q.venue_symbol) for q in quotes} == {
        ("bybit", "BTC-USD", "KCSUSDT")}
    assert "out_of_order" not in plan.errors and "duplicate" not in plan.errors


def test_a_recorded_bybit_feed_replays_as_recorded(tmp_path, spot_frames, metrics) -> None:
    raws = [f.raw for f in spot_frames]
    recorder = FrameRecorder(tmp_path, {"bybit": {"KCSUSDT": "BTC-USD"}})
    venue = replace(bybit.VENUE, symbols={"BTC-USD": "KCSUSDT"})
    sink = DiscardSink()

    with RecordedVenue([Session(raws)], subscribe_count=1) as server:
        feed = Feed(venue, ["BTC-USD"], sink, FeedOptions(url=server.url), fx=1.0,
                    metrics=metrics, tap=recorder.tap("bybit"))
        asyncio.run(run_until(feed, lambda: recorder.frames == len(raws)))
    recorder.close()

    lines = [json.loads(line) for p in sorted(tmp_path.glob("bybit-*.jsonl"))
             for line in p.read_text().splitlines()]
    assert [r["raw"] for r in lines] == raws and {r["exchange"] for r in lines} == {"bybit"}
    n_books = len(book_of(spot_frames, "KCSUSDT"))
    assert sink.records == n_books
    recordings = recordings_in(tmp_path)
    plan = plan_replay(tmp_path, recordings, aligned=False, start_ms=5_000, refresh_ms=60_000)
    assert len([r for r in plan.records if isinstance(r, Quote) and not r.refresh]) == n_books
