"""Fixtures for the alerter tests: a Discord stand-in, a webhook client with short waits, a
fresh history and metrics, and per-test topics on a real broker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry

from services.alerter.discord import DiscordWebhook
from services.alerter.metrics import AlerterMetrics
from services.common.broker import LocalBroker
from services.common.config import KafkaSettings
from services.common.history import AlertHistory
from services.common.kafka import ensure_topics, make_consumer, make_producer
from tests.support.discord_standin import DiscordStandIn


@pytest.fixture
def discord() -> Iterator[DiscordStandIn]:
    with DiscordStandIn() as standin:
        yield standin


@pytest.fixture
def metrics() -> AlerterMetrics:
    return AlerterMetrics(CollectorRegistry())


@pytest.fixture
def history(tmp_path: Path) -> Iterator[AlertHistory]:
    with AlertHistory(tmp_path / "alerts.db") as store:
        yield store


def fast_webhook(url: str, **overrides: object) -> DiscordWebhook:
    """Real HTTP, short waits: 3 attempts, backoff in tens of milliseconds."""
    options: dict[str, object] = {"max_attempts": 3, "backoff_base_s": 0.01,
                                  "backoff_max_s": 0.02, "timeout_s": 2.0}
    options.update(overrides)
    return DiscordWebhook(url, **options)  # type: ignore[arg-type]


@dataclass
class Topics:
    """The alerts and spreads topics of one test, with helpers to fill them and read offsets."""

    kafka: KafkaSettings
    broker: LocalBroker

    def produce(self, topic: str, values: list[bytes]) -> None:
        producer = make_producer(self.broker.bootstrap_servers)
        for value in values:
            producer.produce(topic, key=b"BTC-USD", value=value)
        assert producer.flush(10) == 0

    def committed_offset(self, group_id: str, topic: str) -> int:
        consumer = make_consumer(self.broker.bootstrap_servers, group_id)
        try:
            (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
            return tp.offset
        finally:
            consumer.close()


@pytest.fixture
def topics(broker: LocalBroker, unique: str) -> Topics:
    kafka = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        alerts_topic=f"alerts-{unique}",
        spreads_topic=f"spreads-{unique}",
        prices_topic=f"prices-{unique}",
        partitions=1,
    )
    ensure_topics(broker.bootstrap_servers, [kafka.alerts_topic, kafka.spreads_topic], 1)
    return Topics(kafka, broker)
