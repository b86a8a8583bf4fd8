"""Integration-test helpers: produce raw records, read a topic to its end, run the job."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from services.common.broker import free_port
from services.common.kafka import client_config, end_offsets, make_producer

REPO = Path(__file__).resolve().parent.parent


def produce_raw(bootstrap: str, topic: str, values: Iterable[bytes], key: bytes = b"k") -> int:
    producer = make_producer(bootstrap, **{"linger.ms": 20})
    count = 0
    for value in values:
        producer.produce(topic, key=key, value=value)
        count += 1
    assert producer.flush(15) == 0, "records were not delivered"
    return count


def read_topic(bootstrap: str, topic: str, timeout_s: float = 15.0) -> list[tuple[bytes, int]]:
    """Every record of ``topic`` from the start to its current end: (value, Kafka timestamp ms)."""
    consumer = Consumer(client_config(bootstrap, **{"group.id": f"read-{time.time_ns()}",
                                                    "enable.auto.commit": False}))
    try:
        parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = end_offsets(bootstrap, topic)
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[tuple[bytes, int]] = []
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + timeout_s
        while len(done) < len(parts) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append((msg.value(), msg.timestamp()[1]))
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
        assert len(done) == len(parts), f"{topic}: did not reach the end offsets {ends}"
        return out
    finally:
        consumer.close()


def start_env(tmp_path: Path) -> dict[str, str]:
    """The environment of an ``arb start`` under test: free ports, state under ``tmp_path``,
    none of the caller's ARB_/FLINK_/LOG_ settings, no demo threshold and no webhook unless
    added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "FLINK_", "LOG_"))}
    for name in ("DEMO_MODE", "DISCORD_WEBHOOK_URL"):
        env.pop(name, None)
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "ARB_PRODUCER_METRICS_PORT": str(free_port()),
        "ARB_ALERTER_METRICS_PORT": str(free_port()),
        "ARB_DASHBOARD_METRICS_PORT": str(free_port()),
        "ARB_DASHBOARD_PORT": str(free_port()),
        "ARB_FLINK_METRICS_PORT": "0",
        "ARB_HISTORY_DB": str(tmp_path / "alerts.db"),
        "ARB_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "ARB_TEST_MARKER": str(tmp_path),
    })
    return env


def flink_env(bootstrap: str, topics: Mapping[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "FLINK_", "LOG_"))}
    env.pop("DEMO_MODE", None)
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ARB_PRICES_TOPIC": topics["prices"],
        "ARB_SPREADS_TOPIC": topics["spreads"],
        "ARB_ALERTS_TOPIC": topics["alerts"],
        # Tests that do not name an episodes topic get one beside their alerts topic.
        "ARB_EPISODES_TOPIC": topics.get("episodes", f"{topics['alerts']}-episodes"),
        "ARB_STARTUP_MODE": "earliest-offset",
        "ARB_FLINK_METRICS_PORT": "0",
        "ARB_CHECKPOINT_INTERVAL_MS": "0",
    })
    env.update(extra)
    return env


def run_bounded_job(env: Mapping[str, str], log_file: Path, timeout_s: float = 240) -> None:
    """Run ``python -m flink.job`` over what the prices topic holds now; fail with its log."""
    with open(log_file, "wb") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "flink.job"], cwd=REPO, env={**env, "ARB_BOUNDED": "true"},
            stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s, check=False,
        )
    if proc.returncode != 0:
        tail = log_file.read_text(errors="replace")[-4000:]
        raise AssertionError(f"flink job exited {proc.returncode}:\n{tail}")
