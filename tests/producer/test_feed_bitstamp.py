"""Bitstamp through the live feed loop: a local WebSocket server sends the recorded frames
verbatim (the ETH/USD REST snapshot first, as the ``order_book_ethusd`` frame it matches, so
the diffs have a book to apply to; ethusd plays BTC-USD). Records must equal the Decimal
reference book of ``test_bitstamp``; drops, silence, garbage, broken streams and a storm of
drops must end in counted reconnects, never a crash."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from services.common.messages import Quote, Trade
from services.producer import bitstamp
from services.producer.feed import Feed, FeedOptions
from tests.producer.conftest import ListSink
from tests.producer.test_bitstamp import lines, reference_quotes
from tests.producer.ws_venue import CountingBackoff, RecordedVenue, Session, Step, run_until

PAIR = "ethusd"
SUBSCRIBES = 2  # order_book_ethusd, live_trades_ethusd


@pytest.fixture
def raws(fixtures_dir: Path) -> list[str]:
    """The ETH/USD snapshot, then every WebSocket frame of the recording in receive order."""
    recs = lines(fixtures_dir)
    snapshot = [r["raw"] for r in recs if f'"channel":"order_book_{PAIR}"' in r["raw"]]
    return snapshot + [r["raw"] for r in recs if r.get("source") != "rest"]


def expected(raws: list[str]) -> tuple[list[tuple], list[tuple]]:
    recs = [{"raw": r} for r in raws]
    quotes = [(b, a, bs, as_) for b, bs, a, as_ in reference_quotes(recs, PAIR)]
    trades = []
    for raw in raws:
        msg = json.loads(raw)
        if msg.get("event") == "trade" and msg["channel"] == f"live_trades_{PAIR}":
            d = msg["data"]
            trades.append((float(d["price_str"]), float(d["amount_str"]),
                           "buy" if d["type"] == 0 else "sell"))
    return quotes, trades


def published(sink: ListSink) -> tuple[list[tuple], list[tuple]]:
    quotes = [(q.bid, q.ask, q.bid_size, q.ask_size) for q in sink.of(Quote, refresh=False)]
    trades = [(t.price, t.size, t.side) for t in sink.of(Trade)]
    return quotes, trades


def feed_for(url: str, sink: ListSink, metrics: Any, **kw: Any) -> Feed:
    kw.setdefault("backoff", CountingBackoff())
    venue = bitstamp.new_venue({"BTC-USD": PAIR})  # books of its own, per test
    return Feed(venue, ["BTC-USD"], sink, FeedOptions(url=url, **kw), fx=1.0, metrics=metrics)


def errors(metrics: Any, reason: str) -> float:
    return metrics.value("arb_feed_errors_total", exchange="bitstamp", reason=reason)


def reconnects(metrics: Any) -> float:
    return metrics.value("arb_feed_reconnects_total", exchange="bitstamp")


def test_recorded_frames_become_the_expected_records(raws, sink, metrics) -> None:
    want = expected(raws)
    assert want[0] and want[1]

    with RecordedVenue([Session(raws)], subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: published(sink) == want))

    assert published(sink) == want
    assert {r.symbol for r in sink.records} == {"BTC-USD"}
    assert {r.venue_symbol for r in sink.records} == {PAIR}
    assert server.received == bitstamp.subscribe_messages([PAIR])
    assert server.paths == ["/"]
    assert metrics.value("arb_best_bid_usd", exchange="bitstamp", symbol="BTC-USD") == (
        want[0][-1][0])
    assert reconnects(metrics) == 0 and errors(metrics, "sequence_gap") == 0
    # other recorded pairs are venue messages (liveness) counted as unknown_symbol
    assert errors(metrics, "unknown_symbol") > 0


def test_dropped_connection_reconnects(raws, sink, metrics) -> None:
    half = len(raws) // 2
    want = expected(raws)
    backoff = CountingBackoff()

    sessions = [Session(raws[:half], close=True), Session(raws[half:])]
    with RecordedVenue(sessions, subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics, backoff=backoff)
        asyncio.run(run_until(feed, lambda: published(sink) == want))

    assert server.connections == feed.connections == 2
    assert reconnects(metrics) == 1 and backoff.attempts == [0]
    assert len(server.received) == 2 * SUBSCRIBES


def test_disconnect_storm_loses_nothing(raws, sink, metrics) -> None:
    want = expected(raws)
    cuts = [len(raws) * k // 11 for k in range(12)]
    sessions = [Session(raws[a:b], close=b < len(raws)) for a, b in itertools.pairwise(cuts)]
    with RecordedVenue(sessions, subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: (
            server.connections == feed.connections == 11
            and len(server.received) == 11 * SUBSCRIBES and published(sink) == want)))

    assert reconnects(metrics) == 10
    assert published(sink) == want


def test_silent_connection_trips_the_watchdog(raws, sink, metrics) -> None:
    half = len(raws) // 2
    want = expected(raws)

    with RecordedVenue([Session(raws[:half]), Session(raws[half:])],
                       subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics, watchdog_ms=300)
        asyncio.run(run_until(feed, lambda: published(sink) == want))

    assert server.connections == 2
    assert errors(metrics, "silent") == 1 and reconnects(metrics) == 1


def test_garbage_only_connection_is_replaced(raws, sink, metrics) -> None:
    want = expected(raws)
    garbage: list[Step] = []
    for _ in range(10):
        garbage += ["garbage{", 0.05, "\x00\x01", 0.05, "[1,2]", 0.05]

    with RecordedVenue([Session(garbage), Session(raws)], subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics, watchdog_ms=400)
        asyncio.run(run_until(feed, lambda: published(sink) == want))

    assert server.connections == 2
    assert errors(metrics, "not_json") >= 2 and errors(metrics, "unknown_type") >= 1
    assert errors(metrics, "silent") == 1 and reconnects(metrics) == 1


def test_broken_websocket_stream_reconnects(raws, sink, metrics) -> None:
    half = len(raws) // 2
    want = expected(raws)

    sessions = [Session(raws[:half], garbage=True), Session(raws[half:])]
    with RecordedVenue(sessions, subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: published(sink) == want))

    assert server.connections == feed.connections == 2
    assert reconnects(metrics) == 1


def test_bad_values_are_counted_and_the_loop_goes_on(raws, sink, metrics) -> None:
    good = raws[0]  # the snapshot: one quote
    msg = json.loads(good)
    crossed = json.dumps(msg | {"data": msg["data"] | {"bids": [["99999999.0", "1"]]}})
    steps: list[Step] = ["garbage{", crossed, '{"unexpected":"message"}', good]

    with RecordedVenue([Session(steps)], subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: len(sink.records) == 1))

    assert errors(metrics, "not_json") == 1 and errors(metrics, "crossed_book") == 1
    assert errors(metrics, "unknown_type") == 1
    assert published(sink)[0] == expected([good])[0]
    assert feed.connections == 1 and reconnects(metrics) == 0


def test_a_repeated_diff_is_dropped(raws, sink, metrics) -> None:
    """A diff sent twice: the book ignores the copy (not newer than the book)."""
    want = expected(raws)
    first_diff = next(i for i, r in enumerate(raws) if f'"diff_order_book_{PAIR}"' in r
                      and '"event":"data"' in r)
    raws = [*raws[:first_diff + 1], raws[first_diff], *raws[first_diff + 1:]]

    with RecordedVenue([Session(raws)], subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: published(sink) == want))

    assert published(sink) == want


def test_the_reconnect_request_is_a_venue_message(raws, sink, metrics) -> None:
    """``bts:request_reconnect`` parses to its own kind; acting on it needs the feed change
    described in the module docstring of bitstamp.py (the loop goes on meanwhile)."""
    request = '{"event":"bts:request_reconnect","channel":"","data":""}'
    with RecordedVenue([Session([raws[0], request])], subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: metrics.value(
            "arb_feed_messages_total", exchange="bitstamp",
            channel=bitstamp.RECONNECT_KIND) == 1))

    assert feed.connections == 1 and errors(metrics, "unknown_type") == 0
