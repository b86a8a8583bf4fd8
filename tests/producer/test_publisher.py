"""Kafka publisher: never blocks, bounded memory when the broker is slow or down (superseded
quotes and the oldest trades dropped and counted), byte-exact JSON, metric names of DESIGN.md."""

from __future__ import annotations

import gc
import re
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from services.common.broker import free_port
from services.common.messages import Quote, Trade, parse_price_record, to_json
from services.producer import binance, coinbase, kraken, okx
from services.producer.metrics import ProducerMetrics
from services.producer.publisher import KafkaPublisher, encode
from services.producer.replay import load_frames
from tests.producer.conftest import BINANCE_FILE, COINBASE_FILE, KRAKEN_FILE, OKX_FILE

TOPIC = "crypto-prices"
#: producer metrics beyond DESIGN.md's list (see services/producer/metrics.py)
NOT_IN_DESIGN = {"arb_quotes_dropped_total", "arb_trades_dropped_total",
                 "arb_kafka_backlog_records", "arb_book_rejected_total", "arb_book_age_seconds",
                 "arb_book_levels", "arb_kafka_offsets_reset_total",
                 "arb_kafka_records_lost_total"}


def quote(exchange: str = "binance", symbol: str = "BTC-USD", ts_ms: int = 1,
          bid: float = 100.0) -> Quote:
    return Quote(exchange=exchange, symbol=symbol, venue_symbol="BTCUSDT", bid=bid,
                 bid_size=1.0, ask=bid + 1, ask_size=1.0, quote_ccy="USDT", fx_to_usd=1.0,
                 ts_ms=ts_ms, recv_ts_ms=ts_ms, exchange_ts_ms=None)


def trade(n: int, exchange: str = "binance") -> Trade:
    return Trade(exchange=exchange, symbol="BTC-USD", venue_symbol="BTCUSDT", price=100.0,
                 size=1.0, side="buy", trade_id=str(n), quote_ccy="USDT", fx_to_usd=1.0,
                 ts_ms=n, recv_ts_ms=n, exchange_ts_ms=n - 3)


class _Delivered:
    def __init__(self, offset: int = 0, partition: int = 0) -> None:
        self._offset = offset
        self._partition = partition

    def latency(self) -> float:
        return 0.004

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class FakeProducer:
    """Stands in for confluent_kafka.Producer: a bounded queue, callbacks served on poll()."""

    def __init__(self, capacity: int, error: KafkaError | None = None) -> None:
        self.capacity = capacity
        self.error = error
        self.queued: list[tuple] = []
        self.sent: list[tuple[bytes, bytes]] = []
        self.broker_up = True
        #: the partition's end on the (fake) broker: the next record's offset
        self.end = 0

    def produce(self, topic, key, value, on_delivery) -> None:
        if len(self.queued) >= self.capacity:
            raise BufferError("Local: Queue full")
        self.queued.append((key, value, on_delivery))

    def poll(self, timeout_s: float = 0) -> int:
        del timeout_s
        if not self.broker_up:
            return 0
        served, self.queued = self.queued, []
        for key, value, on_delivery in served:
            self.sent.append((key, value))
            if self.error:
                on_delivery(self.error, None)
                continue
            on_delivery(None, _Delivered(self.end))
            self.end += 1
        return len(served)

    def flush(self, timeout_s: float = 0) -> int:
        self.poll(timeout_s)
        return len(self.queued)


def test_records_are_keyed_by_symbol_and_counted(metrics: ProducerMetrics) -> None:
    fake = FakeProducer(capacity=10)
    publisher = KafkaPublisher("unused:9092", TOPIC, metrics, producer=fake)

    assert publisher.publish(quote())
    assert publisher.flush() == 0

    [(key, value)] = fake.sent
    assert key == b"BTC-USD"
    assert parse_price_record(value) == quote()
    assert metrics.value("arb_kafka_produced_total", topic=TOPIC) == 1
    assert metrics.value("arb_kafka_delivery_latency_seconds_count") == 1
    assert metrics.value("arb_kafka_delivery_latency_seconds_sum") == pytest.approx(0.004)


