"""QuoteBook: refresh while live, silence stops it, time always passed in."""

from __future__ import annotations

import pytest

from services.common.messages import Quote
from services.producer.quote_book import QuoteBook


def quote(exchange: str = "binance", ts_ms: int = 1000, bid: float = 100.0, **kw) -> Quote:
    fields = {
        "symbol": "BTC-USD", "venue_symbol": "BTCUSDT", "bid_size": 1.0, "ask_size": 2.0,
        "quote_ccy": "USDT", "fx_to_usd": 1.0, "exchange_ts_ms": ts_ms - 7,
    } | kw
    return Quote(exchange=exchange, bid=bid, ask=bid + 1, ts_ms=ts_ms, recv_ts_ms=ts_ms, **fields)


def test_unchanged_quote_is_refreshed_every_refresh_ms_while_live() -> None:
    # Arrange: a quote at 1000, then only heartbeats every 300 ms
    book = QuoteBook(refresh_ms=500, stale_ms=2000)
    original = quote(ts_ms=1000)
    book.on_quote(original)

    # Act
    assert book.due(1499) == []
    first = book.due(1500)
    book.on_message("binance", 1700)
    second = book.due(2000)

    # Assert
    assert [q.ts_ms for q in first + second] == [1500, 2000]
    for refresh in first + second:
        assert refresh.refresh is True
        assert refresh.recv_ts_ms == original.recv_ts_ms
        assert refresh.exchange_ts_ms == original.exchange_ts_ms
        assert (refresh.bid, refresh.ask, refresh.bid_size) == (original.bid, original.ask, 1.0)


def test_new_quote_restarts_the_timer() -> None:
    book = QuoteBook(refresh_ms=500, stale_ms=2000)
    book.on_quote(quote(ts_ms=1000))
    book.on_quote(quote(ts_ms=1400, bid=101.0))

    assert book.due(1500) == []
    assert book.next_due_ms() == 1900
    [refresh] = book.due(1900)
    assert refresh.bid == 101.0 and refresh.recv_ts_ms == 1400


def test_silent_venue_stops_refreshing_and_resumes_on_any_message() -> None:
    book = QuoteBook(refresh_ms=500, stale_ms=2000)
    book.on_quote(quote(ts_ms=1000))

    times = []
    now = 1000
    while (due := book.next_due_ms()) is not None and due < 10_000:
        times += [q.ts_ms for q in book.due(due)]
        now = due
    # live until 1000 + 2000 (exclusive): refreshes at 1500, 2000, 2500; then dormant
    assert times == [1500, 2000, 2500]
    assert book.next_due_ms() is None
    assert not book.is_live("binance", now + 1)

    book.on_message("binance", 8000)  # e.g. a heartbeat after the gap
    assert book.next_due_ms() == 8500
    assert [q.ts_ms for q in book.due(8500)] == [8500]


def test_venues_are_independent() -> None:
    book = QuoteBook(refresh_ms=500, stale_ms=1000)
    book.on_quote(quote("binance", ts_ms=0))
    book.on_quote(quote("coinbase", ts_ms=0, venue_symbol="BTC-USD"))
    book.on_message("coinbase", 900)

    refreshed = book.due(1200)  # binance silent since 0 (>= 1000 ms), coinbase heard at 900

    assert [q.exchange for q in refreshed] == ["coinbase"]
    assert book.last_message_ms("coinbase") == 900


def test_forget_drops_a_venue() -> None:
    book = QuoteBook(refresh_ms=500, stale_ms=2000)
    book.on_quote(quote("binance", ts_ms=0))

    book.forget("binance")

    assert book.due(500) == []
    assert book.next_due_ms() is None
    assert book.last_quote("binance", "BTC-USD") is None


def test_late_timer_publishes_at_now_not_in_the_past() -> None:
    book = QuoteBook(refresh_ms=500, stale_ms=2000)
    book.on_quote(quote(ts_ms=0))
    book.on_message("binance", 1000)

    [refresh] = book.due(1230)  # the wall-clock timer woke up late

    assert refresh.ts_ms == 1230
    assert book.next_due_ms() == 1730


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        QuoteBook(refresh_ms=0)


def test_a_clock_step_moves_one_venues_times_and_keeps_its_refresh_rhythm() -> None:
    # Arrange: two venues quoted at 1000; binance's receive clock then steps back 60 s
    book = QuoteBook(refresh_ms=500, stale_ms=2000)
    book.on_quote(quote("binance", ts_ms=1000))
    book.on_quote(quote("kraken", ts_ms=1000))

    # Act
    book.shift("binance", -60_000)

    # Assert: binance's quote and liveness are on the new clock, kraken's untouched
    moved = book.last_quote("binance", "BTC-USD")
    assert (moved.ts_ms, moved.recv_ts_ms, moved.exchange_ts_ms) == (-59_000, -59_000, 993)
    assert book.last_message_ms("binance") == -59_000
    assert book.last_quote("kraken", "BTC-USD").ts_ms == 1000
    # its refresh is due one period after its own (moved) time, and it is live on that clock
    assert [q.exchange for q in book.due(-58_500)] == ["binance"]
    assert book.is_live("binance", -58_500) and not book.is_live("binance", 1000)
