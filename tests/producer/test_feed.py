"""Live feed loop against a local WebSocket server that sends recorded frames verbatim."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from services.common.kafka import ensure_topics
from services.common.messages import Quote, Trade, parse_price_record
from services.producer import binance, coinbase
from services.producer.feed import Backoff, Feed
from tests.producer.conftest import binance_kind, coinbase_msg
from tests.producer.test_replay import consume_all

REPO = Path(__file__).resolve().parents[2]
Step = str | float  # a frame to send verbatim, or seconds to pause


@dataclass
class Session:
    steps: list[Step]
    #: close the connection after the steps (a drop); otherwise keep it open and quiet
    close: bool = False


@dataclass
class RecordedVenue:
    """A local server in its own thread; connection ``i`` plays ``sessions[i]``."""

    sessions: list[Session]
    subscribe_count: int = 0
    paths: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    connections: int = 0

    def __enter__(self) -> RecordedVenue:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(5), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def _handler(self, ws: ServerConnection) -> None:
        index = self.connections
        self.connections += 1
        self.paths.append(ws.request.path)
        for _ in range(self.subscribe_count):
            self.received.append(await ws.recv())
        session = self.sessions[index] if index < len(self.sessions) else Session([])
        try:
            for step in session.steps:
                if isinstance(step, float):
                    await asyncio.sleep(step)
                else:
                    await ws.send(step)
        except ConnectionClosed:  # the client went away mid-session (test shutdown)
            return
        if session.close:
            await ws.close(code=1011, reason="test drop")
        else:
            await ws.wait_closed()


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def run_until(feed: Feed, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Run the feed until ``condition`` holds, then cancel it like a shutdown would."""
    task = asyncio.create_task(feed.run())
    try:
        await until(condition, timeout_s)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class CountingBackoff(Backoff):
    """Records which attempt numbers were asked for; tiny delays keep tests fast."""

    def __init__(self) -> None:
        super().__init__(initial_s=0.01, max_s=0.05)
        object.__setattr__(self, "attempts", [])

    def delay_s(self, attempt: int, rand: Callable[[], float] = lambda: 0.5) -> float:
        self.attempts.append(attempt)
        return super().delay_s(attempt, rand)


def expected_binance(frames) -> tuple[int, int]:
    kinds = [binance_kind(f) for f in frames]
    return kinds.count("bookTicker"), kinds.count("trade")


# --- backoff ------------------------------------------------------------------------------

def test_backoff_is_exponential_capped_and_jittered() -> None:
    backoff = Backoff(initial_s=0.5, max_s=4.0, factor=2.0, jitter=0.5)

    no_jitter = [backoff.delay_s(n, rand=lambda: 0.0) for n in range(6)]
    full_jitter = [backoff.delay_s(n, rand=lambda: 1.0) for n in range(6)]

    assert no_jitter == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert full_jitter == [d / 2 for d in no_jitter]


# --- live feed against recorded frames ----------------------------------------------------

def test_binance_feed_publishes_recorded_frames(binance_frames, sink, metrics) -> None:
    frames = binance_frames[:300]
    n_quotes, n_trades = expected_binance(frames)

    with RecordedVenue([Session([f.raw for f in frames])]) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink, url=server.url, fx_to_usd=1.0003,
                    metrics=metrics)
        asyncio.run(run_until(feed, lambda: len(sink.records) >= n_quotes + n_trades))

    assert server.paths == ["/stream?streams=btcusdt@bookTicker/btcusdt@trade"]
    quotes = sink.of(Quote, refresh=False)
    assert len(quotes) == n_quotes and len(sink.of(Trade)) == n_trades
    first = json.loads(next(f.raw for f in frames if binance_kind(f) == "bookTicker"))["data"]
    assert quotes[0].bid == pytest.approx(float(first["b"]) * 1.0003)
    assert quotes[0].fx_to_usd == 1.0003 and quotes[0].quote_ccy == "USDT"
    assert all(abs(q.recv_ts_ms - time.time() * 1000) < 60_000 for q in quotes)  # local clock
    assert metrics.value("arb_feed_messages_total", exchange="binance",
                         channel="bookTicker") == n_quotes
    assert metrics.value("arb_feed_messages_total", exchange="binance", channel="trade") == n_trades
    assert metrics.value("arb_feed_latency_seconds_count", exchange="binance") == n_trades
    assert metrics.value("arb_best_ask_usd", exchange="binance", symbol="BTC-USD") > 0
    assert metrics.value("arb_feed_last_message_timestamp_seconds", exchange="binance") > 0
    assert metrics.value("arb_feed_connected", exchange="binance") == 0  # after shutdown


