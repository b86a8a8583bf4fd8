"""The job wrapper sees its source topic lose records (the broker restarted empty), counts it
and starts the job again from the new topic's start, without the old checkpoint."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from flink.job import SERVICE, SourceWatch, after_reset, source_options, wait_or_reset
from services.common.broker import LocalBroker, free_port
from services.common.config import DetectionSettings, KafkaSettings
from services.common.exceptions import ConfigError
from services.common.offsets import OffsetWatch

TOPIC = "prices"


def resets(registry: CollectorRegistry, topic: str = TOPIC) -> float:
    value = registry.get_sample_value("arb_kafka_offsets_reset_total",
                                      {"service": SERVICE, "topic": topic})
    return value or 0.0


def watcher(true: Mapping[int, int]) -> tuple[SourceWatch, CollectorRegistry]:
    registry = CollectorRegistry()
    watch = OffsetWatch(SERVICE, registry)
    watch.touch([TOPIC])
    return SourceWatch("unused:9092", TOPIC, watch, true_ends=lambda t: true), registry


def test_a_fall_confirmed_by_the_true_end_is_a_reset_and_a_short_answer_is_not() -> None:
    true = {0: 100, 1: 50}
    watch, registry = watcher(true)
    assert not watch.check({0: 100, 1: 50})
    # Tansu's short answer (last batch's base offset + 1): the true end says nothing fell
    assert not watch.check({0: 96, 1: 50})
    assert resets(registry) == 0 and not watch.reset.is_set()
    true.update({0: 12})  # the broker came back empty and got 12 records since
    assert watch.check({0: 12, 1: 50})
    assert watch.reset.is_set() and resets(registry) == 1
    watch.reset.clear()
    assert not watch.check({0: 20, 1: 50})  # the new topic is the new baseline
    assert resets(registry) == 1


def test_a_new_topic_id_is_a_reset_even_when_the_new_topic_is_already_longer() -> None:
    true = {0: 100}
    watch, registry = watcher(true)
    assert not watch.check({0: 100}, "id-1")
    true.update({0: 250})  # recreated and written past the old end before this look
    assert watch.check({0: 250}, "id-2")
    assert resets(registry) == 1
    assert not watch.check({0: 260}, "id-2")
    # a fall seen first (the id lookup failed): the new id next time is no second reset
    true.update({0: 5})
    assert watch.check({0: 5}, None)
    assert not watch.check({0: 6}, "id-3")
    assert resets(registry) == 2


def test_after_a_reset_the_job_reads_the_new_topic_from_its_start_without_the_checkpoint(
) -> None:
    settings = DetectionSettings.from_env({"ARB_STARTUP_MODE": "latest-offset"})
    again = after_reset(settings)
    assert again.startup_mode == "earliest-offset" and again.restore is False
    assert settings.startup_mode == "latest-offset" and settings.restore is True
    options = source_options(again, KafkaSettings.from_env({}))
    assert options["scan.startup.mode"] == "earliest-offset"


def test_the_wrapper_port_follows_the_reporter_unless_set() -> None:
    def port(env: dict[str, str]) -> int:
        return DetectionSettings.from_env({"ARB_FLINK_METRICS_PORT": "9249", **env}).wrapper_port

    assert port({}) == 9250
    assert port({"ARB_FLINK_WRAPPER_METRICS_PORT": "9300"}) == 9300
    assert port({"ARB_FLINK_METRICS_PORT": "0"}) == 0
    with pytest.raises(ConfigError, match="ARB_FLINK_WRAPPER_METRICS_PORT"):
        port({"ARB_FLINK_WRAPPER_METRICS_PORT": "nine"})


class _Future:
    def __init__(self, value: object) -> None:
        self.value = value

    def result(self) -> object:
        return self.value


class _Status:
    def __init__(self, done: bool) -> None:
        self.done = done

    def is_globally_terminal_state(self) -> bool:
        return self.done


class FakeResult:
    """A TableResult whose job ends after ``polls`` status lookups."""

    def __init__(self, polls: int) -> None:
        self.polls = polls
        self.waited = False

    def get_job_client(self) -> FakeResult:
        return self

    def get_job_status(self) -> _Future:
        self.polls -= 1
        return _Future(_Status(self.polls <= 0))

    def wait(self) -> None:
        self.waited = True


def test_wait_or_reset_returns_on_a_reset_and_waits_out_a_job_that_ends() -> None:
    reset = threading.Event()
    ended = FakeResult(polls=3)
    assert wait_or_reset(ended, reset, poll_s=0.01) is False and ended.waited
    running = FakeResult(polls=10**6)
    threading.Timer(0.05, reset.set).start()
    assert wait_or_reset(running, reset, poll_s=0.01) is True and not running.waited


@pytest.mark.integration
def test_a_broker_restarted_empty_is_seen_by_the_watcher() -> None:
    port = free_port()
    registry = CollectorRegistry()
    watch = OffsetWatch(SERVICE, registry)
    with LocalBroker(port=port, topics=[TOPIC]) as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 0})
        for i in range(30):
            producer.produce(TOPIC, value=b"%d" % i)
        producer.flush(10)
        source = SourceWatch(broker.bootstrap_servers, TOPIC, watch, interval_s=0.2).start()
        try:
            deadline = time.monotonic() + 20
            while watch.seen_end(TOPIC, 0) is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert watch.seen_end(TOPIC, 0) is not None, "the watcher never saw the topic"
            broker.stop()
            broker.start()  # empty again: the topic recreated with no records
            producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
            producer.produce(TOPIC, value=b"new")
            producer.flush(10)
            assert source.reset.wait(30), "the watcher did not see the reset"
        finally:
            source.stop()
    assert resets(registry) == 1
    # Seen by the topic's new id or by its end falling, whichever look came first: once.
    [(topic, partition, reset)] = watch.found
    assert topic == TOPIC and partition in (-1, 0) and 0 < reset.seen_end <= 30
