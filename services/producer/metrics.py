"""The producer's Prometheus metrics, named exactly as in DESIGN.md (prefix ``arb_``).

Besides DESIGN.md's list, three families show what a slow or absent broker costs:
``arb_quotes_dropped_total`` and ``arb_trades_dropped_total`` (records dropped before Kafka, by
reason: a quote superseded by a newer one of the same venue and symbol while waiting, a trade
pushed out of the full backlog) and ``arb_kafka_backlog_records`` (records waiting in the
producer's own bounded buffer, in front of librdkafka's queue).

Book health (``arb_book_*``, DESIGN.md's second round) is counted per venue through
:class:`BookCounts` (:meth:`ProducerMetrics.book`), from the status each book message returns.

One :class:`ProducerMetrics` per registry: the process uses the default registry, tests pass a
fresh :class:`~prometheus_client.CollectorRegistry` so their counts start at zero.

The feed counts (``arb_feed_messages_total``, ``arb_feed_errors_total``) are taken on every
frame, where a Prometheus ``inc()`` (a lock and three calls) costs more than a tenth of the
frame. So :class:`FeedMetrics` counts in plain integers, added to the Prometheus counters
whenever the registry is read (a scrape, a health check, a test): whoever reads them sees every
count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Metric

from services.common.messages import Quote
from services.common.metrics import LATENCY_BUCKETS_SECONDS
from services.producer.books.base import PROBLEMS, BookStatus
from services.producer.books.book import OrderBook

#: recv - exchange time; below 0 (the venue's clock ahead of ours) is observed as 0.
FEED_LATENCY_BUCKETS_SECONDS = (0.0, *LATENCY_BUCKETS_SECONDS)


class ProducerMetrics:
    """Feed health (counted per venue through :class:`FeedMetrics`), best prices, Kafka delivery."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.feed_messages = _FlushedCounter(
            "arb_feed_messages_total", "Frames received from a venue, by channel.",
            ["exchange", "channel"], registry=registry,
        )
        self.feed_errors = _FlushedCounter(
            "arb_feed_errors_total", "Frames that could not be used, by reason.",
            ["exchange", "reason"], registry=registry,
        )
        self.feed_latency = Histogram(
            "arb_feed_latency_seconds", "Receive time minus the venue's own timestamp.",
            ["exchange"], buckets=FEED_LATENCY_BUCKETS_SECONDS, registry=registry,
        )
        self._feed_counts = _FeedCounts(self)
        self.feed_messages.before_collect = self.feed_errors.before_collect = (
            self._feed_counts.flush)
        self.feed_reconnects = Counter(
            "arb_feed_reconnects_total", "Reconnects after a dropped or silent connection.",
            ["exchange"], registry=registry,
        )
        self.feed_connected = Gauge(
            "arb_feed_connected", "1 while the venue's WebSocket is connected and subscribed.",
            ["exchange"], registry=registry,
        )
        self.feed_last_message = Gauge(
            "arb_feed_last_message_timestamp_seconds", "Epoch seconds of the last frame received.",
            ["exchange"], registry=registry,
        )
        self.best_bid = Gauge(
            "arb_best_bid_usd", "Last best bid in USD after fx.", ["exchange", "symbol"],
            registry=registry,
        )
        self.best_ask = Gauge(
            "arb_best_ask_usd", "Last best ask in USD after fx.", ["exchange", "symbol"],
            registry=registry,
        )
        self.kafka_produced = Counter(
            "arb_kafka_produced_total", "Records the broker acknowledged.", ["topic"],
            registry=registry,
        )
        self.kafka_produce_errors = Counter(
            "arb_kafka_produce_errors_total",
            "Records the broker did not acknowledge in time (delivery failed).",
            ["topic"], registry=registry,
        )
        self.quotes_dropped = Counter(
            "arb_quotes_dropped_total",
            "Quotes dropped before Kafka: superseded by a newer quote while the broker lagged.",
            ["exchange", "reason"], registry=registry,
        )
        self.trades_dropped = Counter(
            "arb_trades_dropped_total",
            "Trades dropped before Kafka: the oldest, when the backlog was full.",
            ["exchange", "reason"], registry=registry,
        )
        self.kafka_backlog = Gauge(
            "arb_kafka_backlog_records",
            "Records waiting in the producer's bounded buffer for room in librdkafka's queue.",
            registry=registry,
        )
        self.kafka_delivery_latency = Histogram(
            "arb_kafka_delivery_latency_seconds", "produce() call to broker acknowledgement.",
            buckets=LATENCY_BUCKETS_SECONDS, registry=registry,
        )
        self.book_resyncs = Counter(
            "arb_book_resyncs_total",
            "Order books emptied and fetched again, by the problem that forced it.",
            ["exchange", "reason"], registry=registry,
        )
        self.book_gaps = Counter(
            "arb_book_gaps_total", "Depth updates missing between two received ones.",
            ["exchange"], registry=registry,
        )
        self.book_checksum_failures = Counter(
            "arb_book_checksum_failures_total",
            "Books whose checksum did not match the venue's after an update.",
            ["exchange"], registry=registry,
        )
        self.book_crossed = Counter(
            "arb_book_crossed_total", "Books found crossed (best bid >= best ask) after a message.",
            ["exchange"], registry=registry,
        )
        self.book_rejected = Counter(
            "arb_book_rejected_total",
            "Depth messages not applied: bad levels (NaN, negative, unparsable), old or repeated "
            "updates, updates before a snapshot, snapshots too old to bridge.",
            ["exchange", "reason"], registry=registry,
        )
        self.book_age = Gauge(
            "arb_book_age_seconds", "Seconds since the book last changed, at scrape.",
            ["exchange", "symbol"], registry=registry,
        )
        self.book_levels = Gauge(
            "arb_book_levels", "Price levels kept in the book, per side (bid, ask).",
            ["exchange", "symbol", "side"], registry=registry,
        )
        self._books: dict[str, BookCounts] = {}

    def book(self, exchange: str, clock: Callable[[], float] = time.time) -> BookCounts:
        """The book metrics of one venue (one instance per venue and registry); ``clock`` gives
        epoch seconds, for the age gauge."""
        counts = self._books.get(exchange)
        if counts is None:
            counts = self._books[exchange] = BookCounts(self, exchange, clock)
        return counts

    def feed(self, exchange: str) -> FeedMetrics:
        """The feed metrics of one venue (one instance per venue and registry)."""
        return self._feed_counts.feed(exchange)

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0 when never set); for tests and health checks."""
        return self.registry.get_sample_value(name, labels) or 0.0


class FeedCounts(Protocol):
    """What the frame processor counts for one venue: :class:`FeedMetrics` live, a tape in the
    replay (which exports it when its clock gets there)."""

    def message(self, kind: str) -> None: ...

    def error(self, reason: str) -> None: ...

    def latency_ms(self, latency_ms: int) -> None: ...


class FeedMetrics:
    """One venue's feed metrics. Messages and errors are plain integer increments (see the
    module docstring), latency goes straight to its histogram, the gauges are set from timers.
    Get one with :meth:`ProducerMetrics.feed`."""

    def __init__(self, metrics: ProducerMetrics, exchange: str) -> None:
        self.metrics = metrics
        self.exchange = exchange
        #: running totals by kind and by reason (written by the counting thread only)
        self._messages: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        #: what of the totals is already in the Prometheus counters (written by flush only)
        self._flushed: dict[tuple[bool, str], int] = {}
        self._children: dict[tuple[bool, str], Any] = {}
        self._prices: dict[str, tuple[Any, Any]] = {}
        self._latency = metrics.feed_latency.labels(exchange)
        self._last = metrics.feed_last_message.labels(exchange)

    def message(self, kind: str) -> None:
        """One frame of the venue, by kind (the ``channel`` label)."""
        counts = self._messages
        counts[kind] = counts.get(kind, 0) + 1

    def error(self, reason: str) -> None:
        """One frame (or record) that could not be used, by reason."""
        counts = self._errors
        counts[reason] = counts.get(reason, 0) + 1

    def latency_ms(self, latency_ms: int) -> None:
        """Receive time minus the venue's own timestamp, observed in seconds."""
        # A venue clock ahead of ours counts as no latency: a negative observation would make
        # the histogram's _sum fall, which Prometheus reads as a counter reset.
        self._latency.observe(max(0, latency_ms) / 1000)

    def last_message(self, ts_s: float) -> None:
        self._last.set(ts_s)

    def best(self, quote: Quote) -> None:
        """A quote's bid and ask (USD) to the best-price gauges."""
        gauges = self._prices.get(quote.symbol)
        if gauges is None:
            gauges = self._prices[quote.symbol] = (
                self.metrics.best_bid.labels(self.exchange, quote.symbol),
                self.metrics.best_ask.labels(self.exchange, quote.symbol))
        gauges[0].set(quote.bid)
        gauges[1].set(quote.ask)

    def gauges(self, last_alive_ms: int | None, quotes: Iterable[Quote]) -> None:
        """Last-message time and the book's best prices: from a timer rather than per frame,
        which would cost more than the parsing."""
        if last_alive_ms is not None:
            self._last.set(last_alive_ms / 1000)
        for quote in quotes:
            self.best(quote)

    def connected(self, connected: bool) -> None:
        self.metrics.feed_connected.labels(self.exchange).set(1 if connected else 0)

    def reconnect(self) -> None:
        self.metrics.feed_reconnects.labels(self.exchange).inc()

    def _flush(self) -> None:
        """Add what was counted since the last flush to the Prometheus counters (under the
        owner's lock; the totals are only read here, so no count is lost to a race)."""
        for is_error, totals in ((False, self._messages), (True, self._errors)):
            for label, total in list(totals.items()):
                key = (is_error, label)
                delta = total - self._flushed.get(key, 0)
                if delta:
                    child = self._children.get(key)
                    if child is None:
                        m = self.metrics
                        family = m.feed_errors if is_error else m.feed_messages
                        child = self._children[key] = family.labels(self.exchange, label)
                    child.inc(delta)
                    self._flushed[key] = total