def test_full_queue_keeps_only_the_newest_quote_per_venue_and_symbol(metrics) -> None:
    # Arrange: the broker is away, librdkafka's queue holds 2 records
    fake = FakeProducer(capacity=2)
    fake.broker_up = False
    publisher = KafkaPublisher("unused:9092", TOPIC, metrics, producer=fake)

    # Act: 10 quotes for each of two keys, then one for a third
    for n in range(10):
        publisher.publish(quote("binance", "BTC-USD", ts_ms=n, bid=100.0 + n))
        publisher.publish(quote("binance", "ETH-USD", ts_ms=n, bid=10.0 + n))
    publisher.publish(quote("okx", "BTC-USD", ts_ms=10))

    # Assert: two in librdkafka, one newest per key waiting, the rest dropped and counted
    assert len(fake.queued) == 2
    assert publisher.backlog == 3
    assert publisher.dropped_quotes == 20 - 2 - 2
    assert metrics.value("arb_quotes_dropped_total", exchange="binance",
                         reason="superseded") == 16
    assert metrics.value("arb_kafka_produce_errors_total", topic=TOPIC) == 0

    # the broker comes back: the waiting quotes follow, oldest first, newest prices
    fake.broker_up = True
    assert publisher.flush() == 0
    sent = [parse_price_record(v) for _, v in fake.sent]
    assert [(q.exchange, q.symbol, q.bid) for q in sent[2:]] == [
        ("binance", "BTC-USD", 109.0), ("binance", "ETH-USD", 19.0), ("okx", "BTC-USD", 100.0)]
    publisher.service()
    assert metrics.value("arb_kafka_backlog_records") == 0


def test_trades_are_never_merged_and_the_oldest_drop_when_the_backlog_is_full(metrics) -> None:
    fake = FakeProducer(capacity=1)
    fake.broker_up = False
    publisher = KafkaPublisher("unused:9092", TOPIC, metrics, producer=fake, trade_backlog=5)

    for n in range(1, 11):
        publisher.publish(trade(n))

    assert len(fake.queued) == 1 and publisher.backlog == 5
    assert publisher.dropped_trades == 4
    assert metrics.value("arb_trades_dropped_total", exchange="binance",
                         reason="backlog_full") == 4
    fake.broker_up = True
    publisher.flush()
    assert [parse_price_record(v).trade_id for _, v in fake.sent] == ["1", "6", "7", "8", "9",
                                                                       "10"]


def test_blocking_mode_waits_and_drops_nothing(metrics) -> None:
    fake = FakeProducer(capacity=1)  # poll() empties the queue, as a live broker would
    publisher = KafkaPublisher("unused:9092", TOPIC, metrics, producer=fake, block=True)

    for n in range(50):
        publisher.publish(quote(ts_ms=n, bid=100.0 + n))

    publisher.flush()
    assert len(fake.sent) == 50 and publisher.dropped == 0


def test_failed_delivery_is_counted(metrics: ProducerMetrics) -> None:
    fake = FakeProducer(capacity=10, error=KafkaError(KafkaError._MSG_TIMED_OUT))
    publisher = KafkaPublisher("unused:9092", TOPIC, metrics, producer=fake)

    publisher.publish(quote())

    assert publisher.failed == 1
    assert metrics.value("arb_kafka_produce_errors_total", topic=TOPIC) == 1


@pytest.mark.parametrize(("module", "file"), [(binance, BINANCE_FILE), (coinbase, COINBASE_FILE),
                                              (kraken, KRAKEN_FILE), (okx, OKX_FILE)])
def test_encode_is_byte_for_byte_to_json(fixtures_dir: Path, module, file) -> None:
    records = []
    for frame in load_frames(fixtures_dir / file):
        try:
            records += module.parse_message(frame.raw, frame.recv_ts_ms, fx_to_usd=1.0003,
                                            symbol_map=_IdentityMap())
        except Exception:  # noqa: BLE001, S112 - frames of unconvertible markets
            continue
    records += [replace(r, refresh=True) for r in records if isinstance(r, Quote)][:5]
    assert records

    assert all(encode(r) == to_json(r) for r in records)


class _IdentityMap(dict):
    """Every venue symbol maps onto itself."""

    def get(self, key, default=None):
        return key if isinstance(key, str) else default


