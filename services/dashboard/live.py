"""The dashboard's one background Kafka reader per server process, and what it has seen.

Every browser tab reads the same :class:`LiveState`; none opens a consumer of its own. The
reader assigns every partition of ``arbitrage-spreads`` (for the live spread chart) and
``crypto-prices`` (for feed health) itself, never joins a group and never commits: it wants the
present, read back a little at start so the page is not blank. It survives a broker that is
down or topics that do not exist yet: the state says so and the page shows a notice.

Start positions come from the partitions' end offsets, which Tansu reports short when the last
record batch holds several records (docs/decisions.md): the reader then re-reads part of that
batch, which the state ignores (a spread point is keyed by its window), and the lag it reports
is approximate in the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from services.common.clock import now_ts_ms
from services.common.config import DashboardSettings, KafkaSettings
from services.common.exceptions import RecordError
from services.common.kafka import make_consumer
from services.common.kafka_stats import brokers_up
from services.common.logging import truncate
from services.common.messages import Quote, Spread, Trade, parse_price_record, parse_spread
from services.dashboard.metrics import DashboardMetrics, SessionTracker, process_metrics

log = structlog.get_logger(__name__)

#: Records per spreads partition read back at start (about 10 min of 2 symbols x 2 pairs at 1 s
#: windows on one partition): enough to fill the chart at once.
SPREADS_BACKFILL_RECORDS = 2500
#: Records per prices partition read back at start: enough to see every live venue at once.
PRICES_BACKFILL_RECORDS = 200
#: Pause between attempts to reach the broker or find a missing topic.
RETRY_S = 2.0

Pair = tuple[str, str, str]  # (symbol, buy_exchange, sell_exchange)


@dataclass(frozen=True, slots=True)
class SpreadPoint:
    """One window of one ordered venue pair, as the chart needs it."""

    symbol: str
    buy_exchange: str
    sell_exchange: str
    window_end_ms: int
    spread_usd: float
    spread_bps: float
    net_spread_bps: float
    #: Largest ladder notional that passes, and its profit; None: none passes or no depth.
    executable_usd: float | None = None
    executable_profit_usd: float | None = None


@dataclass(frozen=True, slots=True)
class VenueActivity:
    """The newest ``crypto-prices`` record of one venue.

    ``last_ts_ms`` is the record's event time on the producer's clock (receive time, or emit
    time of a refresh, which a live venue sends every ARB_QUOTE_REFRESH_MS even when quiet).
    """

    exchange: str
    last_ts_ms: int
    last_read_ts_ms: int
    records: int


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """What the reader knows at ``taken_ts_ms``; every page run renders one of these."""

    taken_ts_ms: int
    bootstrap_servers: str
    kafka_checked: bool  # False until the first connection attempt has an answer
    kafka_connected: bool
    kafka_problem: str | None
    spreads: tuple[SpreadPoint, ...]
    venues: dict[str, VenueActivity]
    records_read: dict[str, int]


class LiveState:
    """Thread-safe buffers the reader writes and pages read; no Kafka in it.

    Spread points are kept per ordered pair, keyed by window end (a re-read window replaces
    itself), and dropped once older than ``chart_ms`` before the newest window seen.
    """

    def __init__(self, chart_ms: int, bootstrap_servers: str = "") -> None:
        self.chart_ms = chart_ms
        self.bootstrap_servers = bootstrap_servers
        self._lock = threading.Lock()
        self._points: dict[Pair, dict[int, SpreadPoint]] = {}
        self._newest_end_ts_ms: int | None = None
        self._venues: dict[str, VenueActivity] = {}
        self._records_read: dict[str, int] = {}
        self._checked = False
        self._connected = False
        self._problem: str | None = None
        self._adds_since_prune = 0

    def add_spread(self, spread: Spread) -> None:
        point = SpreadPoint(
            spread.symbol, spread.buy_exchange, spread.sell_exchange, spread.window_end_ms,
            spread.spread_usd, spread.spread_bps, spread.net_spread_bps,
            spread.executable_usd, spread.executable_profit_usd,
        )
        key = (spread.symbol, spread.buy_exchange, spread.sell_exchange)
        with self._lock:
            if self._newest_end_ts_ms is not None and (
                    point.window_end_ms < self._newest_end_ts_ms - self.chart_ms):
                return
            self._points.setdefault(key, {})[point.window_end_ms] = point
            if self._newest_end_ts_ms is None or point.window_end_ms > self._newest_end_ts_ms:
                self._newest_end_ts_ms = point.window_end_ms
            self._adds_since_prune += 1
            if self._adds_since_prune >= 1000:
                self._prune()

    def add_price(self, record: Quote | Trade, read_ts_ms: int) -> None:
        with self._lock:
            seen = self._venues.get(record.exchange)
            self._venues[record.exchange] = VenueActivity(
                exchange=record.exchange,
                last_ts_ms=max(record.ts_ms, seen.last_ts_ms if seen else record.ts_ms),
                last_read_ts_ms=read_ts_ms,
                records=(seen.records if seen else 0) + 1,
            )

    def count_read(self, topic: str) -> None:
        with self._lock:
            self._records_read[topic] = self._records_read.get(topic, 0) + 1

    def set_kafka(self, connected: bool, problem: str | None = None) -> None:
        with self._lock:
            self._checked = True
            self._connected = connected
            self._problem = problem

    def _prune(self) -> None:
        self._adds_since_prune = 0
        if self._newest_end_ts_ms is None:
            return
        oldest = self._newest_end_ts_ms - self.chart_ms
        for key in list(self._points):
            kept = {end: p for end, p in self._points[key].items() if end >= oldest}
            if kept:
                self._points[key] = kept
            else:
                del self._points[key]

    def snapshot(self, taken_ts_ms: int | None = None) -> LiveSnapshot:
        with self._lock:
            self._prune()
            points = tuple(
                point
                for key in sorted(self._points)
                for _, point in sorted(self._points[key].items())
            )
            return LiveSnapshot(
                taken_ts_ms=now_ts_ms() if taken_ts_ms is None else taken_ts_ms,
                bootstrap_servers=self.bootstrap_servers,
                kafka_checked=self._checked,
                kafka_connected=self._connected,
                kafka_problem=self._problem,
                spreads=points,
                venues=dict(self._venues),
                records_read=dict(self._records_read),
            )


class LiveReader:
    """One consumer on a daemon thread feeding a :class:`LiveState`; ``close`` stops it."""

    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        state: LiveState,
        metrics: DashboardMetrics,
        *,
        poll_timeout_s: float = 0.5,
        stats_interval_ms: int = 2000,
        retry_s: float = RETRY_S,
        spreads_backfill: int = SPREADS_BACKFILL_RECORDS,
        prices_backfill: int = PRICES_BACKFILL_RECORDS,
    ) -> None:
        self.kafka = kafka
        self.group_id = group_id
        self.state = state
        self.metrics = metrics
        self.poll_timeout_s = poll_timeout_s
        self.stats_interval_ms = stats_interval_ms
        self.retry_s = retry_s
        self.backfill = {kafka.spreads_topic: spreads_backfill,
                         kafka.prices_topic: prices_backfill}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-reader", daemon=True)
        self._assigned: set[str] = set()
        self._logged_invalid: set[tuple[str, str]] = set()
        self._was_connected: bool | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> LiveReader:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    # -- connectivity --------------------------------------------------------------------------
    def _connected(self, connected: bool, problem: str | None = None) -> None:
        self.state.set_kafka(connected, problem)
        if connected != self._was_connected:  # log changes only, not every retry
            if connected:
                log.info("dashboard_kafka_connected", bootstrap=self.kafka.bootstrap_servers)
            else:
                log.warning("dashboard_kafka_unavailable", bootstrap=self.kafka.bootstrap_servers,
                            problem=problem)
            self._was_connected = connected

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._connected(False, f"no broker reachable at {self.kafka.bootstrap_servers}")
        elif err.fatal():
            log.error("kafka_fatal_error", code=err.name(), reason=err.str())

    def _on_stats(self, raw: str) -> None:
        self.metrics.record_lags(raw, self.group_id)
        # Only good news from statistics: "down" comes from the error callback, which is not
        # fooled by the first documents, written before any connection was made.
        if brokers_up(raw) and self._assigned:
            missing = self._missing_topics()
            self._connected(True, f"waiting for topic {', '.join(missing)}" if missing else None)

    def _missing_topics(self) -> list[str]:
        return [t for t in self.backfill if t not in self._assigned]

    # -- reading -------------------------------------------------------------------------------
    def _consumer(self) -> Consumer:
        return make_consumer(
            self.kafka.bootstrap_servers,
            self.group_id,
            error_cb=self._on_error,
            stats_cb=self._on_stats,
            **{
                "statistics.interval.ms": self.stats_interval_ms,
                "fetch.wait.max.ms": 100,
                # A page may stay open through a long broker outage: retry calmly, and keep
                # librdkafka from logging every refused connection many times a second.
                "reconnect.backoff.ms": 1000,
                "reconnect.backoff.max.ms": 10_000,
            },
        )

    def _assign_new_topics(self, consumer: Consumer) -> None:
        """Assign every partition of each wanted topic that exists and is not assigned yet,
        starting ``backfill`` records before its end."""
        try:
            metadata = consumer.list_topics(timeout=3)
        except KafkaException as exc:
            self._connected(False, f"Kafka at {self.kafka.bootstrap_servers} unreachable "
                                   f"({exc.args[0].str()})")
            return
        partitions: list[TopicPartition] = []
        for topic in self._missing_topics():
            info = metadata.topics.get(topic)
            if info is None or info.error is not None or not info.partitions:
                continue
            for partition in sorted(info.partitions):
                tp = TopicPartition(topic, partition)
                low, high = consumer.get_watermark_offsets(tp, timeout=5)
                partitions.append(
                    TopicPartition(topic, partition, max(low, high - self.backfill[topic])),
                )
            self._assigned.add(topic)
        if partitions:
            consumer.incremental_assign(partitions)
            log.info("dashboard_reader_assigned",
                     partitions=[f"{p.topic}[{p.partition}]@{p.offset}" for p in partitions])
        missing = self._missing_topics()
        self._connected(True, f"waiting for topic {', '.join(missing)}" if missing else None)

    def _run(self) -> None:
        consumer = self._consumer()
        last_topic_check = 0.0
        try:
            while not self._stop.is_set():
                if self._missing_topics() and time.monotonic() - last_topic_check >= self.retry_s:
                    last_topic_check = time.monotonic()
                    try:
                        self._assign_new_topics(consumer)
                    except KafkaException as exc:
                        self._connected(False, f"Kafka error: {exc.args[0].str()}")
                if not self._assigned:
                    self._stop.wait(self.retry_s / 4)
                    continue
                messages = consumer.consume(num_messages=500, timeout=self.poll_timeout_s)
                self.handle(messages, now_ts_ms())
        except Exception as exc:  # the page keeps working from the history store
            log.exception("dashboard_reader_stopped")
            self._connected(False, f"the background reader stopped: {type(exc).__name__}")
        finally:
            consumer.close()

    def handle(self, messages: Iterable[Message], read_ts_ms: int) -> None:
        """Feed one batch into the state; a record that does not parse is counted and skipped."""
        got_records = False
        for msg in messages:
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.info("dashboard_reader_error", code=msg.error().name(),
                             reason=msg.error().str())
                continue
            got_records = True
            topic = msg.topic()
            self.metrics.records_read.labels(topic).inc()
            self.state.count_read(topic)
            value = msg.value()
            try:
                if value is None:
                    raise RecordError("empty_value")
                if topic == self.kafka.spreads_topic:
                    self.state.add_spread(parse_spread(value))
                else:
                    self.state.add_price(parse_price_record(value), read_ts_ms)
            except RecordError as exc:
                self.metrics.records_invalid.labels(topic, exc.reason).inc()
                if (topic, exc.reason) not in self._logged_invalid:  # once per kind
                    self._logged_invalid.add((topic, exc.reason))
                    log.warning("invalid_record", topic=topic, reason=exc.reason,
                                detail=exc.detail, raw=truncate(value or b""))
        if got_records and self._was_connected is not True:  # records prove the broker is back
            missing = self._missing_topics()
            self._connected(True, f"waiting for topic {', '.join(missing)}" if missing else None)


@dataclass
class Shared:
    """What one server process shares between all browser sessions."""

    state: LiveState
    reader: LiveReader
    metrics: DashboardMetrics
    sessions: SessionTracker
    settings: DashboardSettings = field(repr=False)

    def close(self) -> None:
        # Short join: a reader blocked in a metadata request finishes on its own (daemon).
        self.reader.close(timeout_s=1.0)


_lock = threading.Lock()
_shared: dict[tuple[DashboardSettings, KafkaSettings], Shared] = {}


def shared_for(settings: DashboardSettings, kafka: KafkaSettings, **reader_options: Any) -> Shared:
    """The process's reader for these settings, started on first use."""
    key = (settings, kafka)
    with _lock:
        found = _shared.get(key)
        if found is not None and found.reader.alive():
            return found
        metrics, sessions = process_metrics()
        state = LiveState(settings.chart_seconds * 1000, kafka.bootstrap_servers)
        reader = LiveReader(kafka, settings.group_id, state, metrics, **reader_options).start()
        _shared[key] = Shared(state, reader, metrics, sessions, settings)
        log.info("dashboard_reader_started", bootstrap=kafka.bootstrap_servers,
                 topics=[kafka.spreads_topic, kafka.prices_topic], group=settings.group_id)
        return _shared[key]


def release(shared: Shared) -> None:
    """Stop a reader and forget it (Streamlit's cache was cleared, or a test is done)."""
    with _lock:
        for key, value in list(_shared.items()):
            if value is shared:
                del _shared[key]
    shared.close()
