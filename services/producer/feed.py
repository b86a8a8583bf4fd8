"""The one live feed loop every venue runs: connect, subscribe, read, reconnect, refresh.

Venue knowledge stays in the connector (:class:`Venue`) and what a frame means in the frame
processor (``processor.py``: parse, sequence, fx, quote book, metrics); this loop only knows
WebSockets and time, and hands every frame on:

- **Reconnect**: a dropped connection, a failed connect or a silent socket leads to a reconnect
  after a capped exponential backoff with jitter; the backoff starts over once a connection has
  delivered a usable frame. Every reconnect resubscribes. On every disconnect the processor
  forgets the venue's quotes (and any stablecoin rate it supplied), so they stop being refreshed
  and drop out of the detection windows, and its sequence numbers, which start over.
- **Refused**: an upgrade answered with HTTP 401, 403 or 451 is counted ``refused`` and backs
  off to the maximum at once (retrying soon cannot help); 429 (and Binance's 418) is
  ``rate_limited`` and waits at least its Retry-After (seconds or an HTTP date, at most
  ``retry_after_max_s``); any other status is ``http_error`` with the usual backoff. Each is
  logged once per outage (``feed_refused``, with the status), until a connection delivers.
- **Rejected subscription**: a venue's error answer (``venue_error``: we send only
  subscriptions and pings) must be followed by data within ``watchdog_ms``, or the connection
  is replaced, counted ``subscription_rejected``, with a backoff that keeps growing (a rejected
  session is not a healthy one, whatever acks or heartbeats it had): heartbeats would
  otherwise keep a connection that delivers nothing looking connected forever. Data after the
  rejection (one market of several refused) keeps the connection. Logged once per outage with
  the venue's message (``feed_subscription_rejected``).
- **Clock steps**: receive times come from ``clock_ms`` (the wall clock), checked on every
  reading against the monotonic clock; a step of ``clock_jump_ms`` or more is counted
  (``clock_jump``), logged, and the times of the quote book and of the fx rates this venue
  gives move with it, so silence, refresh and rate-age deadlines keep their true length. The
  watchdog, pings, rollovers, backoff and snapshot pacing run on the event loop's monotonic
  clock and never see a step.
- **Watchdog**: no usable frame (one of the venue's messages, heartbeats included) for
  ``watchdog_ms`` means the connection is dead even if TCP says otherwise: reconnect. Garbage
  does not feed it.
- **Pings**: WebSocket pings from the venue are answered by the websockets library while this
  loop reads; the client pings too and drops a connection whose pongs stop. A venue that wants
  an application-level ping (OKX) gets ``venue.ping_message`` after ``ping_after_s`` of quiet;
  one that wants it on a schedule whatever the traffic (Bybit) also every ``ping_every_s``.
- **Planned reconnect**: a venue that closes old connections (Binance after 24 h) gets a
  replacement opened ``rollover_margin_s`` before that; so does a venue that asks for a new
  connection (a frame of one of ``venue.reconnect_kinds``: Bitstamp's maintenance notice), at
  once. Once the new connection delivers, the old
  one is still read for ``overlap_s`` and then closed; the new connection's frames of the
  overlap are mostly duplicates, dropped by the processor's sequence check. No gap at all.
- **Freshness**: while the venue is live (a usable frame within ``stale_ms``) each unchanged
  best bid/ask is re-published every ``refresh_ms`` (``refresh: true``); when it goes silent the
  refreshes stop and ``feed_stale`` is logged.
- **Books**: a venue with a depth channel (``Venue.depth``) gets it subscribed for its
  markets, and what the processor's books ask for is done here: ``snapshot`` fetches the
  venue's REST snapshot (requests, in a worker thread, with a timeout; a failure is counted as
  ``snapshot_failed`` and retried with backoff; one fetch per market at a time, at most one per
  ``snapshot_min_interval_s``) and hands the body to the processor; ``resubscribe`` sends the
  venue's resubscribe frames for that market, or, where it has none, starts a rollover. A lost
  connection resets the books (the processor forgets them) and cancels pending fetches.
- **Tap**: ``tap``, if given, sees every frame before the processor does (record mode), and
  ``rest_tap`` every REST snapshot fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import requests
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from services.common.backoff import Backoff
from services.common.clock import now_ts_ms
from services.common.exceptions import RecordError
from services.common.logging import truncate
from services.producer.connector import Venue
from services.producer.fx import FxRates
from services.producer.metrics import ProducerMetrics, default_metrics
from services.producer.processor import BookAction, FrameProcessor, Outcome
from services.producer.publisher import Sink
from services.producer.quote_book import QuoteBook

log = structlog.get_logger(__name__)
_monotonic_ns = time.monotonic_ns

#: Errors that mean "this connection is gone"; anything else is a bug and fails loudly.
NETWORK_ERRORS = (OSError, TimeoutError, WebSocketException)
#: Disconnect reasons that repeat while an outage lasts: logged once until data flows again.
OUTAGE_REASONS = frozenset({"refused", "rate_limited", "http_error", "subscription_rejected"})
#: An option left to the venue's own value (``Venue.max_connection_s``, ``ping_after_s``).
VENUE_DEFAULT: Literal["venue"] = "venue"

#: Sees every raw frame of a feed before it is processed (record mode writes it to a file).
FrameTap = Callable[[str | bytes], None]
#: Sees every REST snapshot a feed fetched, ``(url, body)`` (record mode writes it down).
RestTap = Callable[[str, str], None]
_Opened = tuple[ClientConnection, str | bytes]


#: HTTP statuses answering the upgrade that mean "not you, not now": retrying soon cannot help
REFUSED_STATUSES = frozenset({401, 403, 451})
#: HTTP statuses that mean "too many requests" (Binance answers 418 once it bans an IP)
RATE_LIMITED_STATUSES = frozenset({418, 429})


class _SilentError(Exception):
    """The watchdog fired: nothing usable arrived for ``watchdog_ms``."""


class _RejectedError(Exception):
    """The venue rejected a subscription and the connection delivered no data after it."""


@dataclass(frozen=True)
class FeedOptions:
    """How one venue's feed connects, keeps its connection and refreshes its quotes."""

    #: base URL; None: the venue's own
    url: str | None = None
    #: canonical rate markets (USDT-USD ...) to read, quotes only, where the venue lists them
    rate_markets: tuple[str, ...] = ()
    refresh_ms: int = 500
    stale_ms: int = 2000
    watchdog_ms: int = 10_000
    open_timeout_s: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    #: the venue closes connections older than this; None: never
    max_connection_s: float | Literal["venue"] | None = VENUE_DEFAULT
    rollover_margin_s: float = 600.0
    overlap_s: float = 1.0
    #: an application-level ping after this much quiet; None: never
    ping_after_s: float | Literal["venue"] | None = VENUE_DEFAULT
    #: an application-level ping this often, even while frames arrive; None: never
    ping_every_s: float | Literal["venue"] | None = VENUE_DEFAULT
    #: the depth ladder's sizes (ARB_DEPTH_NOTIONALS_USD); (): no books, top of book only
    depth_notionals_usd: tuple[float, ...] = ()
    #: levels kept per side of each book (ARB_BOOK_LEVELS)
    book_levels: int = 100
    #: REST base URL for book snapshots; None: the venue's own (ARB_<VENUE>_REST_URL)
    rest_url: str | None = None
    snapshot_timeout_s: float = 10.0
    #: at most one snapshot fetch per market this often (Binance weighs them)
    snapshot_min_interval_s: float = 1.0
    snapshot_backoff: Backoff = field(default_factory=Backoff)
    #: a venue's Retry-After (HTTP 429) is honoured up to this long
    retry_after_max_s: float = 3600.0
    #: the receive clock moving this much more or less than the monotonic clock is a jump
    clock_jump_ms: int = 1000