def test_coinbase_feed_subscribes_and_publishes(coinbase_frames, sink, metrics) -> None:
    # The recording has SKL-USD, not BTC-USD: map it like the replay does
    venue = replace(coinbase.VENUE, symbols={"BTC-USD": "SKL-USD"})
    msgs = [coinbase_msg(f) for f in coinbase_frames]
    data = [m for m in msgs if m["type"] in {"ticker", "match", "last_match"}]
    wanted = [m for m in data if m["product_id"] == "SKL-USD"]
    others = len(data) - len(wanted)

    with RecordedVenue([Session([f.raw for f in coinbase_frames])], subscribe_count=3) as server:
        feed = Feed(venue, ["BTC-USD"], sink, url=server.url, metrics=metrics)
        asyncio.run(run_until(feed, lambda: len(sink.records) >= len(wanted)
                              and feed.connections == 1
                              and metrics.value("arb_feed_errors_total", exchange="coinbase",
                                                reason="unknown_symbol") == others))

    subscribes = [json.loads(m) for m in server.received]
    assert [s["channels"] for s in subscribes] == [[ch] for ch in coinbase.CHANNELS]
    assert all(s["product_ids"] == ["SKL-USD"] for s in subscribes)
    assert server.paths == ["/"]
    assert len(sink.of(Quote, refresh=False)) + len(sink.of(Trade)) == len(wanted)
    assert {r.symbol for r in sink.records} == {"BTC-USD"}
    assert len(sink.of(Trade)) == sum(m["type"] != "ticker" for m in wanted)


def test_dropped_connection_reconnects(binance_frames, sink, metrics) -> None:
    first, second = binance_frames[:100], binance_frames[100:200]
    n_quotes, n_trades = expected_binance(binance_frames[:200])
    backoff = CountingBackoff()

    sessions = [Session([f.raw for f in first], close=True), Session([f.raw for f in second])]
    with RecordedVenue(sessions) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink, url=server.url, backoff=backoff,
                    metrics=metrics)
        asyncio.run(run_until(feed, lambda: len(sink.records) >= n_quotes + n_trades))

    assert server.connections == feed.connections == 2
    assert metrics.value("arb_feed_reconnects_total", exchange="binance") == 1
    assert backoff.attempts == [0]
    assert len(sink.of(Quote, refresh=False)) == n_quotes and len(sink.of(Trade)) == n_trades


def test_backoff_grows_while_connects_fail_and_resets_after_data(binance_frames, sink,
                                                                 metrics) -> None:
    backoff = CountingBackoff()
    # nothing listens on this port: every attempt fails
    with RecordedVenue([]) as probe:
        dead_url = probe.url
    feed = Feed(binance.VENUE, ["BTC-USD"], sink, url=dead_url, backoff=backoff, metrics=metrics)

    asyncio.run(run_until(feed, lambda: len(backoff.attempts) >= 4))

    assert backoff.attempts[:4] == [0, 1, 2, 3]
    assert metrics.value("arb_feed_reconnects_total", exchange="binance") >= 4

    # a connection that delivered data resets the backoff
    healthy = CountingBackoff()
    frames = [f.raw for f in binance_frames[:5]]
    sessions = [Session(frames, close=True), Session(frames, close=True), Session(frames)]
    with RecordedVenue(sessions) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink, url=server.url, backoff=healthy,
                    metrics=metrics)
        asyncio.run(run_until(feed, lambda: feed.connections == 3))
    assert healthy.attempts == [0, 0]


