"""Feed faults a venue or the host causes: the WebSocket upgrade refused (HTTP 401/403/451,
429 with and without Retry-After), a subscription rejected with the venue's own error message,
and the host clock stepped back and forward an hour mid-stream. Each runs the live feed against
a local server on a real socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
import structlog

from services.common.clock import now_ts_ms
from services.common.messages import Quote
from services.producer import binance, bitstamp, bybit, coinbase, kraken, okx
from services.producer.connector import Venue
from services.producer.feed import Feed, FeedOptions, retry_after
from tests.producer.conftest import binance_kind, liveness_stream
from tests.producer.ws_venue import (
    CountingBackoff,
    RecordedVenue,
    Session,
    Step,
    run_until,
    running,
    until,
)
from tests.support.refusing_ws import Refusal, RefusingVenue

HOUR_MS = 3_600_000


def errors(metrics: Any, exchange: str, reason: str) -> float:
    return metrics.value("arb_feed_errors_total", exchange=exchange, reason=reason)


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


# --- the upgrade refused ------------------------------------------------------------------

@pytest.mark.parametrize(("header", "want_s"), [
    ("7", 7.0),
    (" 120 ", 120.0),
    (format_datetime(datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC), usegmt=True), 30.0),
    (format_datetime(datetime(2025, 12, 31, 23, 0, tzinfo=UTC), usegmt=True), 0.0),  # past
    ("soon", None),
    ("-5", None),
    (None, None),
])
def test_retry_after_is_seconds_or_an_http_date(header: str | None, want_s: float | None) -> None:
    now_s = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert retry_after(header, now_s) == want_s


def binance_feed(url: str, sink: Any, metrics: Any, backoff: CountingBackoff,
                 **kw: Any) -> Feed:
    return Feed(binance.VENUE, ["BTC-USD"], sink, FeedOptions(url=url, backoff=backoff, **kw),
                metrics=metrics)


def test_a_429_retry_after_is_waited_out(binance_frames, sink, metrics) -> None:
    frames = [f.raw for f in binance_frames[:20]]
    backoff = CountingBackoff()  # 10-50 ms: far below the venue's 1 s
    refusals = [Refusal(429, (("Retry-After", "1"),))]
    with structlog.testing.capture_logs() as logs, RefusingVenue(refusals, frames) as server:
        feed = binance_feed(server.url, sink, metrics, backoff)
        asyncio.run(run_until(feed, lambda: len(sink.records) > 0, timeout_s=10))

    assert len(server.attempts_s) == 2 and server.accepted == 1
    assert server.attempts_s[1] - server.attempts_s[0] >= 1.0
    assert errors(metrics, "binance", "rate_limited") == 1
    [refused] = events(logs, "feed_refused")
    assert refused["status"] == 429 and refused["retry_after_s"] == 1.0
    assert refused["reason"] == "rate_limited"
    assert "url" not in refused
    assert feed.connections == 1


def test_a_429_without_retry_after_backs_off_as_usual(binance_frames, sink, metrics) -> None:
    frames = [f.raw for f in binance_frames[:20]]
    backoff = CountingBackoff()
    refusals = [Refusal(429)] * 3
    with structlog.testing.capture_logs() as logs, RefusingVenue(refusals, frames) as server:
        feed = binance_feed(server.url, sink, metrics, backoff)
        asyncio.run(run_until(feed, lambda: len(sink.records) > 0))

    assert backoff.attempts == [0, 1, 2]
    assert errors(metrics, "binance", "rate_limited") == 3
    assert len(events(logs, "feed_refused")) == 1  # once per outage, not per attempt
    assert metrics.value("arb_feed_reconnects_total", exchange="binance") == 3


def test_another_http_status_is_an_http_error_with_the_usual_backoff(binance_frames, sink,
                                                                     metrics) -> None:
    frames = [f.raw for f in binance_frames[:20]]
    backoff = CountingBackoff()
    with structlog.testing.capture_logs() as logs, RefusingVenue(
            [Refusal(503)] * 2, frames) as server:
        feed = binance_feed(server.url, sink, metrics, backoff)
        asyncio.run(run_until(feed, lambda: len(sink.records) > 0))

    assert backoff.attempts == [0, 1]
    assert errors(metrics, "binance", "http_error") == 2
    [refused] = events(logs, "feed_refused")
    assert refused["status"] == 503
    assert server.accepted == 1


@pytest.mark.parametrize("status", [401, 403, 451])
def test_a_refused_upgrade_backs_off_to_the_maximum_at_once(status, binance_frames, sink,
                                                            metrics) -> None:
    frames = [f.raw for f in binance_frames[:20]]
    backoff = CountingBackoff()  # 0.01 s doubling: attempt 3 is the first at the 0.05 s cap
    with structlog.testing.capture_logs() as logs, RefusingVenue(
            [Refusal(status)] * 2, frames) as server:
        feed = binance_feed(server.url, sink, metrics, backoff)
        asyncio.run(run_until(feed, lambda: len(sink.records) > 0))

    assert backoff.attempts == [3, 4]
    assert backoff.delay_s(3) == backoff.delay_s(30)  # the maximum
    assert errors(metrics, "binance", "refused") == 2
    [refused] = events(logs, "feed_refused")
    assert refused["status"] == status and refused["reason"] == "refused"
    assert not events(logs, "feed_connect_failed")  # the one line says it all
    assert server.accepted == 1 and sink.records  # back once the venue lets it in


# --- a subscription rejected --------------------------------------------------------------

#: venue, its rejection as the venue sends it, the message the log must carry, and a frame
#: that proves the connection alive (heartbeat, ack or pong) without any data
REJECTIONS: dict[str, tuple[Venue, str, str, str]] = {
    "binance": (binance.VENUE, '{"error":{"code":2,"msg":"Invalid request"},"id":1}',
                "2: Invalid request", '{"result":null,"id":1}'),
    "binance_flat": (binance.VENUE, '{"code":1,"msg":"Invalid value type","id":1}',
                     "1: Invalid value type", '{"result":null,"id":2}'),
    "coinbase": (coinbase.VENUE, '{"type":"error","message":"Failed to subscribe",'
                 '"reason":"BTC-XYZ is not a valid product"}',
                 "Failed to subscribe: BTC-XYZ is not a valid product",
                 '{"type":"heartbeat","sequence":1,"last_trade_id":1,"product_id":"BTC-USD",'
                 '"time":"2021-04-17T16:43:37.061000Z"}'),
    "kraken": (kraken.VENUE, '{"errorMessage":"Currency pair not supported XBT/USDX",'
               '"event":"subscriptionStatus","pair":"XBT/USDX","status":"error",'
               '"subscription":{"name":"ticker"}}',
               "Currency pair not supported XBT/USDX", '{"event":"heartbeat"}'),
    "okx": (okx.VENUE, '{"event":"error","code":"60012","msg":"Invalid request: '
            '{\\"op\\": \\"subscribe\\"}","connId":"a4d3ae55"}',
            '60012: Invalid request: {"op": "subscribe"}', "pong"),
    "bybit": (bybit.VENUE, '{"success":false,"ret_msg":"error:handler not found",'
              '"conn_id":"2324d924-aa4d-45b0-a858-7b8be29ab52b","req_id":"","op":"subscribe"}',
              "subscribe: error:handler not found",
              '{"success":true,"ret_msg":"pong","conn_id":"2324d924","op":"ping"}'),
    "bitstamp": (bitstamp.VENUE, '{"event":"bts:error","channel":"",'
                 '"data":{"code":null,"message":"Bad subscription string."}}',
                 "Bad subscription string.", '{"event":"bts:heartbeat","channel":"",'
                 '"data":{"status":"success"}}'),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_a_rejected_subscription_is_not_a_healthy_connection(case, sink, metrics) -> None:
    """The venue rejects the subscription and then only keeps the connection alive: the
    watchdog is fed, yet no data comes. The feed counts it, logs the venue's message once,
    and replaces the connection with a backoff that keeps growing."""
    venue, rejection, message, keepalive = REJECTIONS[case]
    subscribe_count = len(venue.subscribe_messages(venue.venue_symbols(["BTC-USD"]), []))
    steps: list[Step] = [rejection]
    for _ in range(60):
        steps += [0.05, keepalive]
    backoff = CountingBackoff()
    with structlog.testing.capture_logs() as logs, RecordedVenue(
            [Session(steps)] * 4, subscribe_count=subscribe_count,
            replies={"ping": "pong"}) as server:
        feed = Feed(venue, ["BTC-USD"], sink,
                    FeedOptions(url=server.url, backoff=backoff, watchdog_ms=300), metrics=metrics)
        asyncio.run(run_until(feed, lambda: feed.connections >= 3, timeout_s=8))

    name = venue.name
    assert server.connections >= 3
    assert errors(metrics, name, "venue_error") >= 2  # one rejection per connection
    assert errors(metrics, name, "subscription_rejected") >= 2
    assert errors(metrics, name, "silent") == 0  # the keepalives fed the watchdog
    assert backoff.attempts[:2] == [0, 1]  # a rejected session is not a healthy one
    [logged] = events(logs, "feed_subscription_rejected")
    assert logged["message"] == message and logged["exchange"] == name
    assert not sink.records


def test_a_venue_closing_after_its_rejection_gets_a_growing_backoff(sink, metrics) -> None:
    """Rejected, then closed by the venue (after its acks): still not a healthy session."""
    venue, rejection, message, keepalive = REJECTIONS["kraken"]
    subscribe_count = len(venue.subscribe_messages(venue.venue_symbols(["BTC-USD"]), []))
    backoff = CountingBackoff()
    with structlog.testing.capture_logs() as logs, RecordedVenue(
            [Session([keepalive, rejection], close=True)] * 5,
            subscribe_count=subscribe_count) as server:
        feed = Feed(venue, ["BTC-USD"], sink, FeedOptions(url=server.url, backoff=backoff),
                    metrics=metrics)
        asyncio.run(run_until(feed, lambda: len(backoff.attempts) >= 3))

    assert backoff.attempts[:3] == [0, 1, 2]
    assert errors(metrics, "kraken", "subscription_rejected") >= 3
    assert [e["message"] for e in events(logs, "feed_subscription_rejected")] == [message]


def test_data_after_a_rejection_keeps_the_connection(binance_frames, sink, metrics) -> None:
    """One market refused, the others deliver: reconnecting would stop what works."""
    rejection = REJECTIONS["binance"][1]
    tickers = [f.raw for f in binance_frames if binance_kind(f) == "bookTicker"][:40]
    steps: list[Step] = [rejection]
    for raw in tickers:
        steps += [0.02, raw]
    with RecordedVenue([Session(steps)]) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink,
                    FeedOptions(url=server.url, backoff=CountingBackoff(), watchdog_ms=300),
                    metrics=metrics)
        asyncio.run(run_until(
            feed, lambda: len(sink.of(Quote, refresh=False)) == len(tickers), timeout_s=8))

    assert feed.connections == server.connections == 1
    assert errors(metrics, "binance", "venue_error") == 1
    assert errors(metrics, "binance", "subscription_rejected") == 0


# --- the host clock steps -----------------------------------------------------------------

class SteppedClock:
    """The wall clock plus an offset the test moves: a host clock stepped by NTP."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return now_ts_ms() + self.offset_ms