class Feed:
    """One venue's live connection(s), its frame processor and its refresh timer."""

    def __init__(
        self,
        venue: Venue,
        symbols: Sequence[str],
        sink: Sink,
        options: FeedOptions | None = None,
        *,
        fx: FxRates | float = 1.0,
        metrics: ProducerMetrics | None = None,
        clock_ms: Callable[[], int] = now_ts_ms,
        tap: FrameTap | None = None,
        rest_tap: RestTap | None = None,
    ) -> None:
        """``fx``: the live rates shared by every feed, or one fixed rate for every non-USD
        market. ``clock_ms``: the receive clock, epoch ms."""
        options = options or FeedOptions()
        self.venue = venue
        self.name = venue.name
        self.options = options
        self.venue_symbols = venue.venue_symbols(symbols)
        venue.check_markets(self.venue_symbols)
        symbol_map = venue.symbol_map(symbols)
        self.rate_only: list[str] = []
        for market in options.rate_markets:
            venue_symbol = venue.fx_symbols.get(market)
            if venue_symbol is not None and venue_symbol not in symbol_map:
                self.rate_only.append(venue_symbol)
                symbol_map[venue_symbol] = market
        self.url = venue.connect_url(options.url or venue.ws_url, self.venue_symbols,
                                     self.rate_only)
        self.sink = sink
        self.metrics = metrics or default_metrics()
        self.feed_metrics = self.metrics.feed(self.name)
        self.processor = FrameProcessor(
            venue, symbol_map, fx=fx, counts=self.feed_metrics,
            book=QuoteBook(refresh_ms=options.refresh_ms, stale_ms=options.stale_ms),
            unpublished={symbol_map[s] for s in self.rate_only},
            depth_notionals_usd=options.depth_notionals_usd, book_levels=options.book_levels,
            book_counts=(self.metrics.book(self.name)
                         if venue.depth is not None and options.depth_notionals_usd else None),
        )
        self.depth = self.processor.depth
        self.rest_url = options.rest_url or (self.depth.rest_url if self.depth else "")
        self.rest_tap = rest_tap
        #: venue symbol -> its snapshot fetch under way
        self._fetches: dict[str, asyncio.Task[None]] = {}
        #: venue symbol -> event-loop time before which no new fetch starts
        self._next_fetch_s: dict[str, float] = {}
        self.snapshots_fetched = 0
        self.snapshot_failures = 0
        self.resubscribes = 0
        self.clock_ms = clock_ms
        #: receive clock minus monotonic clock at the last reading (jump detection)
        self._skew_ms = 0
        self._skew_known = False
        self._jump_ms = options.clock_jump_ms
        self.clock_jumps = 0
        self.tap = tap
        self.backoff = options.backoff
        self.watchdog_ms = options.watchdog_ms
        max_s = (venue.max_connection_s if options.max_connection_s == VENUE_DEFAULT
                 else options.max_connection_s)
        margin_s = options.rollover_margin_s
        #: open a replacement connection after this long (None: never)
        self.rollover_after_s = None if max_s is None else (
            max_s - margin_s if max_s > margin_s else max_s * 0.9)
        ping_s = venue.ping_after_s if options.ping_after_s == VENUE_DEFAULT else (
            options.ping_after_s)
        #: the pong must be able to arrive before the watchdog gives up on a quiet market
        self.ping_after_s = None if ping_s is None or venue.ping_message is None else min(
            ping_s, options.watchdog_ms / 2000)
        every_s = venue.ping_every_s if options.ping_every_s == VENUE_DEFAULT else (
            options.ping_every_s)
        self.ping_every_s = None if venue.ping_message is None else every_s
        #: a frame asked for a new connection (``venue.reconnect_kinds``); the read loop acts
        self._reconnect_asked = False
        #: event-loop time of a rejection no data has followed yet on this connection
        self._rejected_s: float | None = None
        self.connected = False
        self.connections = 0
        self.rollovers = 0
        self._healthy = False
        self._live = False
        self._ws: ClientConnection | None = None
        self._closing: set[asyncio.Task[None]] = set()
        #: the reasons already logged since the last connection that delivered (one log each)
        self._outage: set[str] = set()
        #: the first backoff attempt whose delay is the maximum (a refused upgrade jumps there)
        self._attempt_at_max = _attempt_at_max(options.backoff)

    @property
    def fx(self) -> FxRates | None:
        """The live rates this feed reads and feeds (None with a fixed rate)."""
        return self.processor.fx

    @property
    def book(self) -> QuoteBook:
        return self.processor.book

    # --- connection lifecycle -----------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled: the connection loop and the refresh timer side by side."""
        self.feed_metrics.connected(False)
        refresher = asyncio.create_task(self._refresh_loop(), name=f"refresh-{self.name}")
        try:
            await self._connect_loop()
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            self.export_gauges()
            self._set_connected(False)
            self._cancel_fetches()
            for task in list(self._closing):
                task.cancel()

    async def _connect_loop(self) -> None:
        attempt = 0
        while True:
            self._healthy = False
            self._rejected_s = None
            reason, detail = "closed", ""
            wait_at_least_s = 0.0
            try:
                await self._session()
            except _SilentError:
                reason, detail = "silent", f"no usable frame for {self.watchdog_ms} ms"
            except _RejectedError as exc:
                reason, detail = "subscription_rejected", str(exc)
            except InvalidStatus as exc:
                reason, detail, wait_at_least_s = self._refused(exc)
                if reason == "refused":
                    attempt = max(attempt, self._attempt_at_max)
            except NETWORK_ERRORS as exc:
                reason, detail = type(exc).__name__, str(exc)[:200]
            finally:
                if self._ws is not None:
                    self._ws.transport.abort()  # never wait on a connection we are leaving
                    self._ws = None
                was_connected = self.connected
                self._set_connected(False)
                self.export_gauges()  # the last prices before they are forgotten
                self._cancel_fetches()
                self.processor.forget()
            rejected = self._rejected_s is not None  # and no data came after it
            if rejected:
                self.feed_metrics.error("subscription_rejected")
            elif self._healthy:
                attempt = 0
                self._outage.clear()
            if reason not in OUTAGE_REASONS and not rejected:  # those log once per outage
                log.warning("feed_disconnected" if was_connected else "feed_connect_failed",
                            exchange=self.name, reason=reason, detail=detail)
            delay_s = max(self.backoff.delay_s(attempt), wait_at_least_s)
            attempt += 1
            self.feed_metrics.reconnect()
            log.info("feed_reconnecting", exchange=self.name, reason=reason,
                     delay_s=round(delay_s, 3), attempt=attempt)
            await asyncio.sleep(delay_s)

    def _refused(self, exc: InvalidStatus) -> tuple[str, str, float]:
        """The venue answered the upgrade with an HTTP error: ``(reason, detail, wait_s)``.

        429 (or Binance's 418) is ``rate_limited`` and its Retry-After is waited out; 401, 403
        and 451 are ``refused`` (the caller backs off to the maximum at once); any other
        status is ``http_error`` with the usual backoff. Counted, and logged once per outage.
        """
        status = exc.response.status_code
        retry_after_s = None
        if status in RATE_LIMITED_STATUSES:
            reason = "rate_limited"
            retry_after_s = retry_after(exc.response.headers.get("Retry-After"), time.time())
        elif status in REFUSED_STATUSES:
            reason = "refused"
        else:
            reason = "http_error"
        self.feed_metrics.error(reason)
        wait_s = min(retry_after_s or 0.0, self.options.retry_after_max_s)
        if reason not in self._outage:
            self._outage.add(reason)
            log.warning("feed_refused", exchange=self.name, reason=reason, status=status,
                        retry_after_s=retry_after_s,
                        note="logged once per outage; counted in arb_feed_errors_total")
        return reason, f"HTTP {status}", wait_s

    async def _open(self) -> ClientConnection:
        """Connect and subscribe (the venue's subscribe messages, if any)."""
        ws = await connect(self.url, open_timeout=self.options.open_timeout_s, close_timeout=2.0,
                           max_size=2**22, ping_interval=20.0, ping_timeout=20.0)
        try:
            for message in self.venue.subscribe_messages(self.venue_symbols, self.rate_only):
                await ws.send(message)
            if self.depth is not None:
                for message in self.depth.subscribe(self.venue_symbols, self.options.book_levels):
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
        """Read the current connection, frame by frame, until it fails or goes silent; the
        watchdog and ping timers and the planned rollover each keep their own state."""
        clock = asyncio.get_running_loop().time
        ws = self._ws
        assert ws is not None  # noqa: S101 - set by _session
        now = clock()
        timers = _Timers(now, self.watchdog_ms / 1000, self.ping_after_s, self.ping_every_s)
        rollover = _Rollover(self, now)
        self._reconnect_asked = False
        self._rejected_s = None
        grace_s = self.watchdog_ms / 1000
        try:
            while True:
                now = clock()
                if self._rejected_s is not None and now >= self._rejected_s + grace_s:
                    raise _RejectedError(f"no data for {self.watchdog_ms} ms after a rejection")
                if self._reconnect_asked:
                    self._reconnect_asked = False
                    rollover.request(now)
                successor = rollover.poll(now)
                if successor is not None:
                    ws, first = self._switch(ws, successor, rollover.reason)
                    rollover.switched(now)
                    timers.restart(now)
                    if first is not None and self.on_frame(first):
                        timers.usable(clock())
                    continue
                if timers.ping_due(now):
                    await ws.send(self.venue.ping_message or "")
                    timers.pinged_at(now)
                wake = min(timers.wake_s(), rollover.wake_s(now))
                if self._rejected_s is not None:
                    wake = min(wake, self._rejected_s + grace_s)
                try:
                    async with asyncio.timeout(max(0.0, wake - now)):
                        raw = await ws.recv()
                except TimeoutError:
                    now = clock()
                    if self._rejected_s is not None and now >= self._rejected_s + grace_s:
                        continue  # the rejection is acted on at the top of the loop
                    if timers.silent(now):
                        self.feed_metrics.error("silent")
                        log.warning("feed_silent", exchange=self.name,
                                    watchdog_ms=self.watchdog_ms)
                        raise _SilentError from None
                    continue  # a ping is due: sent at the top of the loop
                except ConnectionClosed:
                    if not rollover.switch_now():
                        raise
                    continue  # the old one ended early: move to the new one now
                now = clock()
                timers.frame(now, self.on_frame(raw))
        finally:
            rollover.abandon()

    async def _open_successor(self, timeout_s: float) -> _Opened:
        """A replacement connection, subscribed, with its first frame (proof that it delivers)."""
        ws = await self._open()
        try:
            async with asyncio.timeout(timeout_s):
                first = await ws.recv()
        except BaseException:
            ws.transport.abort()
            raise
        return ws, first

    def _switch(self, old: ClientConnection, ready: _Opened, reason: str) -> _Opened:
        """Make the successor current and close the old connection in the background."""
        new, first = ready
        self._ws = new
        self.connections += 1
        self.rollovers += 1
        self.feed_metrics.reconnect()
        log.info("feed_rolled_over", exchange=self.name, reason=reason,
                 overlap_s=self.options.overlap_s, connections=self.connections)
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
        """Hand one frame to the tap and the processor, and the processor's records to the
        sink; True if it was one of the venue's messages (it feeds the watchdog)."""
        if self.tap is not None:
            self.tap(raw)
        now_ms = self.now_ms()
        outcome = self.processor.process(raw, now_ms)
        if outcome.kind is not None:
            self._healthy = True
            if outcome.kind in self.venue.reconnect_kinds:
                log.info("feed_reconnect_requested", exchange=self.name, kind=outcome.kind)
                self._reconnect_asked = True
        elif "venue_error" in outcome.errors:
            self._on_rejection(raw, now_ms)
        publish = self.sink.publish
        if outcome.records and self._rejected_s is not None:
            self._rejected_s = None  # data flows: whatever was refused, the rest works
            self._outage.discard("subscription_rejected")
        for record in outcome.records:
            publish(record)
        if outcome.actions:
            self._act(outcome.actions)
        return outcome.usable

    def _on_rejection(self, raw: str | bytes, now_ms: int) -> None:
        """The venue rejected something we sent (a subscription: we send nothing else but
        pings). Unless data comes within ``watchdog_ms`` the read loop replaces the
        connection: a rejected subscription must not look connected while nothing arrives."""
        if self._rejected_s is None:
            self._rejected_s = asyncio.get_running_loop().time()
        if "subscription_rejected" in self._outage:
            return
        self._outage.add("subscription_rejected")
        try:
            self.venue.parse_frame(raw, now_ms, symbol_map=self.processor.symbol_map)
            message = truncate(raw)
        except RecordError as exc:
            message = exc.detail or truncate(raw)
        log.warning("feed_subscription_rejected", exchange=self.name, message=message,
                    note="logged once per outage; counted as venue_error and, when the "
                         "connection is replaced for it, subscription_rejected")

    def export_gauges(self) -> None:
        """Last-message time, best prices and book depths to their gauges, from the refresh
        timer (at least every ``refresh_ms``) rather than per frame."""
        self.feed_metrics.gauges(self.processor.last_alive_ms, self.book.quotes(self.name))
        self.processor.book_levels_gauges()

    def now_ms(self) -> int:
        """The receive clock (``clock_ms``), checked against the monotonic clock.

        A host clock stepped by ``clock_jump_ms`` or more (NTP, an operator) is counted
        (``clock_jump``), logged, and the times of the quote book and of this venue's fx
        rates move with it, so that silence, refresh and rate-age deadlines keep their
        length: no false staleness after a step forward, no hour of refreshes (or of a live
        rate) from a silent venue after a step back. Records carry the new time, as every
        other service on the host reads it.
        """
        wall_ms = self.clock_ms()
        # wall time minus monotonic time stays put unless the wall clock is stepped
        skew_ms = wall_ms - _monotonic_ns() // 1_000_000
        jump_ms = skew_ms - self._skew_ms
        self._skew_ms = skew_ms
        if (jump_ms >= self._jump_ms or -jump_ms >= self._jump_ms) and self._skew_known:
            self._on_clock_jump(jump_ms)
        self._skew_known = True
        return wall_ms

    def _on_clock_jump(self, jump_ms: int) -> None:
        self.clock_jumps += 1
        self.feed_metrics.error("clock_jump")
        log.warning("feed_clock_jump", exchange=self.name, jump_ms=jump_ms,
                    note="quote book and fx rate times moved with the clock; counted as clock_jump")
        self.book.shift(self.name, jump_ms)
        if self.fx is not None:
            self.fx.shift(self.name, jump_ms)
        if self.processor.last_alive_ms is not None:
            self.processor.last_alive_ms += jump_ms

    # --- books --------------------------------------------------------------------------

    def _act(self, actions: Sequence[BookAction]) -> None:
        """Do what the books asked for: fetch a snapshot, resubscribe, or roll over."""
        for action in actions:
            if action.need == "snapshot":
                self._request_snapshot(action.venue_symbol)
            elif action.need == "resubscribe":
                self._resubscribe(action.venue_symbol)

    def _request_snapshot(self, venue_symbol: str) -> None:
        depth = self.depth
        if depth is None or depth.snapshot_url is None:
            return
        task = self._fetches.get(venue_symbol)
        if task is not None and not task.done():
            return  # one fetch per market at a time: the one under way answers this too
        self._fetches[venue_symbol] = asyncio.get_running_loop().create_task(
            self._fetch_snapshot(venue_symbol), name=f"snapshot-{self.name}-{venue_symbol}")

    async def _fetch_snapshot(self, venue_symbol: str) -> None:
        """GET the market's REST snapshot off the event loop until it arrives (backoff on
        failures), then hand it to the processor and publish what it gives."""
        depth = self.depth
        assert depth is not None and depth.snapshot_url is not None  # noqa: S101
        loop = asyncio.get_running_loop()
        url = depth.snapshot_url(venue_symbol, self.options.book_levels, self.rest_url)
        attempt = 0
        while True:
            wait_s = self._next_fetch_s.get(venue_symbol, 0.0) - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            self._next_fetch_s[venue_symbol] = loop.time() + self.options.snapshot_min_interval_s
            try:
                body = await asyncio.to_thread(_http_get, url, self.options.snapshot_timeout_s)
                break
            except (requests.RequestException, OSError) as exc:
                self.snapshot_failures += 1
                self.feed_metrics.error("snapshot_failed")
                delay_s = self.options.snapshot_backoff.delay_s(attempt)
                attempt += 1
                log.warning("book_snapshot_failed", exchange=self.name, symbol=venue_symbol,
                            url=url, error=str(exc)[:200], attempt=attempt,
                            retry_in_s=round(delay_s, 3))
                await asyncio.sleep(delay_s)
        self.snapshots_fetched += 1
        if self.rest_tap is not None:
            self.rest_tap(url, body)
        del self._fetches[venue_symbol]  # done: a need in its answer may start the next one
        outcome: Outcome = self.processor.on_rest(url, body, self.now_ms(), venue_symbol)
        for record in outcome.records:
            self.sink.publish(record)
        if outcome.actions:
            self._act(outcome.actions)

    def _resubscribe(self, venue_symbol: str) -> None:
        """Ask the socket for a fresh book of one market; a venue that has no way to gets a
        rollover (a new connection subscribes everything afresh)."""
        depth, ws = self.depth, self._ws
        if depth is None or ws is None:
            return
        self.resubscribes += 1
        if depth.resubscribe is None:
            log.info("book_resubscribe_by_rollover", exchange=self.name, symbol=venue_symbol)
            self._reconnect_asked = True
            return
        frames = depth.resubscribe(venue_symbol, self.options.book_levels)
        log.info("book_resubscribe", exchange=self.name, symbol=venue_symbol)
        task = asyncio.get_running_loop().create_task(_send_all(ws, frames))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _cancel_fetches(self) -> None:
        for task in self._fetches.values():
            task.cancel()
        self._fetches.clear()

    # --- refresh ------------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        """Re-publish unchanged quotes on time; sleeps to the next due refresh."""
        book = self.book
        refresh_ms = book.refresh_ms
        while True:
            now_ms = self.now_ms()
            for quote in book.due(now_ms):
                self.sink.publish(quote)
            self._check_stale(now_ms)
            self.export_gauges()
            next_ms = book.next_due_ms()
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
        self.feed_metrics.connected(connected)


