"""Records to Kafka ``crypto-prices``: keyed by canonical symbol, never blocking the feed.

When the broker is slow or down, librdkafka's local queue fills up and ``produce()`` raises
BufferError; the record is then dropped and counted (a stale price is worth less than a live
feed), never waited for.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import structlog
from confluent_kafka import KafkaError, Message

from services.common.kafka import make_producer
from services.common.messages import Quote, Trade, to_json
from services.producer.metrics import ProducerMetrics, default_metrics

log = structlog.get_logger(__name__)


class Sink(Protocol):
    """Where parsed records go: Kafka in the service, a list in some tests."""

    def publish(self, record: Quote | Trade) -> bool: ...


class KafkaPublisher:
    """Thin wrapper over a confluent-kafka Producer with delivery callbacks feeding metrics."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        metrics: ProducerMetrics | None = None,
        producer: Any = None,
        **overrides: Any,
    ) -> None:
        self.topic = topic
        self.metrics = metrics or default_metrics()
        self._producer = producer or make_producer(bootstrap_servers, **overrides)
        self.dropped = 0
        self.delivered = 0
        self.failed = 0

    def publish(self, record: Quote | Trade) -> bool:
        """Queue one record; False if it was dropped because the local queue is full."""
        sent_s = time.monotonic()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            del msg
            if err is not None:
                self.failed += 1
                self.metrics.kafka_produce_errors.labels(self.topic).inc()
                log.warning("kafka_delivery_failed", topic=self.topic, code=err.name(),
                            reason=err.str())
                return
            self.delivered += 1
            self.metrics.kafka_produced.labels(self.topic).inc()
            self.metrics.kafka_delivery_latency.observe(time.monotonic() - sent_s)

        try:
            self._producer.produce(
                self.topic, key=record.symbol.encode(), value=to_json(record),
                on_delivery=on_delivery,
            )
        except BufferError:
            self.dropped += 1
            self.metrics.kafka_produce_errors.labels(self.topic).inc()
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("kafka_queue_full_dropped", topic=self.topic, dropped=self.dropped)
            self._producer.poll(0)
            return False
        self._producer.poll(0)
        return True

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery callbacks."""
        self._producer.poll(timeout_s)

    def flush(self, timeout_s: float = 10.0) -> int:
        """Wait up to ``timeout_s`` for outstanding deliveries; returns how many are left."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.warning("kafka_flush_incomplete", topic=self.topic, remaining=remaining)
        return remaining
