"""The dashboard's shared background reader: its state on its own, then against a real broker
that is down at first, comes up without topics, gets them, and goes away again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import structlog
from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from services.common.broker import LocalBroker, free_port
from services.common.config import KafkaSettings
from services.common.kafka import ensure_topics, make_producer
from services.common.messages import to_json
from services.dashboard.live import LiveReader, LiveState
from services.dashboard.metrics import DashboardMetrics, SessionTracker
from tests.support.alerts import WINDOW_END_MS, make_quote, make_spread
from tests.support.waiting import wait_until

KAFKA = KafkaSettings(spreads_topic="spreads", prices_topic="prices")


def test_state_keeps_one_point_per_window_and_pair() -> None:
    state = LiveState(chart_ms=60_000)
    spread = make_spread()

    state.add_spread(spread)
    state.add_spread(spread)  # re-read after a restart: same window
    state.add_spread(make_spread(buy_exchange="binance", sell_exchange="coinbase"))

    points = state.snapshot().spreads
    assert len(points) == 2
    assert {(p.buy_exchange, p.window_end_ms) for p in points} == {
        ("coinbase", WINDOW_END_MS), ("binance", WINDOW_END_MS),
    }


def test_state_keeps_the_executable_size_of_each_window() -> None:
    state = LiveState(chart_ms=60_000)
    spread = make_spread()
    sized = replace(make_spread(window_end_ms=WINDOW_END_MS + 1000), executable_usd=1000.0,
                    executable_size=0.015, executable_profit_usd=0.3)

    state.add_spread(spread)
    state.add_spread(sized)

    points = sorted(state.snapshot().spreads, key=lambda p: p.window_end_ms)
    assert [(p.executable_usd, p.executable_profit_usd) for p in points] == [
        (None, None), (sized.executable_usd, sized.executable_profit_usd)]


def test_state_drops_points_older_than_the_chart_span() -> None:
    state = LiveState(chart_ms=5000)
    for i in range(10):
        state.add_spread(make_spread(window_end_ms=WINDOW_END_MS + i * 1000))
    state.add_spread(make_spread(window_end_ms=WINDOW_END_MS))  # late and too old: ignored

    ends = [p.window_end_ms for p in state.snapshot().spreads]

    newest = WINDOW_END_MS + 9000
    assert ends == list(range(newest - 5000, newest + 1, 1000))


def test_state_keeps_the_newest_record_time_per_venue() -> None:
    state = LiveState(chart_ms=1000)
    state.add_price(make_quote(ts_ms=WINDOW_END_MS + 500), read_ts_ms=1)
    state.add_price(make_quote(ts_ms=WINDOW_END_MS), read_ts_ms=2)  # older record read later
    state.add_price(make_quote(exchange="binance", ts_ms=WINDOW_END_MS), read_ts_ms=3)

    venues = state.snapshot().venues

    assert (venues["coinbase"].last_ts_ms, venues["coinbase"].records) == (WINDOW_END_MS + 500, 2)
    assert venues["coinbase"].last_read_ts_ms == 2
    assert venues["binance"].records == 1


def test_state_starts_unchecked() -> None:
    snapshot = LiveState(chart_ms=1000, bootstrap_servers="h:1").snapshot(taken_ts_ms=5)

    assert (snapshot.kafka_checked, snapshot.kafka_connected, snapshot.kafka_problem) == (
        False, False, None,
    )
    assert (snapshot.taken_ts_ms, snapshot.bootstrap_servers) == (5, "h:1")


def test_reader_handles_a_batch_counting_what_does_not_parse() -> None:
    metrics = DashboardMetrics(CollectorRegistry())
    state = LiveState(chart_ms=60_000)
    reader = LiveReader(KAFKA, "dash", state, metrics)
    batch = [
        Message(topic="spreads", partition=0, offset=0, value=to_json(make_spread())),
        Message(topic="spreads", partition=0, offset=1, value=b"{broken"),
        Message(topic="spreads", partition=0, offset=2, value=b"{also broken"),
        Message(topic="prices", partition=0, offset=0, value=to_json(make_quote())),
        Message(topic="prices", partition=0, offset=1, value=None),
    ]

    with structlog.testing.capture_logs() as logs:
        reader.handle(batch, read_ts_ms=WINDOW_END_MS)

    snapshot = state.snapshot()
    assert len(snapshot.spreads) == 1
    assert set(snapshot.venues) == {"coinbase"}
    assert snapshot.records_read == {"spreads": 3, "prices": 2}
    registry = metrics.registry
    assert registry.get_sample_value("arb_dashboard_records_read_total",
                                     {"topic": "spreads"}) == 3
    assert registry.get_sample_value("arb_records_invalid_total",
                                     {"topic": "spreads", "reason": "not_json"}) == 2
    assert registry.get_sample_value("arb_records_invalid_total",
                                     {"topic": "prices", "reason": "empty_value"}) == 1
    invalid_logs = [e for e in logs if e["event"] == "invalid_record"]
    assert len(invalid_logs) == 2  # once per topic and reason, not per record
    assert snapshot.kafka_connected  # records prove the broker is there


def test_session_tracker_forgets_closed_sessions() -> None:
    open_sessions = {"a", "b"}
    tracker = SessionTracker(is_active=lambda sid: sid in open_sessions)
    for sid in ("a", "b", "a"):
        tracker.touch(sid)
    assert tracker.count() == 2

    open_sessions.discard("a")

    assert tracker.count() == 1


@pytest.fixture
def reader_parts() -> Iterator[tuple[KafkaSettings, LiveState, DashboardMetrics, list[LiveReader]]]:
    port = free_port()
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", spreads_topic="spreads",
                          prices_topic="prices")
    started: list[LiveReader] = []
    yield kafka, LiveState(60_000, kafka.bootstrap_servers), DashboardMetrics(
        CollectorRegistry()), started
    for reader in started:
        reader.close()


@pytest.mark.integration
def test_reader_rides_out_a_broker_that_is_down_missing_topics_and_goes_away(
    reader_parts: tuple[KafkaSettings, LiveState, DashboardMetrics, list[LiveReader]],
) -> None:
    kafka, state, metrics, started = reader_parts
    reader = LiveReader(kafka, "dash", state, metrics, retry_s=0.3, stats_interval_ms=300)
    started.append(reader.start())

    wait_until(lambda: state.snapshot().kafka_checked, 15, "a first answer")
    down = state.snapshot()
    assert not down.kafka_connected
    assert kafka.bootstrap_servers in (down.kafka_problem or "")

    port = int(kafka.bootstrap_servers.rsplit(":", 1)[1])
    with LocalBroker(port=port) as broker:
        wait_until(lambda: state.snapshot().kafka_connected, 30, "connected")
        assert "waiting for topic" in (state.snapshot().kafka_problem or "")

        ensure_topics(broker.bootstrap_servers, ["spreads", "prices"], 1)
        producer = make_producer(broker.bootstrap_servers)
        spreads = [make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(20)]
        for spread in spreads:
            producer.produce("spreads", value=to_json(spread))
        producer.produce("prices", value=to_json(make_quote(ts_ms=int(time.time() * 1000))))
        assert producer.flush(10) == 0

        wait_until(lambda: len(state.snapshot().spreads) == len(spreads), 30, "all spreads")
        wait_until(lambda: "coinbase" in state.snapshot().venues, 30, "the quote")
        assert state.snapshot().kafka_problem is None
        wait_until(lambda: metrics.registry.get_sample_value(
            "arb_kafka_consumer_lag_records",
            {"topic": "spreads", "partition": "0", "group": "dash"},
        ) == 0, 30, "lag gauge at 0")

    wait_until(lambda: not state.snapshot().kafka_connected, 30, "broker gone noticed")
    assert reader.alive()  # it waits for the broker to come back
    assert len(state.snapshot().spreads) == len(spreads)  # what it had, it keeps


@pytest.mark.integration
def test_reader_starts_near_the_end_of_long_topics(
    reader_parts: tuple[KafkaSettings, LiveState, DashboardMetrics, list[LiveReader]],
) -> None:
    kafka, state, metrics, started = reader_parts
    port = int(kafka.bootstrap_servers.rsplit(":", 1)[1])
    with LocalBroker(port=port) as broker:
        ensure_topics(broker.bootstrap_servers, ["spreads", "prices"], 1)
        producer = make_producer(broker.bootstrap_servers)
        total = 300
        for i in range(total):
            producer.produce("spreads", value=to_json(make_spread(
                window_end_ms=WINDOW_END_MS + i * 1000)))
            producer.flush(10)  # one record per batch: Tansu reports exact end offsets then
        backfill = 50
        reader = LiveReader(kafka, "dash", state, metrics, retry_s=0.3,
                            spreads_backfill=backfill)
        started.append(reader.start())

        wait_until(lambda: len(state.snapshot().spreads) == backfill, 30, "backfill read")
        time.sleep(1.0)

    ends = [p.window_end_ms for p in state.snapshot().spreads]
    assert ends == [WINDOW_END_MS + i * 1000 for i in range(total - backfill, total)]
