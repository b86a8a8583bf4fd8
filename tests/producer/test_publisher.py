"""Kafka publisher (queue full -> drop and count) and the metric names DESIGN.md promises."""

from __future__ import annotations

import re

from confluent_kafka import KafkaError

from services.common.messages import Quote, parse_price_record
from services.producer.metrics import ProducerMetrics
from services.producer.publisher import KafkaPublisher

TOPIC = "crypto-prices"


def quote() -> Quote:
    return Quote(exchange="binance", symbol="BTC-USD", venue_symbol="BTCUSDT", bid=100.0,
                 bid_size=1.0, ask=101.0, ask_size=1.0, quote_ccy="USDT", fx_to_usd=1.0,
                 ts_ms=1, recv_ts_ms=1, exchange_ts_ms=None)


class FakeProducer:
    """Stands in for confluent_kafka.Producer: a bounded queue, callbacks served on poll()."""

    def __init__(self, capacity: int, error: KafkaError | None = None) -> None:
        self.capacity = capacity
        self.error = error
        self.queued: list[tuple] = []
        self.sent: list[tuple[bytes, bytes]] = []

    def produce(self, topic, key, value, on_delivery) -> None:
        if len(self.queued) >= self.capacity:
            raise BufferError("Local: Queue full")
        self.queued.append((key, value, on_delivery))

    def poll(self, timeout_s: float = 0) -> int:
        del timeout_s
        served, self.queued = self.queued, []
        for key, value, on_delivery in served:
            self.sent.append((key, value))
            on_delivery(self.error, None)
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


def test_full_queue_drops_and_counts_without_blocking(metrics: ProducerMetrics) -> None:
    fake = FakeProducer(capacity=0)  # the local queue is always full
    publisher = KafkaPublisher("unused:9092", TOPIC, metrics, producer=fake)

    results = [publisher.publish(quote()) for _ in range(3)]

    assert results == [False, False, False]
    assert publisher.dropped == 3
    assert metrics.value("arb_kafka_produce_errors_total", topic=TOPIC) == 3
    assert metrics.value("arb_kafka_produced_total", topic=TOPIC) == 0


def test_failed_delivery_is_counted(metrics: ProducerMetrics) -> None:
    fake = FakeProducer(capacity=10, error=KafkaError(KafkaError._MSG_TIMED_OUT))
    publisher = KafkaPublisher("unused:9092", TOPIC, metrics, producer=fake)

    publisher.publish(quote())

    assert publisher.failed == 1
    assert metrics.value("arb_kafka_produce_errors_total", topic=TOPIC) == 1


def test_metric_names_match_design(fixtures_dir, metrics: ProducerMetrics) -> None:
    design = (fixtures_dir.parents[1] / "DESIGN.md").read_text()
    section = design.split("producer (:8001):", 1)[1].split("alerter (:8002):", 1)[0]
    promised = {m.group(1): set(filter(None, (m.group(2) or "").split(",")))
                for m in re.finditer(r"(arb_\w+)(?:\{([\w,]+)\})?", section)}

    exported = {m.name + ("_total" if m.type == "counter" else ""): m
                for m in metrics.registry.collect()}

    assert set(promised) == set(exported)
    metrics.feed_messages.labels("binance", "trade").inc()
    for name, labels in promised.items():
        family = metrics.registry._names_to_collectors[name]
        assert set(family._labelnames) == labels, name
