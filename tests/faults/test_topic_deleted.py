"""A topic deleted while the pipeline runs, then recreated: the producer writing
``crypto-prices`` and the alerter reading ``arbitrage-alerts`` with a real Tansu broker.

Nobody but an operator (here the test, with ``ensure_topics``) recreates a deleted topic: Tansu
does not auto-create one for a producer. It goes on accepting records for the deleted name
without listing the topic, and a topic created again under that name keeps them and numbers its
own records from below their end. Both are offsets going back, counted as
``arb_kafka_offsets_reset_total``; the records written before the deletion are gone and counted
in ``arb_kafka_records_lost_total`` (which also counts, wrongly, the kept records that the new
numbering went below: they stay readable).

A consumer of a deleted topic dies: librdkafka segfaults in its own thread on Tansu's Fetch
answer for the deleted topic's id. Restarted (compose's ``restart: unless-stopped``), the
alerter finds the group's offsets gone with the topic and reads the new topic from its start,
so every alert produced after the recreation is posted once; the reset itself is not counted.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from services.common.broker import LocalBroker, free_port
from services.common.kafka import client_config, ensure_topics
from services.common.messages import Quote, to_json
from services.producer.metrics import ProducerMetrics
from services.producer.publisher import KafkaPublisher
from tests.alerter.conftest import Topics, discord, topics  # noqa: F401 - fixtures
from tests.alerter.test_main import AlerterProcess, alerter_env
from tests.support.alerts import WINDOW_END_MS, make_spread
from tests.support.discord_standin import DiscordStandIn
from tests.support.waiting import http_body, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PRICES = "crypto-prices"
RECORDS = 3000
DELETE_AT = 1000
RECREATE_AT = 1500
T0_MS = 1_717_243_200_000
#: alerts before the deletion and after the recreation
BEFORE = 5
AFTER = 8


def quote(i: int) -> Quote:
    """Record ``i`` of the fixed input; its index is its ``ts_ms`` after ``T0_MS``."""
    return Quote(exchange="binance", symbol="BTC-USD", venue_symbol="BTCUSDT", bid=100.0 + i,
                 bid_size=1.0, ask=100.5 + i, ask_size=1.0, quote_ccy="USD", fx_to_usd=1.0,
                 ts_ms=T0_MS + i, recv_ts_ms=T0_MS + i, exchange_ts_ms=None)


def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient(client_config(bootstrap))
    for future in admin.delete_topics([topic], operation_timeout=10).values():
        future.result(10)


def listed(bootstrap: str, topic: str) -> bool:
    admin = AdminClient(client_config(bootstrap))
    return topic in admin.list_topics(timeout=10).topics


def read_all(bootstrap: str, topic: str, timeout_s: float = 15.0) -> list[bytes]:
    """Every record of partition 0 from its start, until a fetch comes back empty."""
    consumer = Consumer(client_config(bootstrap, **{"group.id": "read-all",
                                                    "enable.auto.commit": False}))
    values: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = [m for m in consumer.consume(10_000, 1.0) if not m.error()]
            if not batch and values:
                break
            values += [m.value() for m in batch]
    finally:
        consumer.close()
    return values


def test_prices_topic_deleted_and_recreated_under_the_producer() -> None:
    registry = CollectorRegistry()
    with LocalBroker(port=free_port(), topics=[PRICES]) as broker:
        bootstrap = broker.bootstrap_servers
        publisher = KafkaPublisher(bootstrap, PRICES, ProducerMetrics(registry))
        before_delete = 0
        for i in range(RECORDS):
            publisher.publish(quote(i))
            time.sleep(0.002)  # a feed's pace: deliveries go on around the faults
            if i == DELETE_AT - 1:
                assert publisher.flush(10) == 0
                before_delete = publisher.delivered
                delete_topic(bootstrap, PRICES)
            elif i == RECREATE_AT - 1:
                publisher.flush(10)
                # No auto-create: the producer went on writing, the topic is still not there.
                assert not listed(bootstrap, PRICES)
                ensure_topics(bootstrap, [PRICES], partitions=1)
        left = publisher.flush(30)
        read = [json.loads(v)["ts_ms"] - T0_MS for v in read_all(bootstrap, PRICES)]
    resets = registry.get_sample_value(
        "arb_kafka_offsets_reset_total", {"service": "producer", "topic": PRICES})
    lost = registry.get_sample_value(
        "arb_kafka_records_lost_total", {"service": "producer", "topic": PRICES})
    print(f"delivered {publisher.delivered}, failed {publisher.failed}, dropped "
          f"{publisher.dropped}, resets {resets}, lost {lost}, readable {len(read)}, "
          f"found {publisher.offsets.found}")
    # Every record sent is accounted for: delivered, failed or dropped, and nothing waits.
    assert left == 0
    assert publisher.delivered + publisher.failed + publisher.dropped == RECORDS
    assert before_delete == DELETE_AT
    # The deletion is seen (the next delivery lands at an offset already acknowledged) and the
    # records acknowledged before it are counted lost.
    assert resets is not None and resets >= 1
    assert resets == len(publisher.offsets.found)
    assert publisher.offsets.found[0][2].lost == DELETE_AT
    assert lost is not None and lost >= DELETE_AT
    # Everything delivered after the deletion is readable from the recreated topic, once.
    assert len(read) == len(set(read)) == publisher.delivered - DELETE_AT
    assert min(read) >= DELETE_AT


def alerts_metric(url: str, name: str, topic: str) -> float:
    families = text_string_to_metric_families(http_body(url).decode())
    return sum(s.value for f in families for s in f.samples
               if s.name == name and s.labels.get("topic") == topic)


def test_alerts_topic_deleted_and_recreated_under_the_alerter(
    topics: Topics, discord: DiscordStandIn,  # noqa: F811 - fixtures
    tmp_path: Path, unique: str, output_dir: Path,
) -> None:
    topic = topics.kafka.alerts_topic
    bootstrap = topics.broker.bootstrap_servers
    group = f"alerter-{unique}"
    before = [make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(BEFORE)]
    # More records after the recreation than were committed before it: a consumer resuming at
    # its old committed offset would skip the first of them without a word.
    after = [make_spread(window_end_ms=WINDOW_END_MS + (100 + i) * 1000) for i in range(AFTER)]
    port = free_port()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    env = alerter_env(topics, tmp_path, unique, discord.url, ARB_ALERT_COOLDOWN_SECONDS="0",
                      ARB_ALERTER_METRICS_PORT=str(port))
    log_file = output_dir / "alerter.log"
    log_file.unlink(missing_ok=True)
    topics.produce(topic, [to_json(a) for a in before])
    runs: list[int | None] = []
    alerter = AlerterProcess(env, log_file, tmp_path)
    try:
        discord.wait_for(BEFORE, timeout_s=60)
        wait_until(lambda: topics.committed_offset(group, topic) == BEFORE, 30,
                   "the first alerts committed")
        delete_topic(bootstrap, topic)
        time.sleep(3)  # the alerter fetches from the deleted topic meanwhile
        runs.append(alerter.proc.poll())
        ensure_topics(bootstrap, [topic], partitions=1)
        # Tansu drops the group's committed offsets with the topic: a consumer (re)joining
        # starts from the new topic's start (auto.offset.reset=earliest).
        assert topics.committed_offset(group, topic) < 0
        topics.produce(topic, [to_json(a) for a in after])
        if alerter.proc.poll() is not None:  # what a supervisor (compose) does
            alerter = AlerterProcess(env, log_file, tmp_path)
        wanted = Counter(a.id for a in before + after)
        wait_until(lambda: Counter(discord.accepted_alert_ids) == wanted, 60,
                   "the alerts after the recreation posted")
        wait_until(lambda: topics.committed_offset(group, topic) == AFTER, 30,
                   "the alerts after the recreation committed")
        resets = alerts_metric(metrics_url, "arb_kafka_offsets_reset_total", topic)
        runs.append(alerter.proc.poll())
        assert alerter.terminate() == 0
    finally:
        if alerter.proc.poll() is None:
            alerter.proc.kill()
    print(f"exit codes {runs}, resets {resets}, accepted {discord.accepted_alert_ids}")
    assert Counter(discord.accepted_alert_ids) == wanted  # none lost, none twice
    assert runs[1] is None  # the (restarted) alerter reads the recreated topic and runs on
    if runs[0] is None:  # a client that survives the deletion sees it and counts it
        assert resets >= 1
    else:
        # librdkafka (2.16) dies in its own thread on Tansu's Fetch answer for the deleted
        # topic's id, before any Python runs: the process that saw the reset cannot count it,
        # and the restarted one finds no committed offset to compare with.
        assert runs[0] == -signal.SIGSEGV
        assert resets == 0
