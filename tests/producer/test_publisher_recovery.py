"""A fatal librdkafka error kills a producer instance; the publisher replaces it and goes on."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from services.common.messages import Quote
from services.producer.metrics import ProducerMetrics
from services.producer.publisher import KafkaPublisher


class FakeProducer:
    def __init__(self, fatal: bool) -> None:
        self.fatal = fatal
        self.produced: list[bytes] = []
        self.purged = False

    def produce(self, topic: str, key: bytes, value: bytes, on_delivery: Any) -> None:
        if self.fatal:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_PRODUCER_ID, "gone", fatal=True))
        self.produced.append(value)

    def purge(self, **kwargs: Any) -> None:
        self.purged = True

    def flush(self, timeout: float = 0) -> int:
        return 0

    def poll(self, timeout: float = 0) -> int:
        return 0


def quote() -> Quote:
    return Quote(exchange="binance", symbol="BTC-USD", venue_symbol="BTCUSDT", bid=1.0,
                 bid_size=1.0, ask=2.0, ask_size=1.0, quote_ccy="USDT", fx_to_usd=1.0,
                 ts_ms=1, recv_ts_ms=1, exchange_ts_ms=None)


def test_fatal_error_replaces_the_producer() -> None:
    metrics = ProducerMetrics(CollectorRegistry())
    publisher = KafkaPublisher("127.0.0.1:1", "prices", metrics=metrics)
    dead, fresh = FakeProducer(fatal=True), FakeProducer(fatal=False)
    publisher._producer = dead  # the instance librdkafka declared dead
    publisher._new_producer = lambda: fresh

    assert publisher.publish(quote())

    assert dead.purged
    assert publisher.resets == 1
    assert len(fresh.produced) == 1  # the record that met the dead instance went out anyway