def _clock_feed(url: str, sink: Any, metrics: Any, clock: Callable[[], int]) -> Feed:
    return Feed(binance.VENUE, ["BTC-USD"], sink,
                FeedOptions(url=url, refresh_ms=100, stale_ms=500, backoff=CountingBackoff()),
                metrics=metrics, clock_ms=clock)


def test_the_clock_stepping_back_and_forward_an_hour_mid_stream(binance_frames, sink,
                                                                metrics) -> None:
    """Frames every 200 ms, the quote refreshed every 100 ms: the clock steps back an hour,
    then forward again. Refreshes go on in every phase on the clock of that phase, with the
    quote's true age; nothing is called stale, the connection is kept."""
    steps = liveness_stream(binance_frames, frames=12, gap_s=0.2)  # 2.4 s of liveness
    clock = SteppedClock()
    phases: list[tuple[int, int]] = []  # (first, last) index of each phase's records

    with structlog.testing.capture_logs() as logs, RecordedVenue([Session(steps)]) as server:
        feed = _clock_feed(server.url, sink, metrics, clock)

        async def scenario() -> None:
            async with running(feed) as [task]:
                await until(lambda: len(sink.records) > 0)
                for offset_ms in (-HOUR_MS, 0):
                    await asyncio.sleep(0.6)
                    start = len(sink.records)
                    clock.offset_ms = offset_ms
                    await asyncio.sleep(0.6)
                    phases.append((start, len(sink.records)))
                assert task.done() is False

        asyncio.run(scenario())

    [quote] = sink.of(Quote, refresh=False)
    for (start, end), offset_ms in zip(phases, (-HOUR_MS, 0), strict=True):
        refreshes = [r for r in sink.records[start:end] if r.refresh]
        assert len(refreshes) >= 3, f"refreshes stopped after the step to {offset_ms}"
        for refresh in refreshes:
            assert refresh.bid == quote.bid and refresh.exchange_ts_ms == quote.exchange_ts_ms
            wall_ms = now_ts_ms() + offset_ms
            assert abs(refresh.ts_ms - wall_ms) < 60_000  # on the clock of its phase
            assert 0 <= refresh.ts_ms - refresh.recv_ts_ms < 10_000  # its true age
    assert feed.clock_jumps == 2 and errors(metrics, "binance", "clock_jump") == 2
    jumps = [e["jump_ms"] for e in events(logs, "feed_clock_jump")]
    assert len(jumps) == 2
    assert abs(jumps[0] + HOUR_MS) < 1000 and abs(jumps[1] - HOUR_MS) < 1000
    assert not events(logs, "feed_stale")
    assert feed.connections == server.connections == 1