class _Timers:
    """The watchdog and ping timers of the connection being read, on the event loop's clock."""

    def __init__(self, now_s: float, watchdog_s: float, ping_after_s: float | None,
                 ping_every_s: float | None = None) -> None:
        self.watchdog_s = watchdog_s
        self.ping_after_s = ping_after_s
        self.ping_every_s = ping_every_s
        self.last_frame_s = self.last_usable_s = self.last_ping_s = now_s
        self.pinged = False

    def restart(self, now_s: float) -> None:
        """A new connection: every timer starts over."""
        self.last_frame_s = self.last_usable_s = self.last_ping_s = now_s
        self.pinged = False

    def pinged_at(self, now_s: float) -> None:
        """A ping went out: the quiet ping waits for the next frame, the schedule starts over."""
        self.pinged = True
        self.last_ping_s = now_s

    def frame(self, now_s: float, usable: bool) -> None:
        """Any frame stops the ping timer; only a usable one feeds the watchdog."""
        self.last_frame_s = now_s
        self.pinged = False
        if usable:
            self.last_usable_s = now_s

    def usable(self, now_s: float) -> None:
        self.last_usable_s = now_s

    def wake_s(self) -> float:
        """When the next timer fires, unless a frame comes first."""
        wake = self.last_usable_s + self.watchdog_s
        if self.ping_after_s and not self.pinged:
            wake = min(wake, self.last_frame_s + self.ping_after_s)
        if self.ping_every_s:
            wake = min(wake, self.last_ping_s + self.ping_every_s)
        return wake

    def silent(self, now_s: float) -> bool:
        return now_s >= self.last_usable_s + self.watchdog_s

    def ping_due(self, now_s: float) -> bool:
        """After ``ping_after_s`` of quiet (once), or ``ping_every_s`` after the last ping."""
        if self.ping_every_s and now_s >= self.last_ping_s + self.ping_every_s:
            return True
        return bool(self.ping_after_s) and not self.pinged and (
            now_s >= self.last_frame_s + (self.ping_after_s or 0.0))


