"""The one live feed loop every venue runs: connect, subscribe, read, parse, publish, refresh.

Venue knowledge stays in the connector (:class:`Venue`); this loop only knows WebSockets:

- **Reconnect**: a dropped connection, a failed connect or a silent socket leads to a reconnect
  after a capped exponential backoff with jitter; the backoff starts over once a connection has
  delivered a usable frame. Every reconnect resubscribes. On every disconnect the venue's
  quotes (and any stablecoin rate it supplied) are forgotten, so they stop being refreshed and
  drop out of the detection windows.
- **Watchdog**: no usable frame (one that parses, heartbeats included) for ``watchdog_ms`` means
  the connection is dead even if TCP says otherwise: reconnect. Garbage does not feed it.
- **Pings**: WebSocket pings from the venue are answered by the websockets library while this
  loop reads; the client pings too and drops a connection whose pongs stop. A venue that wants
  an application-level ping (OKX) gets ``venue.ping_message`` after ``ping_after_s`` of quiet.
- **Planned reconnect**: a venue that closes old connections (Binance after 24 h) gets a
  replacement opened ``rollover_margin_s`` before that. Once the new connection delivers, the old
  one is still read for ``overlap_s`` and then closed; the new connection's frames of the
  overlap are mostly duplicates, dropped by the sequence check. No gap at all.
- **Sequence checks** (``sequence.py``): a jump in trade ids is counted and logged as
  ``sequence_gap``; a duplicate or older update is dropped.
- **Freshness**: while the venue is live (a usable frame within ``stale_ms``) each unchanged
  best bid/ask is re-published every ``refresh_ms`` (``refresh: true``); when it goes silent the
  refreshes stop and ``feed_stale`` is logged.

This loop owns the feed metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from services.common.backoff import Backoff
from services.common.clock import now_ts_ms
from services.common.exceptions import RecordError
from services.common.logging import truncate
from services.common.messages import Quote, Trade
from services.producer.connector import Venue
from services.producer.fx import FX_MARKETS, FxRates
from services.producer.metrics import ProducerMetrics, default_metrics
from services.producer.publisher import Sink
from services.producer.quote_book import QuoteBook
from services.producer.sequence import RESYNC, STALE, SequenceTracker

log = structlog.get_logger(__name__)

#: Errors that mean "this connection is gone"; anything else is a bug and fails loudly.
NETWORK_ERRORS = (OSError, TimeoutError, WebSocketException)
#: RecordError reasons that say nothing about the venue being alive (not one of its messages).
_NOT_VENUE_MESSAGE = frozenset({"not_json", "unknown_type"})
_DEFAULT = object()


class _SilentError(Exception):
    """The watchdog fired: nothing usable arrived for ``watchdog_ms``."""


class Feed:
    """One venue's live connection(s), its quote book and its refresh timer."""

    def __init__(
        self,
        venue: Venue,
        symbols: Sequence[str],
        sink: Sink,
        *,
        url: str | None = None,
        fx: FxRates | float = 1.0,
        rate_markets: Sequence[str] = (),
        refresh_ms: int = 500,
        stale_ms: int = 2000,
        watchdog_ms: int = 10_000,
        open_timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        metrics: ProducerMetrics | None = None,
        clock_ms: Callable[[], int] = now_ts_ms,
        max_connection_s: Any = _DEFAULT,
        rollover_margin_s: float = 600.0,
        overlap_s: float = 1.0,
        ping_after_s: Any = _DEFAULT,
    ) -> None:
        """``fx``: the shared live rates, or one fixed rate for every non-USD market.
        ``rate_markets``: canonical rate markets (USDT-USD ...) to subscribe where the venue lists
        them, quotes only, to feed ``fx``. ``max_connection_s``/``ping_after_s`` default to the
        venue's."""
        self.venue = venue
        self.name = venue.name
        self.venue_symbols = venue.venue_symbols(symbols)
        venue.check_markets(self.venue_symbols)
        self.symbol_map = venue.symbol_map(symbols)
        self.rate_only: list[str] = []
        for market in rate_markets:
            venue_symbol = venue.fx_symbols.get(market)
            if venue_symbol is not None and venue_symbol not in self.symbol_map:
                self.rate_only.append(venue_symbol)
                self.symbol_map[venue_symbol] = market
        #: canonical symbols read only for their rate, never published
        self._unpublished = {self.symbol_map[s] for s in self.rate_only}
        self.url = venue.connect_url(url or venue.ws_url, self.venue_symbols, self.rate_only)
        self.sink = sink
        self.fx = fx if isinstance(fx, FxRates) else None
        self._fixed_fx = None if isinstance(fx, FxRates) else float(fx)
        self.watchdog_ms = watchdog_ms
        self.open_timeout_s = open_timeout_s
        self.backoff = backoff or Backoff()
        self.metrics = metrics or default_metrics()
        self.clock_ms = clock_ms
        self.book = QuoteBook(refresh_ms=refresh_ms, stale_ms=stale_ms)
        self.seq = SequenceTracker()
        max_s = venue.max_connection_s if max_connection_s is _DEFAULT else max_connection_s
        #: open a replacement connection after this long (None: never)
        self.rollover_after_s = None if max_s is None else (
            max_s - rollover_margin_s if max_s > rollover_margin_s else max_s * 0.9)
        self.overlap_s = overlap_s
        ping_s = venue.ping_after_s if ping_after_s is _DEFAULT else ping_after_s
        #: the pong must be able to arrive before the watchdog gives up on a quiet market
        self.ping_after_s = None if ping_s is None or venue.ping_message is None else min(
            ping_s, watchdog_ms / 2000)
        self.connected = False
        self.connections = 0
        self.rollovers = 0
        self._healthy = False
        self._live = False
        self._ws: ClientConnection | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._logged_reasons: set[str] = set()
        m = self.metrics
        self._m_last = m.feed_last_message.labels(self.name)
        self._m_latency = m.feed_latency.labels(self.name)
        self._m_messages: dict[str, Any] = {}
        self._m_errors: dict[str, Any] = {}
        self._m_prices: dict[str, tuple[Any, Any]] = {}
        self._last_alive_ms: int | None = None

    # --- connection lifecycle -----------------------------------------------------------

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
            self.export_gauges()
            self._set_connected(False)
            for task in list(self._closing):
                task.cancel()

    async def _connect_loop(self) -> None:
        attempt = 0
        while True:
            self._healthy = False
            reason, detail = "closed", ""
            try:
                await self._session()
            except _SilentError:
                reason, detail = "silent", f"no usable frame for {self.watchdog_ms} ms"
            except NETWORK_ERRORS as exc:
                reason, detail = type(exc).__name__, str(exc)[:200]
            finally:
                if self._ws is not None:
                    self._ws.transport.abort()  # never wait on a connection we are leaving
                    self._ws = None
                was_connected = self.connected
                self._set_connected(False)
                self.export_gauges()  # the last prices before they are forgotten
                self.book.forget(self.name)
                if self.fx is not None:
                    self.fx.forget(self.name)
                self.seq.reset()
            log.warning("feed_disconnected" if was_connected else "feed_connect_failed",
                        exchange=self.name, reason=reason, detail=detail)
            if self._healthy:
                attempt = 0
            delay_s = self.backoff.delay_s(attempt)
            attempt += 1
            self.metrics.feed_reconnects.labels(self.name).inc()
            log.info("feed_reconnecting", exchange=self.name, reason=reason,
                     delay_s=round(delay_s, 3), attempt=attempt)
            await asyncio.sleep(delay_s)

    async def _open(self) -> ClientConnection:
        """Connect and subscribe (the venue's subscribe messages, if any)."""
        ws = await connect(self.url, open_timeout=self.open_timeout_s, close_timeout=2.0,
                           max_size=2**22, ping_interval=20.0, ping_timeout=20.0)
        try:
            for message in self.venue.subscribe_messages(self.venue_symbols, self.rate_only):
                await ws.send(message)
        except BaseException:
            ws.transport.abort()
            raise
        return ws

    async def _session(self) -> None:
        """One logical session: connect, then read until the link drops or goes silent.

        A planned rollover swaps the connection underneath without ending the session.
        """
        log.info("feed_connecting", exchange=self.name, url=self.url)
        self._ws = await self._open()
        self.connections += 1
        self._set_connected(True)
        log.info("feed_connected", exchange=self.name, symbols=self.venue_symbols,
                 rate_markets=self.rate_only)
        try:
            await self._read()
        except asyncio.CancelledError:
            # Shutting down: with frames still queued the closing handshake would wait for
            # close_timeout, because a full receive queue stops reading the venue's reply.
            if self._ws is not None:
                self._ws.transport.abort()
            raise

    async def _read(self) -> None:
        """Read the current connection; handles the watchdog, pings and planned rollovers."""
        clock = asyncio.get_running_loop().time
        ws = self._ws
        assert ws is not None  # noqa: S101 - set by _session
        watchdog_s = self.watchdog_ms / 1000
        now = clock()
        last_frame_s = last_usable_s = now
        pinged = False
        rollover_at = math.inf if self.rollover_after_s is None else now + self.rollover_after_s
        successor: asyncio.Task[tuple[ClientConnection, str | bytes]] | None = None
        ready: tuple[ClientConnection, str | bytes] | None = None
        switch_at = math.inf
        try:
            while True:
                now = clock()
                if successor is None and ready is None and now >= rollover_at:
                    log.info("feed_rollover_started", exchange=self.name,
                             connection_age_s=round(self.rollover_after_s or 0.0, 1))
                    successor = asyncio.create_task(self._open_successor(watchdog_s))
                if successor is not None and successor.done():
                    ready = self._successor_result(successor)
                    successor = None
                    if ready is None:  # try again later; the old connection still works
                        rollover_at = now + min(60.0, max(1.0, watchdog_s))
                    else:
                        switch_at = now + self.overlap_s
                if ready is not None and now >= switch_at:
                    ws, first = self._switch(ws, ready)
                    ready, switch_at = None, math.inf
                    if self.rollover_after_s is not None:
                        rollover_at = now + self.rollover_after_s
                    last_frame_s = last_usable_s = now
                    pinged = False
                    if first is not None and self.on_frame(first):
                        last_usable_s = clock()
                    continue
                wake = min(last_usable_s + watchdog_s, rollover_at, switch_at)
                if self.ping_after_s and not pinged:
                    wake = min(wake, last_frame_s + self.ping_after_s)
                if successor is not None:
                    wake = min(wake, now + 0.05)
                try:
                    async with asyncio.timeout(max(0.0, wake - now)):
                        raw = await ws.recv()
                except TimeoutError:
                    now = clock()
                    if now >= last_usable_s + watchdog_s:
                        self._count_error("silent")
                        log.warning("feed_silent", exchange=self.name,
                                    watchdog_ms=self.watchdog_ms)
                        raise _SilentError from None
                    if (self.ping_after_s and not pinged
                            and now >= last_frame_s + self.ping_after_s):
                        await ws.send(self.venue.ping_message or "")
                        pinged = True
                    continue
                except ConnectionClosed:
                    if ready is None:
                        raise
                    switch_at = 0.0  # the old one ended early: move to the new one now
                    continue
                last_frame_s = clock()
                pinged = False
                if self.on_frame(raw):
                    last_usable_s = last_frame_s
        finally:
            if successor is not None:
                if successor.done() and not successor.cancelled() and not successor.exception():
                    successor.result()[0].transport.abort()  # opened, never used
                else:
                    successor.cancel()
            if ready is not None:
                ready[0].transport.abort()

    async def _open_successor(self, timeout_s: float) -> tuple[ClientConnection, str | bytes]:
        """A replacement connection, subscribed, with its first frame (proof that it delivers)."""
        ws = await self._open()
        try:
            async with asyncio.timeout(timeout_s):
                first = await ws.recv()
        except BaseException:
            ws.transport.abort()
            raise
        return ws, first

    def _successor_result(
        self, task: asyncio.Task[tuple[ClientConnection, str | bytes]],
    ) -> tuple[ClientConnection, str | bytes] | None:
        exc = task.exception()
        if exc is None:
            return task.result()
        if not isinstance(exc, NETWORK_ERRORS):
            raise exc  # a bug, not a network problem
        log.warning("feed_rollover_failed", exchange=self.name, error=str(exc)[:200])
        return None

    def _switch(
        self, old: ClientConnection, ready: tuple[ClientConnection, str | bytes],
    ) -> tuple[ClientConnection, str | bytes]:
        """Make the successor current and close the old connection in the background."""
        new, first = ready
        self._ws = new
        self.connections += 1
        self.rollovers += 1
        self.metrics.feed_reconnects.labels(self.name).inc()
        log.info("feed_rolled_over", exchange=self.name, reason="max_connection_age",
                 overlap_s=self.overlap_s, connections=self.connections)
        task = asyncio.create_task(self._close(old))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return new, first

    @staticmethod
    async def _close(ws: ClientConnection) -> None:
        """Closing handshake for a retired connection. Its frames are read and discarded
        meanwhile: with reading paused (a full receive queue) the venue's close frame would
        never be seen and the handshake would last ``close_timeout``."""

        async def discard() -> None:
            with contextlib.suppress(*NETWORK_ERRORS):
                async for _ in ws:
                    pass

        drainer = asyncio.create_task(discard())
        try:
            await ws.close()
        except NETWORK_ERRORS:
            ws.transport.abort()
        except asyncio.CancelledError:
            ws.transport.abort()
            raise
        finally:
            drainer.cancel()

    # --- frames -------------------------------------------------------------------------

    def on_frame(self, raw: str | bytes) -> bool:
        """Parse one frame and publish its records; True if it was one of the venue's messages.

        A bad frame is counted by reason (logged once per reason), never fatal.
        """
        now_ms = self.clock_ms()
        fx = self._fixed_fx if self.fx is None else self.fx.table(now_ms)
        try:
            kind, records, seqs = self.venue.parse_frame(
                raw, now_ms, symbol_map=self.symbol_map, fx_to_usd=fx,
            )
        except RecordError as exc:
            self._count_error(exc.reason)
            if exc.reason not in self._logged_reasons:  # once per reason: no log floods
                self._logged_reasons.add(exc.reason)
                log.warning("feed_bad_frame", exchange=self.name, reason=exc.reason,
                            detail=exc.detail, raw=truncate(raw))
            if exc.reason in _NOT_VENUE_MESSAGE:
                return False
            self._alive(now_ms)
            return True
        self._healthy = True
        self._alive(now_ms)
        counter = self._m_messages.get(kind)
        if counter is None:
            counter = self._m_messages[kind] = self.metrics.feed_messages.labels(self.name, kind)
        counter.inc()
        for index, rec in enumerate(records):
            if seqs is not None and (span := seqs[index]) is not None and not self._in_sequence(
                    rec, span):
                continue
            if rec.symbol in FX_MARKETS and self.fx is not None and rec.__class__ is Quote:
                try:
                    self.fx.on_quote(rec)
                except RecordError as exc:
                    self._count_error(exc.reason)
                    continue
            if rec.symbol in self._unpublished:
                continue
            if rec.exchange_ts_ms is not None:
                self._m_latency.observe((rec.recv_ts_ms - rec.exchange_ts_ms) / 1000)
            if rec.__class__ is Quote:
                self.book.on_quote(rec)
            self.sink.publish(rec)
        return True

    def _alive(self, now_ms: int) -> None:
        self._last_alive_ms = now_ms
        self.book.on_message(self.name, now_ms)

    def export_gauges(self) -> None:
        """Last-message time and best prices to their gauges: from the refresh timer (at least
        every ``refresh_ms``) rather than per frame, which would cost more than the parsing."""
        if self._last_alive_ms is not None:
            self._m_last.set(self._last_alive_ms / 1000)
        for quote in self.book.quotes(self.name):
            gauges = self._m_prices.get(quote.symbol)
            if gauges is None:
                gauges = self._m_prices[quote.symbol] = (
                    self.metrics.best_bid.labels(self.name, quote.symbol),
                    self.metrics.best_ask.labels(self.name, quote.symbol))
            gauges[0].set(quote.bid)
            gauges[1].set(quote.ask)

    def _in_sequence(self, rec: Quote | Trade, span: tuple[int, int]) -> bool:
        """Check the venue's numbers; False drops the record (a duplicate or older update)."""
        is_trade = rec.__class__ is Trade
        key = (rec.type, rec.venue_symbol)
        prev = self.seq.last(key)
        outcome = self.seq.check(key, span[0], span[1], dense=is_trade)
        if outcome == 0:
            return True
        if outcome > 0:
            self._count_error("sequence_gap")
            log.warning("feed_sequence_gap", exchange=self.name, stream=rec.type,
                        symbol=rec.venue_symbol, after=prev, next=span[0], missing=outcome)
            return True
        if outcome == STALE:
            self._count_error("duplicate" if is_trade or span[1] == prev else "out_of_order")
            return False
        if outcome == RESYNC:
            log.warning("feed_sequence_restarted", exchange=self.name, stream=rec.type,
                        symbol=rec.venue_symbol, was=prev, now=span[1])
        return True

    def _count_error(self, reason: str) -> None:
        counter = self._m_errors.get(reason)
        if counter is None:
            counter = self._m_errors[reason] = self.metrics.feed_errors.labels(self.name, reason)
        counter.inc()

    # --- refresh ------------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        """Re-publish unchanged quotes on time; sleeps to the next due refresh."""
        refresh_ms = self.book.refresh_ms
        while True:
            now_ms = self.clock_ms()
            for quote in self.book.due(now_ms):
                self.sink.publish(quote)
            self._check_stale(now_ms)
            self.export_gauges()
            next_ms = self.book.next_due_ms()
            wait_ms = refresh_ms if next_ms is None else min(refresh_ms, max(5, next_ms - now_ms))
            await asyncio.sleep(wait_ms / 1000)

    def _check_stale(self, now_ms: int) -> None:
        """Log when the venue goes quiet past ``stale_ms`` (quotes stop) and when it is back."""
        live = self.book.is_live(self.name, now_ms)
        if live == self._live:
            return
        self._live = live
        last_ms = self.book.last_message_ms(self.name)
        if live:
            log.info("feed_fresh", exchange=self.name)
        elif last_ms is not None:
            log.warning("feed_stale", exchange=self.name, silent_ms=now_ms - last_ms,
                        stale_ms=self.book.stale_ms, connected=self.connected)

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