def test_after_the_clock_steps_back_a_silent_venue_still_goes_stale(binance_frames, sink,
                                                                    metrics) -> None:
    """Back an hour, then the venue goes silent: its refreshes stop after ``stale_ms`` as
    always, instead of an hour later when the clock is past the old last-message time."""
    steps = liveness_stream(binance_frames, frames=6, gap_s=0.1)  # 0.6 s, then silence
    clock = SteppedClock()
    last_frame_ms: list[int] = []
    with structlog.testing.capture_logs() as logs, RecordedVenue([Session(steps)]) as server:
        feed = _clock_feed(server.url, sink, metrics, clock)

        async def scenario() -> None:
            async with running(feed):
                await until(lambda: len(sink.records) > 0)
                await asyncio.sleep(0.2)
                clock.offset_ms = -HOUR_MS
                await until(lambda: metrics.value(
                    "arb_feed_messages_total", exchange="binance", channel="depthUpdate") == 6)
                last_frame_ms.append(clock())
                await asyncio.sleep(1.2)  # silent for more than twice stale_ms

        asyncio.run(scenario())

    [stale] = events(logs, "feed_stale")
    assert 500 <= stale["silent_ms"] < 2000 and stale["connected"] is True
    stepped = [r for r in sink.of(Quote, refresh=True) if r.ts_ms < last_frame_ms[0] + HOUR_MS // 2]
    assert stepped, "no refresh on the stepped-back clock"
    assert max(r.ts_ms for r in stepped) < last_frame_ms[0] + 500 + 300  # stopped in time
    assert server.connections == 1


def test_json_of_the_rejections_is_valid() -> None:
    """The rejection frames above are the venues' JSON (a typo would test nothing)."""
    for _, rejection, _, keepalive in REJECTIONS.values():
        json.loads(rejection)
        if keepalive != "pong":
            json.loads(keepalive)
