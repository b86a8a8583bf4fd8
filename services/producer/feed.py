"""The one live feed loop every venue runs: connect, subscribe, read, parse, publish, refresh.

Venue knowledge stays in the connector (:class:`Venue`); this loop only knows WebSockets.
A dropped connection, a failed connect or a silent socket (no frame for ``watchdog_ms``) leads
to a reconnect after a capped exponential backoff with jitter; the backoff starts over once a
connection has delivered a usable frame. On every disconnect the venue's quotes are forgotten,
so they stop being refreshed and drop out of the detection windows. This loop owns the feed
metrics. Sequence-gap detection comes later.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from services.common.exceptions import RecordError
from services.common.logging import truncate
from services.common.messages import Quote
from services.producer.connector import Venue
from services.producer.metrics import ProducerMetrics, default_metrics
from services.producer.publisher import Sink
from services.producer.quote_book import QuoteBook

log = structlog.get_logger(__name__)


def wall_ms() -> int:
    """The local clock in epoch ms: the ``ts_ms``/``recv_ts_ms`` of every live record."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff; jitter spreads reconnects so venues are not hit in step."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    #: fraction of the delay that is randomised away (0 = none, 1 = anywhere in [0, delay])
    jitter: float = 0.5

    def delay_s(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        base_s = min(self.max_s, self.initial_s * self.factor ** max(0, attempt))
        return base_s * (1.0 - self.jitter * rand())


class Feed:
    """One venue's live connection, its quote book and its refresh timer."""

    def __init__(
        self,
        venue: Venue,
        symbols: Sequence[str],
        sink: Sink,
        *,
        url: str | None = None,
        fx_to_usd: float = 1.0,
        refresh_ms: int = 500,
        stale_ms: int = 2000,
        watchdog_ms: int = 10_000,
        open_timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        metrics: ProducerMetrics | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.venue = venue
        self.name = venue.name
        self.venue_symbols = venue.venue_symbols(symbols)
        self.symbol_map = venue.symbol_map(symbols)
        self.url = venue.connect_url(url or venue.ws_url, self.venue_symbols)
        self.sink = sink
        self.fx_to_usd = fx_to_usd
        self.watchdog_ms = watchdog_ms
        self.open_timeout_s = open_timeout_s
        self.backoff = backoff or Backoff()
        self.metrics = metrics or default_metrics()
        self.clock_ms = clock_ms
        self.book = QuoteBook(refresh_ms=refresh_ms, stale_ms=stale_ms)
        self.connected = False
        self.connections = 0
        self._healthy = False
        self._logged_reasons: set[str] = set()

    async def run(self) -> None:
        """Run until cancelled: the connection loop and the refresh timer side by side."""
        self.metrics.feed_connected.labels(self.name).set(0)
        refresher = asyncio.create_task(self._refresh_loop(), name=f"refresh-{self.name}")
        try:
            await self._connect_loop()
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            self._set_connected(False)

    async def _connect_loop(self) -> None:
        attempt = 0
        while True:
            self._healthy = False
            try:
                await self._session()
                reason = "silent"  # _read returns only when the watchdog fired
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = type(exc).__name__
                log.warning("feed_disconnected", exchange=self.name, error=str(exc)[:200])
            finally:
                self._set_connected(False)
                self.book.forget(self.name)
            if self._healthy:
                attempt = 0
            delay_s = self.backoff.delay_s(attempt)
            attempt += 1
            self.metrics.feed_reconnects.labels(self.name).inc()
            log.info("feed_reconnecting", exchange=self.name, reason=reason,
                     delay_s=round(delay_s, 3), attempt=attempt)
            await asyncio.sleep(delay_s)

    async def _session(self) -> None:
        """One connection: subscribe, then read until it drops or goes silent."""
        log.info("feed_connecting", exchange=self.name, url=self.url)
        async with connect(self.url, open_timeout=self.open_timeout_s, close_timeout=2.0,
                           max_size=2**22) as ws:
            try:
                for message in self.venue.subscribe_messages(self.venue_symbols):
                    await ws.send(message)
                self.connections += 1
                self._set_connected(True)
                log.info("feed_connected", exchange=self.name, symbols=self.venue_symbols)
                await self._read(ws)
            except asyncio.CancelledError:
                # Shutting down: with frames still queued the closing handshake would wait for
                # close_timeout, because a full receive queue stops reading the venue's reply.
                ws.transport.abort()
                raise

    async def _read(self, ws: ClientConnection) -> None:
        while True:
            try:
                # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation
                # that arrives while a frame is ready, and shutdown would then hang.
                async with asyncio.timeout(self.watchdog_ms / 1000):
                    raw = await ws.recv()
            except TimeoutError:
                self.metrics.feed_errors.labels(self.name, "silent").inc()
                log.warning("feed_silent", exchange=self.name, watchdog_ms=self.watchdog_ms)
                return
            self.on_frame(raw)

    def on_frame(self, raw: str | bytes) -> None:
        """Parse one frame and publish its records; a bad frame is counted, never fatal."""
        now_ms = self.clock_ms()
        self.metrics.feed_last_message.labels(self.name).set(now_ms / 1000)
        self.book.on_message(self.name, now_ms)
        try:
            kind, records = self.venue.parse_frame(
                raw, now_ms, symbol_map=self.symbol_map, fx_to_usd=self.fx_to_usd,
            )
        except RecordError as exc:
            self.metrics.feed_errors.labels(self.name, exc.reason).inc()
            if exc.reason not in self._logged_reasons:  # once per reason: no log floods
                self._logged_reasons.add(exc.reason)
                log.warning("feed_bad_frame", exchange=self.name, reason=exc.reason,
                            detail=exc.detail, raw=truncate(raw))
            return
        self._healthy = True
        self.metrics.feed_messages.labels(self.name, kind).inc()
        for rec in records:
            if rec.exchange_ts_ms is not None:
                latency_s = (rec.recv_ts_ms - rec.exchange_ts_ms) / 1000
                self.metrics.feed_latency.labels(self.name).observe(latency_s)
            if isinstance(rec, Quote):
                self.book.on_quote(rec)
                self.metrics.best_bid.labels(self.name, rec.symbol).set(rec.bid)
                self.metrics.best_ask.labels(self.name, rec.symbol).set(rec.ask)
            self.sink.publish(rec)

    async def _refresh_loop(self) -> None:
        """Re-publish unchanged quotes on time; sleeps to the next due refresh."""
        refresh_ms = self.book.refresh_ms
        while True:
            now_ms = self.clock_ms()
            for quote in self.book.due(now_ms):
                self.sink.publish(quote)
            next_ms = self.book.next_due_ms()
            wait_ms = refresh_ms if next_ms is None else min(refresh_ms, max(5, next_ms - now_ms))
            await asyncio.sleep(wait_ms / 1000)

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self.metrics.feed_connected.labels(self.name).set(1 if connected else 0)


async def run_feeds(feeds: Sequence[Feed], stop: asyncio.Event) -> None:
    """Run every feed until ``stop`` is set, then cancel them all."""
    tasks = [asyncio.create_task(f.run(), name=f"feed-{f.name}") for f in feeds]
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise task.exception()  # a bug, not a network problem: fail loudly
    finally:
        for task in [*tasks, stopper]:
            task.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