def test_broker_down_memory_stays_bounded_and_drops_are_counted(metrics) -> None:
    # Arrange: a real librdkafka producer pointed at a port nobody listens on
    dead = f"127.0.0.1:{free_port()}"
    publisher = KafkaPublisher(dead, TOPIC, metrics, queue_max_messages=200, trade_backlog=300,
                               **{"message.timeout.ms": 600_000})
    keys = [("binance", "BTC-USD"), ("binance", "ETH-USD"), ("okx", "BTC-USD"),
            ("kraken", "BTC-USD")]
    n_quotes, n_trades = 40_000, 2_000

    # Act: publish far more than fits, timing every call, then watching Python's memory
    durations_s = []
    baseline = 0
    for n in range(n_quotes):
        if n == n_quotes // 2:
            tracemalloc.start()
            baseline, _ = tracemalloc.get_traced_memory()
        exchange, symbol = keys[n % len(keys)]
        started = time.perf_counter()
        publisher.publish(quote(exchange, symbol, ts_ms=n))
        if n % 20 == 0:
            publisher.publish(trade(n))
        if n < n_quotes // 2:
            durations_s.append(time.perf_counter() - started)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # Assert: librdkafka holds its cap, the backlog one quote per key + the trade cap, and
    # every other record is counted as dropped
    assert len(publisher._producer) == 200
    assert publisher.backlog == len(keys) + 300
    assert (publisher.dropped_quotes + publisher.dropped_trades + 200 + publisher.backlog
            == n_quotes + n_trades)
    assert publisher.dropped_trades == n_trades - 300 - 10  # 10 trades got into librdkafka
    assert sum(metrics.value("arb_quotes_dropped_total", exchange=e, reason="superseded")
               for e in ("binance", "okx", "kraken")) == publisher.dropped_quotes
    assert metrics.value("arb_trades_dropped_total", exchange="binance",
                         reason="backlog_full") == publisher.dropped_trades
    assert current - baseline < 1_000_000  # Python memory flat over the last 20 000 publishes
    # never waited on the broker (a shared machine may still pause a call now and then)
    assert sorted(durations_s)[int(len(durations_s) * 0.99)] < 0.005
    publisher._producer.purge()
    publisher._producer.flush(1)
    del publisher  # no reconnect attempts to a dead port after the test
    gc.collect()


def test_metric_names_match_design(fixtures_dir, metrics: ProducerMetrics) -> None:
    design = (fixtures_dir.parents[1] / "DESIGN.md").read_text()
    section = design.split("producer (:8001):", 1)[1].split("alerter (:8002):", 1)[0]
    promised = {m.group(1): set(filter(None, (m.group(2) or "").split(",")))
                for m in re.finditer(r"(arb_\w+)(?:\{([\w,]+)\})?", section)}

    exported = {m.name + ("_total" if m.type == "counter" else ""): m
                for m in metrics.registry.collect()}

    # the second round's book health names: {exchange}, "a reason label rather than new names"
    depth = design.split("**Depth.**", 1)[1].split("\n- **", 1)[0]
    books = set(re.findall(r"arb_book_\w+", depth))
    assert books, "DESIGN.md's Depth bullet names the book metrics"
    for name in books:
        labels = set(metrics.registry._names_to_collectors[name]._labelnames)
        assert {"exchange"} <= labels <= {"exchange", "reason"}, name

    assert set(promised) | books == set(exported) - NOT_IN_DESIGN
    metrics.feed_messages.labels("binance", "trade").inc()
    for name, labels in promised.items():
        family = metrics.registry._names_to_collectors[name]
        assert set(family._labelnames) == labels, name


def test_a_broker_back_without_acknowledged_records_is_counted_once_with_the_loss(
    metrics: ProducerMetrics,
) -> None:
    """Offsets 0..119 acknowledged, then the broker comes back holding only its first 20: the
    next delivery lands at offset 20, so 100 acknowledged records are gone."""
    fake = FakeProducer(capacity=1000)
    publisher = KafkaPublisher("unused:9092", TOPIC, metrics=metrics, producer=fake)
    labels = {"service": "producer", "topic": TOPIC}
    assert metrics.registry.get_sample_value("arb_kafka_offsets_reset_total", labels) == 0
    for n in range(120):
        publisher.publish(trade(n))
    fake.end = 20  # truncated (fake.end = 0: restarted empty)
    for n in range(120, 150):
        publisher.publish(trade(n))
    assert publisher.delivered == 150
    assert metrics.registry.get_sample_value("arb_kafka_offsets_reset_total", labels) == 1
    assert metrics.registry.get_sample_value("arb_kafka_records_lost_total", labels) == 100
    assert publisher.records_lost == 100
    fake.end = 0  # and again, empty this time: the 30 since the first reset are gone too
    publisher.publish(trade(150))
    assert metrics.registry.get_sample_value("arb_kafka_offsets_reset_total", labels) == 2
    assert publisher.records_lost == 100 + 50


def test_deliveries_in_order_are_no_reset(metrics: ProducerMetrics) -> None:
    fake = FakeProducer(capacity=1000)
    publisher = KafkaPublisher("unused:9092", TOPIC, metrics=metrics, producer=fake)
    for n in range(500):
        publisher.publish(quote(ts_ms=n, bid=100.0 + n % 7))
    labels = {"service": "producer", "topic": TOPIC}
    assert publisher.delivered == 500
    assert metrics.registry.get_sample_value("arb_kafka_offsets_reset_total", labels) == 0
    assert publisher.offsets.seen_end(TOPIC, 0) == 500
