"""Fixtures for the alerter tests: a Discord stand-in and per-test topics on a real broker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import TopicPartition

from services.common.broker import LocalBroker
from services.common.config import KafkaSettings
from services.common.kafka import ensure_topics, make_consumer, make_producer
from tests.support.discord_standin import DiscordStandIn


@pytest.fixture
def discord() -> Iterator[DiscordStandIn]:
    with DiscordStandIn() as standin:
        yield standin


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