#: problems that are a message not applied (the rest are counted by their own families)
_REJECTED = frozenset({"bad_level", "out_of_order", "unsynced", "stale_snapshot"})


class BookCounts:
    """One venue's book health, fed with the :class:`BookStatus` of every depth message.

    A status without a problem (nearly all of them) costs one attribute test. A problem counts
    in its family (gap, checksum, crossed, or rejected by reason) and, when the book has to be
    fetched again (``need`` set), once in ``arb_book_resyncs_total`` by the same reason.
    Every family's series exist, at 0, from the start: a rate over a series born at its first
    problem would show "no data" for a healthy book, and miss that first increase.
    """

    def __init__(self, metrics: ProducerMetrics, exchange: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self.exchange = exchange
        self._clock = clock
        self._counters: dict[tuple[str, str], Any] = {}
        #: epoch seconds of each symbol's last book change, read by the age gauge at scrape
        self._changed_s: dict[str, float] = {}
        self._level_gauges: dict[str, tuple[Any, Any]] = {}
        for reason in sorted(PROBLEMS):
            self._child("resyncs", reason)
        for reason in sorted(_REJECTED):
            self._child("rejected", reason)
        for family in ("gaps", "checksum", "crossed"):
            self._child(family, "")

    def status(self, status: BookStatus) -> None:
        """Count what one message did to the book."""
        problem = status.problem
        if problem is None:
            return
        if problem == "gap":
            self._count("gaps", "")
        elif problem == "checksum":
            self._count("checksum", "")
        elif problem == "crossed":
            self._count("crossed", "")
        elif problem in _REJECTED:
            self._count("rejected", problem)
        if status.need is not None:
            self._count("resyncs", problem)

    def changed(self, symbol: str, ts_s: float | None = None) -> None:
        """The book of ``symbol`` changed at ``ts_s`` (epoch seconds; now when None)."""
        if symbol not in self._changed_s:
            changed_s = self._changed_s
            self.metrics.book_age.labels(self.exchange, symbol).set_function(
                lambda: max(0.0, self._clock() - changed_s[symbol]))
        self._changed_s[symbol] = self._clock() if ts_s is None else ts_s

    def levels(self, symbol: str, book: OrderBook) -> None:
        """The kept depth of ``symbol``'s book to the levels gauge (from a timer, not per
        message)."""
        self.depth(symbol, *book.depth())

    def depth(self, symbol: str, n_bids: int, n_asks: int) -> None:
        """Levels kept per side of ``symbol``'s book, to the levels gauge."""
        gauges = self._level_gauges.get(symbol)
        if gauges is None:
            family = self.metrics.book_levels
            gauges = self._level_gauges[symbol] = (
                family.labels(self.exchange, symbol, "bid"),
                family.labels(self.exchange, symbol, "ask"))
        gauges[0].set(n_bids)
        gauges[1].set(n_asks)

    def _count(self, family: str, reason: str) -> None:
        counter = self._counters.get((family, reason))
        if counter is None:
            counter = self._child(family, reason)
        counter.inc()

    def _child(self, family: str, reason: str) -> Any:
        """The counter of one family and reason (created, at 0, on first use)."""
        m = self.metrics
        if family == "resyncs":
            counter = m.book_resyncs.labels(self.exchange, reason)
        elif family == "rejected":
            counter = m.book_rejected.labels(self.exchange, reason)
        else:
            counter = {"gaps": m.book_gaps, "checksum": m.book_checksum_failures,
                       "crossed": m.book_crossed}[family].labels(self.exchange)
        self._counters[(family, reason)] = counter
        return counter


class _FeedCounts:
    """Every venue's FeedMetrics of one ProducerMetrics, and the flush of their pending counts
    (called before the feed counters are collected)."""

    def __init__(self, metrics: ProducerMetrics) -> None:
        self._metrics = metrics
        self._feeds: dict[str, FeedMetrics] = {}
        self._lock = threading.Lock()

    def feed(self, exchange: str) -> FeedMetrics:
        with self._lock:
            feed = self._feeds.get(exchange)
            if feed is None:
                feed = self._feeds[exchange] = FeedMetrics(self._metrics, exchange)
            return feed

    def flush(self) -> None:
        with self._lock:
            for feed in self._feeds.values():
                feed._flush()


class _FlushedCounter(Counter):
    """A Counter that takes the pending FeedMetrics counts in before it is collected."""

    before_collect: Callable[[], None] | None = None

    def collect(self) -> Iterable[Metric]:
        if self.before_collect is not None:
            self.before_collect()
        return super().collect()


_default: ProducerMetrics | None = None


def default_metrics() -> ProducerMetrics:
    """The process-wide instance on the default registry, created on first use."""
    global _default  # one registration per process
    if _default is None:
        _default = ProducerMetrics()
    return _default
