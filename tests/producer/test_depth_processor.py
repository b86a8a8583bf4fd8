"""The frame processor's books: depth frames -> ladders on quotes, resyncs -> metrics and
actions, a crossed book -> no ladder until resynced. Binance frames built in the venue's wire
format (``binance.jsonl`` holds the same shapes), at a fixed USDT rate of 1."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from services.common.messages import DepthLevel, Quote
from services.producer import binance
from services.producer.books.book import OrderBook
from services.producer.books.ladder import ladder
from services.producer.processor import BookAction, FrameProcessor

NOTIONALS = (1000.0, 10000.0)
SYMBOLS = {"BTCUSDT": "BTC-USD"}


def depth_frame(first: int, last: int, bids: list[list[str]], asks: list[list[str]]) -> str:
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": {
        "e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": first, "u": last, "b": bids, "a": asks}})


def ticker(u: int, bid: str, ask: str, size: str = "20") -> str:
    """A bookTicker frame; the default size is the top level's in BIDS and ASKS (the ticker
    agrees with the book)."""
    return json.dumps({"stream": "btcusdt@bookTicker", "data": {
        "u": u, "s": "BTCUSDT", "b": bid, "B": size, "a": ask, "A": size}})


def snapshot(last_id: int, bids: list[list[str]], asks: list[list[str]]) -> str:
    return json.dumps({"lastUpdateId": last_id, "bids": bids, "asks": asks})


BIDS = [["99.0", "20"], ["90.0", "1000"]]
ASKS = [["100.0", "20"], ["110.0", "1000"]]


def processor(metrics, notionals=NOTIONALS) -> FrameProcessor:
    return FrameProcessor(binance.VENUE, SYMBOLS, fx=1.0, depth_notionals_usd=notionals,
                          book_levels=50, book_counts=metrics.book("binance"))


def synced(metrics) -> FrameProcessor:
    proc = processor(metrics)
    out = proc.process(depth_frame(101, 101, [], []), 1_000)
    assert out.actions == (BookAction("snapshot", "BTCUSDT", None),)
    proc.on_snapshot("BTCUSDT", snapshot(100, BIDS, ASKS), 1_001)
    return proc


def expected_ladder(bids, asks, fx: float = 1.0) -> tuple[DepthLevel, ...]:
    book = OrderBook(50)
    book.load([(float(p), float(s)) for p, s in bids], [(float(p), float(s)) for p, s in asks])
    return ladder(book, NOTIONALS, fx)


def test_first_diff_asks_for_a_snapshot_and_quotes_then_carry_the_ladder(metrics) -> None:
    proc = synced(metrics)

    quotes = proc.process(ticker(5, "99.0", "100.0"), 1_002).records

    assert len(quotes) == 1
    depth = quotes[0].depth
    assert depth == expected_ladder(BIDS, ASKS)
    # inside the first level the price is exactly that level's; beyond it, the walk's VWAP
    assert depth[0] == DepthLevel(1000.0, 99.0, 100.0)
    assert depth[1].ask_px == pytest.approx(10000.0 / (20 + 8000.0 / 110.0))
    assert depth[1].bid_px == pytest.approx(10000.0 / (20 + (10000.0 - 1980.0) / 90.0))


def test_quote_before_the_book_is_synced_has_no_ladder(metrics) -> None:
    proc = processor(metrics)
    proc.process(depth_frame(101, 101, [], []), 1_000)

    (quote,) = proc.process(ticker(5, "99.0", "100.0"), 1_001).records

    assert quote.depth is None


def test_depth_change_republishes_the_latest_quote_with_the_new_ladder(metrics) -> None:
    proc = synced(metrics)
    (first,) = proc.process(ticker(5, "99.0", "100.0"), 1_002).records

    # the second ask level moves: same best bid/ask, another 10k ladder
    out = proc.process(depth_frame(102, 102, [], [["110.0", "0"], ["105.0", "1000"]]), 1_050)

    (again,) = out.records
    assert isinstance(again, Quote)
    assert (again.bid, again.ask, again.ts_ms, again.refresh) == (first.bid, first.ask, 1_050,
                                                                  False)
    assert again.depth == expected_ladder(BIDS, [["100.0", "20"], ["105.0", "1000"]])
    assert again.depth != first.depth
    # a change the ladder does not see (a far level off both walks) publishes nothing
    assert proc.process(depth_frame(103, 103, [["1.0", "5"]], []), 1_060).records == []


def test_gap_resyncs_counts_and_asks_for_a_snapshot(metrics) -> None:
    proc = synced(metrics)
    proc.process(ticker(5, "99.0", "100.0"), 1_002)

    out = proc.process(depth_frame(110, 111, [], []), 1_100)  # 102..109 missing

    assert out.actions == (BookAction("snapshot", "BTCUSDT", "gap"),)
    assert metrics.value("arb_book_gaps_total", exchange="binance") == 1
    assert metrics.value("arb_book_resyncs_total", exchange="binance", reason="gap") == 1
    # the quote goes out again without its ladder: the book is no longer vouched for
    (dropped,) = out.records
    assert dropped.depth is None
    (quote,) = proc.process(ticker(6, "99.0", "100.0"), 1_101).records
    assert quote.depth is None
    # a new snapshot bridging the buffered diffs brings the ladder back
    proc.process(depth_frame(112, 112, [], []), 1_102)
    resynced = proc.on_snapshot("BTCUSDT", snapshot(111, BIDS, ASKS), 1_103)
    assert [r.depth for r in resynced.records] == [expected_ladder(BIDS, ASKS)]


def test_crossed_book_gives_no_ladder_until_resynced(metrics) -> None:
    proc = synced(metrics)
    proc.process(ticker(5, "99.0", "100.0"), 1_002)

    out = proc.process(depth_frame(102, 102, [["101.0", "1"]], []), 1_010)  # bid over the ask

    assert out.actions == (BookAction("snapshot", "BTCUSDT", "crossed"),)
    assert metrics.value("arb_book_crossed_total", exchange="binance") == 1
    (quote,) = proc.process(ticker(6, "99.0", "100.0"), 1_011).records
    assert quote.depth is None
    proc.process(depth_frame(103, 103, [], []), 1_012)
    proc.on_snapshot("BTCUSDT", snapshot(102, BIDS, ASKS), 1_013)
    (quote,) = proc.process(ticker(7, "99.0", "100.0"), 1_014).records
    assert quote.depth == expected_ladder(BIDS, ASKS)


def test_bad_snapshot_is_counted_and_asked_for_again(metrics) -> None:
    proc = processor(metrics)
    proc.process(depth_frame(101, 101, [], []), 1_000)

    out = proc.on_snapshot("BTCUSDT", '{"lastUpdateId": 100, "bids": [["NaN", "1"]]}', 1_001)

    assert out.actions == (BookAction("snapshot", "BTCUSDT", "bad_level"),)
    assert metrics.value("arb_book_rejected_total", exchange="binance", reason="bad_level") == 1
    assert not proc.syncs["BTCUSDT"].synced


def test_ladder_is_at_the_quotes_fx_rate(metrics) -> None:
    proc = FrameProcessor(binance.VENUE, SYMBOLS, fx=0.5, depth_notionals_usd=NOTIONALS,
                          book_levels=50)
    proc.process(depth_frame(101, 101, [], []), 1_000)
    proc.on_snapshot("BTCUSDT", snapshot(100, BIDS, ASKS), 1_001)

    (quote,) = proc.process(ticker(5, "99.0", "100.0"), 1_002).records

    assert quote.fx_to_usd == 0.5
    assert quote.depth == expected_ladder(BIDS, ASKS, fx=0.5)
    assert quote.depth[0].ask_px == 50.0


def test_no_sizes_configured_keeps_no_books(metrics) -> None:
    proc = processor(metrics, notionals=())
    proc.process(depth_frame(101, 101, [], []), 1_000)

    (quote,) = proc.process(ticker(5, "99.0", "100.0"), 1_001).records

    assert quote.depth is None
    assert proc.syncs == {}


def test_connection_lost_resets_the_books(metrics) -> None:
    proc = synced(metrics)

    proc.forget()

    (quote,) = proc.process(ticker(5, "99.0", "100.0"), 1_002).records
    assert quote.depth is None
    assert not proc.syncs["BTCUSDT"].synced
    assert proc.syncs["BTCUSDT"].book.depth() == (0, 0)


# --- the quote's top and the book's ----------------------------------------------------------

def test_a_ticker_ahead_of_the_depth_stream_leads_the_ladder(metrics) -> None:
    # Binance: bookTicker is real time, depth@100ms behind; the ticker says the 100.0 ask is
    # gone (best ask now 100.5) and a new bid came at 99.5, 3 of each
    proc = synced(metrics)

    (quote,) = proc.process(ticker(5, "99.5", "100.5", size="3"), 1_002).records

    assert (quote.bid, quote.ask) == (99.5, 100.5)  # the quote's own top stands
    # the ladder is that of the book the ticker describes: its level first, then the book's
    # levels behind it (the stale 100.0 ask left out; the 99.0 bid is behind the new one)
    assert quote.depth == expected_ladder([["99.5", "3"], ["99.0", "20"], ["90.0", "1000"]],
                                          [["100.5", "3"], ["110.0", "1000"]])
    assert quote.depth[1].ask_px > quote.ask and quote.depth[1].bid_px < quote.bid


def book_led(metrics) -> FrameProcessor:
    """A venue whose book is fresher than its ticker (as Kraken's, Coinbase's and OKX's are),
    in Binance's wire format."""
    venue = replace(binance.VENUE, depth=replace(binance.DEPTH, book_leads=True))
    proc = FrameProcessor(venue, SYMBOLS, fx=1.0, depth_notionals_usd=NOTIONALS,
                          book_levels=50, book_counts=metrics.book("binance"))
    proc.process(depth_frame(101, 101, [], []), 1_000)
    proc.on_snapshot("BTCUSDT", snapshot(100, BIDS, ASKS), 1_001)
    return proc


def test_where_the_book_leads_quotes_take_its_top_and_follow_it(metrics) -> None:
    proc = book_led(metrics)

    # a ticker that moved on the last trade, seconds ago: the synced book's top replaces it
    (quote,) = proc.process(ticker(5, "98.0", "101.0", size="7"), 1_002).records
    assert (quote.bid, quote.bid_size, quote.ask, quote.ask_size) == (99.0, 20.0, 100.0, 20.0)
    assert quote.depth == expected_ladder(BIDS, ASKS)

    # the best ask is taken: the book's new top goes out at once, with its ladder
    out = proc.process(depth_frame(102, 102, [], [["100.0", "0"], ["100.5", "2"]]), 1_050)
    (moved,) = out.records
    assert (moved.bid, moved.ask, moved.ask_size, moved.ts_ms) == (99.0, 100.5, 2.0, 1_050)
    assert moved.depth == expected_ladder(BIDS, [["100.5", "2"], ["110.0", "1000"]])

    # a gap: the book is no longer vouched for, the quote falls back to the ticker's own top
    out = proc.process(depth_frame(110, 111, [], []), 1_100)
    (dropped,) = out.records
    assert (dropped.bid, dropped.ask, dropped.depth) == (98.0, 101.0, None)


def test_where_the_ticker_leads_its_top_stands_through_book_changes(metrics) -> None:
    proc = synced(metrics)
    (first,) = proc.process(ticker(5, "99.0", "100.0"), 1_002).records

    # the depth stream takes the 100.0 ask away; the (real-time) ticker has not said so, and
    # its level still leads the ladder: nothing the quote shows changed, nothing goes out
    assert proc.process(depth_frame(102, 102, [], [["100.0", "0"]]), 1_050).records == []

    # a change behind the quote's level does move the ladder: out again, the same top
    out = proc.process(depth_frame(103, 103, [], [["110.0", "0"], ["105.0", "1000"]]), 1_060)
    (again,) = out.records
    assert (again.bid, again.ask, again.ts_ms) == (first.bid, first.ask, 1_060)
    assert again.depth == expected_ladder(BIDS, [["100.0", "20"], ["105.0", "1000"]])