class _Rollover:
    """A planned reconnect (age limit or the venue's request): when to open a successor, the
    one opening, the one ready to take over (after ``overlap_s`` of reading both)."""

    def __init__(self, feed: Feed, now_s: float) -> None:
        self._feed = feed
        self._after_s = feed.rollover_after_s
        self._retry_s = min(60.0, max(1.0, feed.watchdog_ms / 1000))
        self._since_s = now_s
        self.rollover_at_s = math.inf if self._after_s is None else now_s + self._after_s
        self.opening: asyncio.Task[_Opened] | None = None
        self.ready: _Opened | None = None
        self.switch_at_s = math.inf
        #: why the next rollover happens: ``max_connection_age`` or ``venue_request``
        self.reason = "max_connection_age"

    def request(self, now_s: float) -> None:
        """The venue asked for a new connection: roll over now, unless one is under way."""
        if self.opening is None and self.ready is None:
            self.reason = "venue_request"
            self.rollover_at_s = now_s

    def switched(self, now_s: float) -> None:
        """The successor took over: the next rollover is for its own age limit."""
        self._since_s = now_s
        self.reason = "max_connection_age"

    def poll(self, now_s: float) -> _Opened | None:
        """Move the rollover on; returns the successor when it is time to switch to it."""
        feed = self._feed
        if self.opening is None and self.ready is None and now_s >= self.rollover_at_s:
            log.info("feed_rollover_started", exchange=feed.name, reason=self.reason,
                     connection_age_s=round(now_s - self._since_s, 1))
            self.opening = asyncio.create_task(feed._open_successor(feed.watchdog_ms / 1000))
        if self.opening is not None and self.opening.done():
            self.ready = self._result(self.opening)
            self.opening = None
            if self.ready is None:  # try again later; the old connection still works
                self.rollover_at_s = now_s + self._retry_s
            else:
                self.switch_at_s = now_s + feed.options.overlap_s
        if self.ready is None or now_s < self.switch_at_s:
            return None
        ready, self.ready, self.switch_at_s = self.ready, None, math.inf
        self.rollover_at_s = math.inf if self._after_s is None else now_s + self._after_s
        return ready

    def wake_s(self, now_s: float) -> float:
        wake = min(self.rollover_at_s, self.switch_at_s)
        return wake if self.opening is None else min(wake, now_s + 0.05)

    def switch_now(self) -> bool:
        """The current connection ended: switch at once if a successor is ready."""
        if self.ready is None:
            return False
        self.switch_at_s = 0.0
        return True

    def abandon(self) -> None:
        """Reading stopped: drop a successor that was never used."""
        if self.opening is not None:
            task = self.opening
            if task.done() and not task.cancelled() and not task.exception():
                task.result()[0].transport.abort()  # opened, never used
            else:
                task.cancel()
        if self.ready is not None:
            self.ready[0].transport.abort()

    def _result(self, task: asyncio.Task[_Opened]) -> _Opened | None:
        exc = task.exception()
        if exc is None:
            return task.result()
        if not isinstance(exc, NETWORK_ERRORS):
            raise exc  # a bug, not a network problem
        log.warning("feed_rollover_failed", exchange=self._feed.name, error=str(exc)[:200])
        return None


def retry_after(value: str | None, now_s: float) -> float | None:
    """An HTTP Retry-After header (delay seconds or an HTTP date) as seconds from ``now_s``;
    None when absent or unreadable, never below 0."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_s)


def _attempt_at_max(backoff: Backoff) -> int:
    """The first attempt number whose (unjittered) delay is ``backoff.max_s``."""
    attempt = 0
    while attempt < 64 and backoff.initial_s * backoff.factor ** attempt < backoff.max_s:
        attempt += 1
    return attempt


def _http_get(url: str, timeout_s: float) -> str:
    """One REST GET (in a worker thread): the body, or an exception for any failure."""
    response = requests.get(url, timeout=timeout_s)
    response.raise_for_status()
    return response.text


async def _send_all(ws: ClientConnection, frames: Sequence[str]) -> None:
    """Frames onto a connection that may close meanwhile (the read loop notices that)."""
    with contextlib.suppress(*NETWORK_ERRORS):
        for frame in frames:
            await ws.send(frame)


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
