"""The one place that talks confluent-kafka: stated defaults, graded errors, no network at import.

Tansu (the local broker) needs ``session.timeout.ms`` near 6 s, or a consumer group join takes
~23 s; the same value is fine for Apache Kafka.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

log = structlog.get_logger(__name__)

#: librdkafka's own log lines (``%3|...|FAIL|...`` on stderr by default) go to this logger
#: instead, and from there through structlog like every other line (services/common/logging.py).
#: They are handed over when the client is polled.
LIBRDKAFKA_LOGGER = logging.getLogger("librdkafka")

PRODUCER_DEFAULTS: dict[str, Any] = {
    # Not idempotent: after a broker restart that loses its state (Tansu's memory storage, or a
    # wiped Kafka), an idempotent producer never delivers again (every record times out). A
    # retried price record may be written twice, which changes nothing downstream (the last
    # quote per window wins; ids are deterministic). One request in flight keeps the order.
    "enable.idempotence": False,
    "max.in.flight.requests.per.connection": 1,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "none",
    # The local queue's bounds (beyond them produce() raises BufferError and the caller decides
    # what to drop) belong to the caller: the price publisher's is ARB_PRODUCER_QUEUE_MAX_MESSAGES.
    "message.timeout.ms": 30_000,
}

CONSUMER_DEFAULTS: dict[str, Any] = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    # A fetch waits this long for records when there are none: librdkafka's 500 ms default held
    # about one opened episode in four a quarter second on its way to Discord (tests/e2e/
    # test_tick_latency.py). 20 ms costs a few idle fetches a second per consumer.
    "fetch.wait.max.ms": 20,
}


def _on_error(err: KafkaError) -> None:
    """librdkafka reports most errors as transient and retries by itself; only fatal ones shout."""
    if err.fatal():
        log.error("kafka_fatal_error", code=err.name(), reason=err.str())
    elif err.code() in {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT}:
        log.warning("kafka_broker_unreachable", code=err.name(), reason=err.str())
    else:
        log.info("kafka_transient_error", code=err.name(), reason=err.str())


def client_config(bootstrap_servers: str, **conf: Any) -> dict[str, Any]:
    """What every client gets, whoever builds it: the brokers and the logger hook."""
    return {"bootstrap.servers": bootstrap_servers, "logger": LIBRDKAFKA_LOGGER, **conf}


def make_producer(bootstrap_servers: str, **overrides: Any) -> Producer:
    return Producer(client_config(
        bootstrap_servers, **{"error_cb": _on_error, **PRODUCER_DEFAULTS, **overrides}))


def make_consumer(bootstrap_servers: str, group_id: str, **overrides: Any) -> Consumer:
    return Consumer(client_config(bootstrap_servers, **{
        "group.id": group_id, "error_cb": _on_error, **CONSUMER_DEFAULTS, **overrides}))


def ensure_topics(
    bootstrap_servers: str, topics: Iterable[str], partitions: int, timeout_s: float = 15.0,
) -> None:
    """Create missing topics; an existing topic is fine (its partition count is left alone)."""
    admin = AdminClient(client_config(bootstrap_servers, error_cb=_on_error))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics
              if t not in existing]
    if not wanted:
        return
    for topic, future in admin.create_topics(wanted, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            log.info("topic_created", topic=topic, partitions=partitions)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def end_offsets(bootstrap_servers: str, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    """The true end offset (last offset + 1) of every partition of ``topic``.

    Tansu answers a "latest offset" lookup with the base offset of the last record batch + 1,
    which undercounts whenever that batch holds several records. So start one record before the
    reported end and take the end of what the next fetch returns: correct on Tansu and on Apache
    Kafka alike, and a snapshot (not a wait) on a topic that is still being written.
    """
    from confluent_kafka import TopicPartition

    consumer = Consumer(client_config(bootstrap_servers, **{
        "group.id": "arb-end-offsets",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 50,
    }))
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        partitions = sorted(meta.topics[topic].partitions)
        ends: dict[int, int] = {}
        for partition in partitions:
            tp = TopicPartition(topic, partition)
            low, reported = consumer.get_watermark_offsets(tp, timeout=timeout_s)
            ends[partition] = max(low, reported)
            # Read even when the answer says "empty": under load Tansu has answered 0 for a
            # partition that held records. The first fetch from there holds the batch the
            # answer fell short in; records written after that are not waited for.
            consumer.assign([TopicPartition(topic, partition, max(low, reported - 1))])
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                batch = [m for m in consumer.consume(100_000, 0.3) if not m.error()]
                if not batch:
                    break
                ends[partition] = max(ends[partition], batch[-1].offset() + 1)
                if len(batch) < 100_000:
                    break
            consumer.unassign()
        return ends
    finally:
        consumer.close()
