"""Bitstamp through the live feed loop: a local WebSocket server sends the recorded frames
verbatim (the ETH/USD REST snapshot first, as the ``order_book_ethusd`` frame it matches, so
the diffs have a book to apply to; ethusd plays BTC-USD). Records must equal the Decimal
reference book of ``test_bitstamp``; drops, silence, garbage, broken streams and a storm of
drops must end in counted reconnects, never a crash. A new connection starts with a new book:
each later session opens with the full ``order_book`` frame a live subscription sends first.
``bts:request_reconnect`` rolls the feed over to a new connection without a gap."""

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
from tests.producer.test_bitstamp import lines, reference_books, reference_quotes
from tests.producer.ws_venue import CountingBackoff, RecordedVenue, Session, Step, run_until

PAIR = "ethusd"
SUBSCRIBES = 2  # order_book_ethusd, live_trades_ethusd


@pytest.fixture
def raws(fixtures_dir: Path) -> list[str]:
    """The ETH/USD snapshot, then every WebSocket frame of the recording in receive order."""
    recs = lines(fixtures_dir)
    snapshot = [r["raw"] for r in recs if f'"channel":"order_book_{PAIR}"' in r["raw"]]
    return snapshot + [r["raw"] for r in recs if r.get("source") != "rest"]


def snapshot_after(raws: list[str]) -> str:
    """The ``order_book_ethusd`` frame of the reference book once ``raws`` are applied."""
    bids, asks, book_us = list(reference_books([{"raw": r} for r in raws], PAIR))[-1]
    return json.dumps({"data": {
        "timestamp": str(book_us // 10**6), "microtimestamp": str(book_us),
        "bids": [[str(p), str(bids[p])] for p in sorted(bids, reverse=True)],
        "asks": [[str(p), str(asks[p])] for p in sorted(asks)],
    }, "channel": f"order_book_{PAIR}", "event": "data"})


def split(raws: list[str], cuts: list[int]) -> list[list[str]]:
    """``raws`` cut before each index of ``cuts``; every part after the first starts with the
    book as it stood (a new connection's first ``order_book`` frame)."""
    bounds = [0, *cuts, len(raws)]
    return [([snapshot_after(raws[:a])] if a else []) + raws[a:b]
            for a, b in itertools.pairwise(bounds)]


def expected(raws: list[str], parts: list[list[str]] | None = None,
             ) -> tuple[list[tuple], list[tuple]]:
    """Quotes of each connection's book (``parts``: one per connection; default one), trades
    of all ``raws``."""
    quotes = []
    for part in parts or [raws]:
        recs = [{"raw": r} for r in part]
        quotes += [(b, a, bs, as_) for b, bs, a, as_ in reference_quotes(recs, PAIR)]
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
    parts = split(raws, [len(raws) // 2])
    want = expected(raws, parts)
    backoff = CountingBackoff()

    sessions = [Session(parts[0], close=True), Session(parts[1])]
    with RecordedVenue(sessions, subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics, backoff=backoff)
        asyncio.run(run_until(feed, lambda: published(sink) == want))

    assert server.connections == feed.connections == 2
    assert reconnects(metrics) == 1 and backoff.attempts == [0]
    assert len(server.received) == 2 * SUBSCRIBES


def test_a_new_connection_starts_a_new_book(raws, sink, metrics) -> None:
    """Diffs after a reconnect are not applied to the old connection's book (diffs were
    missed meanwhile): no quote until a full book arrives."""
    half = len(raws) // 2
    first = expected(raws[:half])[0]
    whole = expected(raws, split(raws, [half]))[0]
    assert len(whole) > len(first) + 1  # the second half changes the top

    sessions = [Session(raws[:half], close=True), Session(raws[half:])]
    with RecordedVenue(sessions, subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: server.connections == 2 and metrics.value(
            "arb_feed_messages_total", exchange="bitstamp", channel="diff_order_book")
            >= sum(1 for r in raws if f'"diff_order_book_{PAIR}"' in r and '"event":"data"' in r)))

    assert published(sink)[0] == first


def test_disconnect_storm_loses_nothing(raws, sink, metrics) -> None:
    parts = split(raws, [len(raws) * k // 11 for k in range(1, 11)])
    want = expected(raws, parts)
    sessions = [Session(part, close=i < len(parts) - 1) for i, part in enumerate(parts)]
    with RecordedVenue(sessions, subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: (
            server.connections == feed.connections == 11
            and len(server.received) == 11 * SUBSCRIBES and published(sink) == want)))

    assert reconnects(metrics) == 10
    assert published(sink) == want


def test_silent_connection_trips_the_watchdog(raws, sink, metrics) -> None:
    parts = split(raws, [len(raws) // 2])
    want = expected(raws, parts)

    with RecordedVenue([Session(parts[0]), Session(parts[1])],
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
    parts = split(raws, [len(raws) // 2])
    want = expected(raws, parts)

    sessions = [Session(parts[0], garbage=True), Session(parts[1])]
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


REQUEST = '{"event":"bts:request_reconnect","channel":"","data":""}'


def test_a_reconnect_request_rolls_over_without_a_gap(raws, sink, metrics) -> None:
    """``bts:request_reconnect`` mid-stream: a new connection is opened while the old one is
    still read (its frames after the request are kept), then takes over; nothing is lost and
    the overlap's copies are dropped."""
    half = len(raws) // 2
    want = expected(raws)
    old = [*raws[:half], REQUEST, *raws[half:half + 40]]  # still sending after the request
    new = split(raws, [half])[1]  # a new subscription: the book as it stood, then the diffs

    with RecordedVenue([Session(old), Session(new)], subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics, overlap_s=0.2)
        asyncio.run(run_until(feed, lambda: feed.rollovers == 1 and published(sink) == want))

    assert published(sink) == want
    assert server.connections == feed.connections == 2
    assert len(server.received) == 2 * SUBSCRIBES
    assert metrics.value("arb_feed_messages_total", exchange="bitstamp",
                         channel=bitstamp.RECONNECT_KIND) == 1
    assert reconnects(metrics) == 1 and errors(metrics, "unknown_type") == 0
    assert errors(metrics, "duplicate") + errors(metrics, "out_of_order") > 0  # the overlap


def test_a_reconnect_request_is_not_acted_on_twice(raws, sink, metrics) -> None:
    """Requests while a rollover is under way start no second one."""
    with RecordedVenue([Session([raws[0], REQUEST, REQUEST, 0.3, REQUEST]), Session([raws[0]])],
                       subscribe_count=SUBSCRIBES) as server:
        feed = feed_for(server.url, sink, metrics, overlap_s=0.5)
        asyncio.run(run_until(feed, lambda: feed.rollovers == 1))
        assert server.connections == 2
