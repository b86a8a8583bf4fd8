"""FrameProcessor, the one record path, without sockets: recorded frames in at a given receive
time, records and counts out; sequence checks, stablecoin rates, the quote book, the metrics."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import pytest

from services.common.exceptions import RecordError
from services.common.messages import Quote, Trade
from services.producer import binance, coinbase, kraken, okx
from services.producer.fx import FxRates
from services.producer.processor import FrameProcessor, Outcome
from services.producer.quote_book import QuoteBook
from tests.producer.conftest import binance_kind, coinbase_msg

T0_MS = 1_800_000_000_000


def binance_processor(metrics, **kw) -> FrameProcessor:
    return FrameProcessor(binance.VENUE, binance.VENUE.symbol_map(["BTC-USD"]),
                          counts=metrics.feed("binance"), **kw)


def by_kind(frames, kind: str) -> list[str]:
    return [f.raw for f in frames if binance_kind(f) == kind]


def errors(metrics, reason: str, exchange: str = "binance") -> float:
    return metrics.value("arb_feed_errors_total", exchange=exchange, reason=reason)


# --- the whole recordings -----------------------------------------------------------------------

@pytest.mark.parametrize(("venue", "frames_fixture", "product"), [
    (binance.VENUE, "binance_frames", "BTCUSDT"),
    (replace(coinbase.VENUE, symbols={"BTC-USD": "SKL-USD"}), "coinbase_frames", "SKL-USD"),
    (replace(kraken.VENUE, symbols={"BTC-USD": "XMR/USD"}), "kraken_frames", "XMR/USD"),
    (okx.VENUE, "okx_frames", "BTC-USDT"),
])
def test_a_recording_gives_its_parsed_records_and_counts(venue, frames_fixture, product,
                                                         request, metrics) -> None:
    # Arrange: the venue's whole recording, each frame at its recorded receive time
    frames = request.getfixturevalue(frames_fixture)
    symbol_map = venue.symbol_map(["BTC-USD"])
    processor = FrameProcessor(venue, symbol_map, counts=metrics.feed(venue.name))
    kinds: Counter[str] = Counter()
    parsed: list[Quote | Trade] = []
    for frame in frames:  # what the connector alone makes of each frame
        try:
            result = venue.parse_frame(frame.raw, frame.recv_ts_ms, symbol_map=symbol_map)
        except RecordError:  # counted below by reason
            continue
        kinds[result.kind] += 1
        parsed += result.records

    # Act
    outcomes = [processor.process(f.raw, f.recv_ts_ms) for f in frames]

    # Assert: the same records (the recordings have no gaps or repeats), every frame counted
    records = [r for o in outcomes for r in o.records]
    assert records == parsed and records
    assert {r.venue_symbol for r in records} == {product}
    for kind, n in kinds.items():
        assert metrics.value("arb_feed_messages_total", exchange=venue.name, channel=kind) == n
    assert all(o.usable for o in outcomes)  # every recorded frame is one of the venue's messages
    failed = Counter(o.errors[0] for o in outcomes if o.kind is None)
    for reason, n in failed.items():
        assert errors(metrics, reason, venue.name) == n
    for reason in ("sequence_gap", "duplicate", "out_of_order"):
        assert errors(metrics, reason, venue.name) == 0
    with_time = [r for r in records if r.exchange_ts_ms is not None]
    assert metrics.value("arb_feed_latency_seconds_count", exchange=venue.name) == len(with_time)
    last_quote = [r for r in records if isinstance(r, Quote)][-1]
    assert processor.book.last_quote(venue.name, "BTC-USD") == last_quote
    assert processor.last_alive_ms == frames[-1].recv_ts_ms


# --- one frame at a time ------------------------------------------------------------------------

def test_a_quote_is_booked_and_published_at_the_receive_time(binance_frames, metrics) -> None:
    processor = binance_processor(metrics)
    raw = by_kind(binance_frames, "bookTicker")[0]

    outcome = processor.process(raw, T0_MS)

    assert isinstance(outcome, Outcome)
    assert outcome.kind == "bookTicker" and outcome.usable and outcome.errors == ()
    [quote] = outcome.records
    assert quote == binance.parse_frame(raw, T0_MS).records[0]
    assert quote.ts_ms == quote.recv_ts_ms == T0_MS
    assert processor.book.last_quote("binance", "BTC-USD") == quote
    assert processor.book.last_message_ms("binance") == T0_MS
    assert metrics.value("arb_feed_messages_total", exchange="binance",
                         channel="bookTicker") == 1


def test_a_control_frame_is_liveness_without_records(binance_frames, metrics) -> None:
    processor = binance_processor(metrics)

    outcome = processor.process(by_kind(binance_frames, "depth@100ms")[0], T0_MS)

    assert outcome == Outcome("depthUpdate", [], True)
    assert processor.book.is_live("binance", T0_MS + 1)
    assert metrics.value("arb_feed_messages_total", exchange="binance",
                         channel="depthUpdate") == 1


@pytest.mark.parametrize(("raw", "reason", "usable"), [
    ("garbage{", "not_json", False),
    ("[1,2]", "unknown_type", False),
    ('{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"2","B":"1","a":"1",'
     '"A":"1"}}', "crossed_book", True),
    ('{"stream":"dogeusdt@bookTicker","data":{"u":1,"s":"DOGEUSDT","b":"1","B":"1","a":"2",'
     '"A":"1"}}', "unknown_symbol", True),
])
def test_a_bad_frame_is_counted_by_reason(raw, reason, usable, metrics) -> None:
    processor = binance_processor(metrics)

    outcome = processor.process(raw, T0_MS)

    assert outcome == Outcome(None, [], usable, (reason,))
    assert errors(metrics, reason) == 1
    # a venue message with bad values still proves the venue is alive; garbage does not
    assert processor.book.is_live("binance", T0_MS) is usable


def test_a_repeated_trade_is_dropped_and_a_missing_one_counted(binance_frames, metrics) -> None:
    processor = binance_processor(metrics)
    trades = by_kind(binance_frames, "trade")[:5]

    first = processor.process(trades[0], T0_MS)
    again = processor.process(trades[0], T0_MS + 1)
    processor.process(trades[1], T0_MS + 2)
    after_gap = processor.process(trades[3], T0_MS + 3)  # trades[2] never came

    assert len(first.records) == 1
    assert again == Outcome("trade", [], True, ("duplicate",))
    assert len(after_gap.records) == 1 and after_gap.errors == ("sequence_gap",)
    assert errors(metrics, "duplicate") == 1 and errors(metrics, "sequence_gap") == 1
    assert metrics.value("arb_feed_messages_total", exchange="binance", channel="trade") == 4


def test_an_older_book_ticker_is_out_of_order(binance_frames, metrics) -> None:
    processor = binance_processor(metrics)
    tickers = by_kind(binance_frames, "bookTicker")[:3]

    outcomes = [processor.process(raw, T0_MS + i) for i, raw in enumerate(
        [tickers[0], tickers[2], tickers[1]])]

    assert [len(o.records) for o in outcomes] == [1, 1, 0]
    assert outcomes[2].errors == ("out_of_order",)
    assert processor.book.last_quote("binance", "BTC-USD") == outcomes[1].records[0]


def test_forget_starts_the_book_over_and_keeps_the_trade_ids(binance_frames, metrics) -> None:
    processor = binance_processor(metrics)
    trade = by_kind(binance_frames, "trade")[0]
    processor.process(by_kind(binance_frames, "bookTicker")[0], T0_MS)
    processor.process(trade, T0_MS)

    processor.forget()

    assert processor.book.quotes("binance") == []
    # The venue's trade ids go on across a reconnect: the same trade again is a repeat.
    assert processor.process(trade, T0_MS + 5).errors == ("duplicate",)
    processor.restart()  # a new numbering (a replay's next loop): no longer a duplicate
    assert len(processor.process(trade, T0_MS + 6).records) == 1


def test_a_rate_market_feeds_the_rates_and_is_not_published(coinbase_frames, metrics) -> None:
    # A recorded ticker re-labelled USDT-USD (no USDT-USD frame was recorded)
    msg = next(coinbase_msg(f) for f in coinbase_frames if coinbase_msg(f)["type"] == "ticker")
    rate = json.dumps(msg | {"product_id": "USDT-USD", "best_bid": "1.0001",
                             "best_ask": "1.0003"})
    broken = json.dumps(msg | {"product_id": "USDT-USD", "best_bid": "2.5", "best_ask": "2.6",
                               "sequence": msg["sequence"] + 1})
    fx = FxRates({"USDT": 0.999}, max_age_ms=60_000)
    processor = FrameProcessor(coinbase.VENUE, {"USDT-USD": "USDT-USD"}, fx=fx,
                               counts=metrics.feed("coinbase"),
                               unpublished={"USDT-USD"})

    kept = processor.process(rate, T0_MS)
    bad = processor.process(broken, T0_MS + 1)

    assert kept == Outcome("ticker", [], True)
    assert fx.rate("USDT", T0_MS + 2) == pytest.approx(1.0002)
    assert bad.errors == ("bad_fx_rate",)
    assert errors(metrics, "bad_fx_rate", "coinbase") == 1


def test_the_live_rate_converts_at_the_receive_time(binance_frames) -> None:
    fx = FxRates({"USDT": 0.999}, max_age_ms=1_000)
    processor = FrameProcessor(binance.VENUE, binance.VENUE.symbol_map(), fx=fx)
    fx.on_quote(Quote("coinbase", "USDT-USD", "USDT-USD", 1.0001, 1.0, 1.0003, 1.0, "USD", 1.0,
                      T0_MS, T0_MS, None))
    raw = by_kind(binance_frames, "bookTicker")[0]

    [live] = processor.process(raw, T0_MS + 10).records
    [fallback] = processor.process(raw.replace('"u":', '"u":9'), T0_MS + 5_000).records

    assert live.fx_to_usd == pytest.approx(1.0002)
    assert fallback.fx_to_usd == 0.999


def test_adjust_comes_before_the_book_and_the_latency(binance_frames, metrics) -> None:
    book = QuoteBook()
    moved = []

    def adjust(rec):
        moved.append(rec)
        return replace(rec, exchange_ts_ms=rec.recv_ts_ms - 550) if isinstance(rec, Trade) else (
            replace(rec, bid=rec.bid / 2))

    processor = binance_processor(metrics, book=book, adjust=adjust)
    processor.process(by_kind(binance_frames, "bookTicker")[0], T0_MS)
    [trade] = processor.process(by_kind(binance_frames, "trade")[0], T0_MS).records

    assert len(moved) == 2
    assert book.last_quote("binance", "BTC-USD").bid == moved[0].bid / 2
    assert trade.exchange_ts_ms == T0_MS - 550
    # the latency of the adjusted trade, 0.55 s, not that of the recorded one
    bucket = "arb_feed_latency_seconds_bucket"
    assert metrics.value(bucket, exchange="binance", le="0.6") == 1
    assert metrics.value(bucket, exchange="binance", le="0.5") == 0


def test_a_processor_without_counts_only_parses(binance_frames) -> None:
    processor = FrameProcessor(binance.VENUE, binance.VENUE.symbol_map())

    outcomes = [processor.process(f.raw, f.recv_ts_ms) for f in binance_frames[:50]]

    assert sum(len(o.records) for o in outcomes) == sum(
        len(binance.parse_frame(f.raw, f.recv_ts_ms).records) for f in binance_frames[:50])
