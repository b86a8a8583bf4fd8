"""The broker goes away under a running producer: paused (SIGSTOP/SIGCONT, nothing is lost:
librdkafka holds the records and delivers them late), then killed and restarted empty (the
records in flight are lost and counted, never silently). The producer is never restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.broker import LocalBroker, free_port
from services.common.kafka import end_offsets, ensure_topics
from tests.helpers import REPO

pytestmark = pytest.mark.integration


def start_producer(bootstrap: str, topic: str, fixtures_dir: Path, log: Path,
                   ) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARB_")}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "ARB_PRICES_TOPIC": topic,
                "ARB_PRODUCER_METRICS_PORT": "0", "ARB_FIXTURES_DIR": str(fixtures_dir)})
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.producer", "replay", "--speed", "5", "--loop"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )


def stop_and_summary(proc: subprocess.Popen[bytes], log: Path) -> dict:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    for line in reversed(log.read_text().splitlines()):
        if '"replay_finished"' in line:
            return json.loads(line)
    raise AssertionError(f"no replay_finished line:\n{log.read_text()[-3000:]}")


def count(bootstrap: str, topic: str) -> int:
    return sum(end_offsets(bootstrap, topic).values())


def wait_for_growth(bootstrap: str, topic: str, above: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = count(bootstrap, topic)
        if now > above:
            return now
        time.sleep(0.5)
    raise AssertionError(f"{topic} did not grow past {above} within {timeout_s} s")


def test_paused_broker_loses_nothing(fixtures_dir: Path, output_dir: Path) -> None:
    topic = "prices-pause"
    with LocalBroker(port=free_port(), topics=[topic]) as broker:
        log = output_dir / "producer.log"
        producer = start_producer(broker.bootstrap_servers, topic, fixtures_dir, log)
        try:
            before = wait_for_growth(broker.bootstrap_servers, topic, 100, 30)
            os.kill(broker.pid, signal.SIGSTOP)  # a broker that hangs: no errors, no answers
            time.sleep(5)
            os.kill(broker.pid, signal.SIGCONT)
            wait_for_growth(broker.bootstrap_servers, topic, before + 500, 30)
            assert producer.poll() is None, "the producer died during the outage"
        finally:
            summary = stop_and_summary(producer, log)
        stored = count(broker.bootstrap_servers, topic)
    assert summary["failed"] == 0 and summary["dropped"] == 0 and summary["undelivered"] == 0
    assert summary["delivered"] == summary["sent"] == stored  # every record, once


def test_restarted_broker_counts_what_it_lost(fixtures_dir: Path, output_dir: Path) -> None:
    topic = "prices-restart"
    port = free_port()
    broker = LocalBroker(port=port, topics=[topic]).start()
    log = output_dir / "producer.log"
    producer = start_producer(broker.bootstrap_servers, topic, fixtures_dir, log)
    try:
        wait_for_growth(broker.bootstrap_servers, topic, 100, 30)
        os.kill(broker.pid, signal.SIGKILL)  # memory storage: the topic and its records go
        broker.stop()
        time.sleep(3)
        broker = LocalBroker(port=port, topics=[topic]).start()  # recreated, empty
        ensure_topics(broker.bootstrap_servers, [topic], partitions=1)
        after_restart = wait_for_growth(broker.bootstrap_servers, topic, 0, 60)
        assert after_restart > 0
        assert producer.poll() is None, "the producer died during the outage"
    finally:
        summary = stop_and_summary(producer, log)
        stored_after = count(broker.bootstrap_servers, topic)
        broker.stop()
    # Everything sent is accounted for: delivered (before the crash, or to the new broker),
    # or counted as failed or dropped. Nothing vanishes unseen.
    assert summary["undelivered"] == 0
    assert summary["sent"] == summary["delivered"] + summary["failed"] + summary["dropped"]
    assert stored_after <= summary["delivered"]
    print(f"sent {summary['sent']}, delivered {summary['delivered']}, failed "
          f"{summary['failed']}, dropped {summary['dropped']}, in the new topic {stored_after}")