def test_silent_connection_trips_the_watchdog(sink, metrics) -> None:
    with RecordedVenue([Session([]), Session([])]) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink, url=server.url, watchdog_ms=200,
                    backoff=CountingBackoff(), metrics=metrics)
        asyncio.run(run_until(feed, lambda: feed.connections >= 2))

    assert metrics.value("arb_feed_errors_total", exchange="binance", reason="silent") >= 1
    assert metrics.value("arb_feed_reconnects_total", exchange="binance") >= 1


def test_bad_frame_is_counted_and_the_loop_goes_on(binance_frames, sink, metrics) -> None:
    ticker = next(f.raw for f in binance_frames if binance_kind(f) == "bookTicker")
    crossed = json.loads(ticker)
    crossed["data"]["b"] = "99999999.0"
    steps = ["garbage{", json.dumps(crossed), ticker]

    with RecordedVenue([Session(steps)]) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink, url=server.url, metrics=metrics)
        asyncio.run(run_until(feed, lambda: len(sink.records) == 1))

    assert metrics.value("arb_feed_errors_total", exchange="binance", reason="not_json") == 1
    assert metrics.value("arb_feed_errors_total", exchange="binance", reason="crossed_book") == 1
    assert feed.connections == 1


def test_refresh_while_live_then_silence_stops_it(binance_frames, sink, metrics) -> None:
    ticker = next(f.raw for f in binance_frames if binance_kind(f) == "bookTicker")
    depth = next(f.raw for f in binance_frames if binance_kind(f) == "depth@100ms")
    # one quote, then only depth frames (liveness, no quote) for 0.6 s, then silence
    steps: list[Step] = [ticker]
    for _ in range(12):
        steps += [0.05, depth]

    with RecordedVenue([Session(steps)]) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink, url=server.url, refresh_ms=100,
                    stale_ms=300, metrics=metrics)

        async def scenario() -> None:
            task = asyncio.create_task(feed.run())
            try:
                await until(lambda: metrics.value(
                    "arb_feed_messages_total", exchange="binance", channel="depthUpdate") == 12)
                last_frame_ms = feed.book.last_message_ms("binance")
                await asyncio.sleep(0.6)  # silent for twice stale_ms
                assert feed.connected
                refreshes = sink.of(Quote, refresh=True)
                assert len(refreshes) >= 4
                assert max(q.ts_ms for q in refreshes) < last_frame_ms + 300
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        asyncio.run(scenario())

    [quote] = sink.of(Quote, refresh=False)
    for refresh in sink.of(Quote, refresh=True):
        assert refresh.recv_ts_ms == quote.recv_ts_ms and refresh.bid == quote.bid
        assert refresh.ts_ms > quote.recv_ts_ms


@pytest.mark.integration
def test_live_mode_publishes_to_kafka_via_url_override(broker, binance_frames, unique) -> None:
    frames = binance_frames[:300]
    n_quotes, n_trades = expected_binance(frames)
    topic = f"crypto-prices-{unique}"
    ensure_topics(broker.bootstrap_servers, [topic], partitions=1)

    with RecordedVenue([Session([f.raw for f in frames])]) as server:
        env = os.environ | {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "ARB_PRICES_TOPIC": topic,
            "ARB_VENUES": "binance",
            "ARB_SYMBOLS": "BTC-USD",
            "ARB_BINANCE_WS_URL": server.url,
            "ARB_PRODUCER_METRICS_PORT": "0",
            "ARB_QUOTE_REFRESH_MS": "60000",  # no refresh records in this count
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.producer", "live"], cwd=REPO, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            messages = consume_all(broker.bootstrap_servers, topic, n_quotes + n_trades)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)

    assert proc.returncode == 0, stderr[-2000:]
    assert server.paths == ["/stream?streams=btcusdt@bookTicker/btcusdt@trade"]
    records = [parse_price_record(m.value()) for m in messages]
    assert sum(isinstance(r, Quote) for r in records) == n_quotes
    assert sum(isinstance(r, Trade) for r in records) == n_trades
    assert {m.key() for m in messages} == {b"BTC-USD"}
