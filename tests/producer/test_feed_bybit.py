"""Bybit's live feed against a local WebSocket server that sends its recorded spot frames verbatim:
the same scenarios as ``test_feed.py`` (records, drop, storm, silence, garbage, broken stream,
bad values, pings, sequence), with that module's helpers.

The recording's spot product KCSUSDT plays BTC-USD; it holds no trade, so these feeds publish
quotes only (the trade parser is tested in ``test_bybit.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog

from services.common.config import ProducerSettings
from services.common.settings.types import DEFAULT_TAKER_FEE_BPS
from services.producer import bybit
from services.producer.feed import Feed, FeedOptions
from tests.producer.conftest import ListSink
from tests.producer.test_bybit import BYBIT_FILE, SPOT_PONG, SPOT_URL, frames_from
from tests.producer.test_feed import (
    CROSSED_BID,
    Case,
    errors,
    expected,
    feed_for,
    first_quote_raw,
    published,
    reconnects,
)
from tests.producer.ws_venue import CountingBackoff, RecordedVenue, Session, Step, run_until

PRODUCT = "KCSUSDT"


def _quotes(msg: Any, product: str) -> list[tuple]:
    if not isinstance(msg, dict) or msg.get("topic") != f"orderbook.1.{product}":
        return []
    d = msg["data"]
    return [(float(d["b"][0][0]), float(d["a"][0][0]), float(d["b"][0][1]),
             float(d["a"][0][1]))]


def _trades(msg: Any, product: str) -> list[tuple]:
    if not isinstance(msg, dict) or msg.get("topic") != f"publicTrade.{product}":
        return []
    return [(float(d["p"]), float(d["v"]), d["S"].lower()) for d in msg["data"]]


def _crossed(msg: Any) -> Any:
    return msg | {"data": msg["data"] | {"b": [[CROSSED_BID, "1"]]}}


CASE = Case(replace(bybit.VENUE, symbols={"BTC-USD": PRODUCT}), BYBIT_FILE, 1, PRODUCT,
            _quotes, _trades, _crossed)
NAME = "bybit"


@pytest.fixture
def raws(fixtures_dir: Path) -> list[str]:
    """The spot endpoint's frames of the recording, in receive order (linear ones left out)."""
    return [f.raw for f in frames_from(fixtures_dir / BYBIT_FILE, SPOT_URL)]


def feed(url: str, sink, metrics, **kw: Any) -> Feed:
    return feed_for(CASE, url, sink, metrics, **kw)


def book_frames(raws: list[str]) -> list[int]:
    return [i for i, r in enumerate(raws) if _quotes(json.loads(r), PRODUCT)]


def test_recorded_frames_become_the_expected_records(raws, sink, metrics) -> None:
    # Arrange: the spot recording, verbatim, on a local server
    want_quotes, want_trades = expected(CASE, raws)
    assert want_quotes and want_trades == []

    # Act
    with RecordedVenue([Session(raws)], subscribe_count=1) as server:
        live = feed(server.url, sink, metrics)
        asyncio.run(run_until(live, lambda: published(sink) == (want_quotes, want_trades)))

    # Assert: field by field against the raw messages, plus what the venue was asked for
    assert published(sink) == (want_quotes, want_trades)
    assert {(r.exchange, r.symbol, r.venue_symbol) for r in sink.records} == {
        (NAME, "BTC-USD", PRODUCT)}
    assert all(r.ts_ms == r.recv_ts_ms and r.exchange_ts_ms for r in sink.records)
    assert all(abs(r.recv_ts_ms - time.time() * 1000) < 60_000 for r in sink.records)
    assert server.paths == ["/"]
    assert server.received == bybit.subscribe_messages([PRODUCT])
    assert json.loads(server.received[0]) == {
        "op": "subscribe", "args": [f"orderbook.1.{PRODUCT}", f"publicTrade.{PRODUCT}"]}
    assert metrics.value("arb_best_bid_usd", exchange=NAME, symbol="BTC-USD") == want_quotes[-1][0]
    assert metrics.value("arb_feed_last_message_timestamp_seconds", exchange=NAME) > 0
    assert metrics.value("arb_feed_connected", exchange=NAME) == 0  # after shutdown
    assert reconnects(metrics, NAME) == 0
    for reason in ("sequence_gap", "duplicate", "out_of_order"):
        assert errors(metrics, NAME, reason) == 0, reason
    # the other spot products are not ours: counted, never published
    assert errors(metrics, NAME, "unknown_symbol") == sum(
        1 for r in raws if "topic" in json.loads(r)) - len(want_quotes)


def test_dropped_connection_reconnects(raws, sink, metrics) -> None:
    half = len(raws) // 2
    want = expected(CASE, raws)
    backoff = CountingBackoff()

    sessions = [Session(raws[:half], close=True), Session(raws[half:])]
    with RecordedVenue(sessions, subscribe_count=1) as server:
        live = feed(server.url, sink, metrics, backoff=backoff)
        asyncio.run(run_until(live, lambda: published(sink) == want))

    assert server.connections == live.connections == 2
    assert reconnects(metrics, NAME) == 1
    assert backoff.attempts == [0]
    assert len(server.received) == 2  # resubscribed


def test_disconnect_storm_loses_nothing(raws, sink, metrics) -> None:
    """Ten drops in a row: each a counted reconnect with a resubscribe, nothing lost or doubled."""
    want = expected(CASE, raws)
    cuts = [len(raws) * k // 11 for k in range(12)]
    sessions = [Session(raws[a:b], close=b < len(raws)) for a, b in itertools.pairwise(cuts)]
    with RecordedVenue(sessions, subscribe_count=1) as server:
        live = feed(server.url, sink, metrics, backoff=CountingBackoff())
        asyncio.run(run_until(
            live, lambda: (server.connections == live.connections == 11
                           and len(server.received) == 11 and published(sink) == want),
        ))

    assert reconnects(metrics, NAME) == 10
    assert len(server.received) == 11
    assert published(sink) == want


def test_silent_connection_trips_the_watchdog(raws, sink, metrics) -> None:
    half = len(raws) // 2
    want = expected(CASE, raws)

    # the first connection delivers half the recording, then stays open and says nothing (and
    # does not answer the feed's ping)
    sessions = [Session(raws[:half]), Session(raws[half:])]
    with RecordedVenue(sessions, subscribe_count=1) as server:
        live = feed(server.url, sink, metrics, watchdog_ms=300)
        asyncio.run(run_until(live, lambda: published(sink) == want))

    assert server.connections == 2
    assert errors(metrics, NAME, "silent") == 1
    assert reconnects(metrics, NAME) == 1


def test_garbage_only_connection_is_replaced(raws, sink, metrics) -> None:
    want = expected(CASE, raws)
    garbage: list[Step] = []
    for _ in range(10):
        garbage += ["garbage{", 0.05, "\x00\x01", 0.05, "[1,2]", 0.05]

    with RecordedVenue([Session(garbage), Session(raws)], subscribe_count=1) as server:
        live = feed(server.url, sink, metrics, watchdog_ms=400)
        asyncio.run(run_until(live, lambda: published(sink) == want))

    assert server.connections == 2
    assert errors(metrics, NAME, "not_json") >= 2
    assert errors(metrics, NAME, "unknown_type") >= 1
    assert errors(metrics, NAME, "silent") == 1
    assert reconnects(metrics, NAME) == 1


def test_broken_websocket_stream_reconnects(raws, sink, metrics) -> None:
    half = len(raws) // 2
    want = expected(CASE, raws)

    sessions = [Session(raws[:half], garbage=True), Session(raws[half:])]
    with RecordedVenue(sessions, subscribe_count=1) as server:
        live = feed(server.url, sink, metrics)
        asyncio.run(run_until(live, lambda: published(sink) == want))

    assert server.connections == live.connections == 2
    assert reconnects(metrics, NAME) == 1


def test_bad_values_are_counted_and_the_loop_goes_on(raws, sink, metrics) -> None:
    good = first_quote_raw(CASE, raws)
    crossed = json.dumps(_crossed(json.loads(good)))
    refused = ('{"success":false,"ret_msg":"Invalid symbol :[orderbook.1.XYZ]",'
               '"conn_id":"c","op":"subscribe"}')
    steps: list[Step] = ["garbage{", crossed, '{"unexpected":"message"}', refused, good]

    with RecordedVenue([Session(steps)], subscribe_count=1) as server:
        live = feed(server.url, sink, metrics)
        asyncio.run(run_until(live, lambda: len(sink.records) == 1))

    assert errors(metrics, NAME, "not_json") == 1
    assert errors(metrics, NAME, "crossed_book") == 1
    assert errors(metrics, NAME, "unknown_type") == 1
    assert errors(metrics, NAME, "venue_error") == 1
    assert published(sink)[0] == expected(CASE, [good])[0]
    assert live.connections == 1 and reconnects(metrics, NAME) == 0


def test_the_server_ping_is_answered(raws, sink, metrics) -> None:
    with RecordedVenue([Session(raws[:20])], subscribe_count=1, ping_client=True) as server:
        live = feed(server.url, sink, metrics)
        asyncio.run(run_until(live, lambda: server.pongs == 1))

    assert live.connections == 1


def test_bybit_gets_its_json_ping_when_quiet(raws, sink, metrics) -> None:
    # quiet for 1.2 s after the frames; the server answers {"op":"ping"} like Bybit spot does
    with RecordedVenue([Session([*raws[:30], 1.2])], subscribe_count=1,
                       replies={bybit.PING: SPOT_PONG}) as server:
        live = feed(server.url, sink, metrics, ping_after_s=0.15, watchdog_ms=500)
        asyncio.run(run_until(live, lambda: server.received.count(bybit.PING) >= 4))

    assert live.connections == 1
    assert errors(metrics, NAME, "silent") == 0
    assert metrics.value("arb_feed_messages_total", exchange=NAME, channel="pong") >= 3


def test_bybit_gets_its_json_ping_on_a_busy_connection_too(raws, sink, metrics) -> None:
    """Bybit wants a ping every 20 s whatever the traffic: with frames every 30 ms (no quiet
    at all) the feed still pings every ``ping_every_s``."""
    busy: list[Step] = []
    for raw in (raws * 4)[:100]:
        busy += [raw, 0.03]
    with RecordedVenue([Session(busy)], subscribe_count=1,
                       replies={bybit.PING: SPOT_PONG}) as server:
        live = feed(server.url, sink, metrics, ping_every_s=0.2, ping_after_s=60.0)
        assert live.ping_every_s == 0.2
        asyncio.run(run_until(live, lambda: server.received.count(bybit.PING) >= 3))

    assert live.connections == 1 and errors(metrics, NAME, "silent") == 0
    assert metrics.value("arb_feed_messages_total", exchange=NAME, channel="pong") >= 2


def test_the_ping_schedule_is_the_venues_unless_set() -> None:
    assert bybit.VENUE.ping_every_s == bybit.PING_AFTER_S == 20.0
    assert Feed(bybit.VENUE, ["BTC-USD"], ListSink()).ping_every_s == 20.0
    off = Feed(bybit.VENUE, ["BTC-USD"], ListSink(), FeedOptions(ping_every_s=None))
    assert off.ping_every_s is None


def test_unanswered_ping_ends_in_a_reconnect(raws, sink, metrics) -> None:
    with RecordedVenue([Session(raws[:30]), Session(raws[:30])], subscribe_count=1) as server:
        live = feed(server.url, sink, metrics, ping_after_s=0.1, watchdog_ms=400)
        asyncio.run(run_until(live, lambda: server.connections == 2))

    assert bybit.PING in server.received
    assert errors(metrics, NAME, "silent") == 1


def test_a_deleted_book_frame_is_no_gap(raws, sink, metrics) -> None:
    # orderbook.1 frames are whole snapshots: a lost one loses no state, so no gap is counted
    raws = list(raws)
    del raws[book_frames(raws)[3]]
    want = expected(CASE, raws)

    with RecordedVenue([Session(raws)], subscribe_count=1) as server:
        live = feed(server.url, sink, metrics)
        asyncio.run(run_until(live, lambda: published(sink) == want))

    assert errors(metrics, NAME, "sequence_gap") == 0


def test_an_older_book_is_dropped_and_a_repeat_is_a_duplicate(raws, sink, metrics) -> None:
    raws = list(raws)
    books = book_frames(raws)
    want = expected(CASE, raws)
    later, earlier = books[6], books[3]
    raws.insert(later + 1, raws[earlier])  # a late copy of an older book
    raws.insert(later + 1, raws[later])  # the same frame twice

    with structlog.testing.capture_logs(), RecordedVenue([Session(raws)],
                                                         subscribe_count=1) as server:
        live = feed(server.url, sink, metrics)
        asyncio.run(run_until(live, lambda: published(sink) == want
                              and errors(metrics, NAME, "out_of_order") == 1
                              and errors(metrics, NAME, "duplicate") == 1))

    assert published(sink) == want
    assert errors(metrics, NAME, "sequence_gap") == 0


def test_live_url_and_its_override(sink, metrics) -> None:
    """The spot endpoint by default; ARB_BYBIT_WS_URL (a known venue's variable) replaces it."""
    settings = ProducerSettings.from_env({"ARB_VENUES": "bybit",
                                          "ARB_BYBIT_WS_URL": "ws://127.0.0.1:9001"})

    default = Feed(bybit.VENUE, ["BTC-USD"], sink, FeedOptions(), metrics=metrics)
    override = Feed(bybit.VENUE, ["BTC-USD"], sink,
                    FeedOptions(url=settings.ws_urls.get(NAME)), metrics=metrics)

    assert default.url == SPOT_URL
    assert override.url == "ws://127.0.0.1:9001"
    assert DEFAULT_TAKER_FEE_BPS[NAME] == 10.0
