"""The alerter: per-record logic on its own, then the whole service against a real broker.

The handler tests use a real SQLite store and a real HTTP stand-in for Discord, without Kafka.
The integration tests run :class:`AlerterService` (and ``python -m services.alerter``) against
Tansu and check what Discord received, what the store holds and which offsets were committed.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import structlog
from prometheus_client import CollectorRegistry

from services.alerter.discord import build_payload
from services.alerter.metrics import AlerterMetrics, consumer_lags
from services.alerter.service import (
    COOLDOWN,
    DUPLICATE,
    FAILED,
    INTERRUPTED,
    INVALID,
    NO_WEBHOOK,
    SENT,
    AlerterService,
    AlertHandler,
)
from services.common.config import AlerterSettings, KafkaSettings
from services.common.history import (
    DELIVERED,
    PENDING,
    SUPPRESSED,
    AlertHistory,
    read_counts,
    read_recent,
)
from services.common.messages import Spread, to_json
from tests.alerter.conftest import Topics, fast_webhook
from tests.support.alerts import WINDOW_END_MS, make_spread
from tests.support.discord_standin import DiscordStandIn, Reply
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


def sample(metrics: AlerterMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def three_alerts() -> list[Spread]:
    return [
        make_spread(window_end_ms=WINDOW_END_MS),
        make_spread(window_end_ms=WINDOW_END_MS + 1000, buy_exchange="binance",
                    sell_exchange="coinbase"),
        make_spread(symbol="ETH-USD", window_end_ms=WINDOW_END_MS + 2000, buy_ask=3500.0,
                    sell_bid=3504.0),
    ]


# -- AlertHandler: no Kafka --------------------------------------------------------------------

def handler_for(history: AlertHistory, metrics: AlerterMetrics, url: str | None,
                **client: object) -> AlertHandler:
    return AlertHandler(history, metrics, "alerts",
                        webhook=fast_webhook(url, **client) if url else None,
                        dashboard_url="http://dash.example")


def test_valid_alert_is_stored_delivered_and_measured(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    spread = make_spread()
    handler = handler_for(history, metrics, discord.url)

    outcome = handler.handle(to_json(spread), kafka_ts_ms=spread.newest_recv_ts_ms + 600)

    assert (outcome.kind, outcome.commit, outcome.alert_id) == (SENT, True, spread.id)
    assert discord.received == [build_payload(spread, "http://dash.example")]
    stored = history.get(spread.id)
    assert stored is not None
    assert (stored.status, stored.attempts) == (DELIVERED, 1)
    assert sample(metrics, "arb_alerts_received_total") == 1
    assert sample(metrics, "arb_alerts_sent_total", channel="discord") == 1
    assert sample(metrics, "arb_detection_latency_seconds_sum") == pytest.approx(0.6)
    assert sample(metrics, "arb_detection_latency_seconds_count") == 1
    assert sample(metrics, "arb_alert_delivery_latency_seconds_count") == 1


def test_duplicate_is_suppressed_and_stored_once(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    handler = handler_for(history, metrics, discord.url)
    raw = to_json(make_spread())

    first, second = handler.handle(raw), handler.handle(raw)

    assert (first.kind, second.kind) == (SENT, DUPLICATE)
    assert second.commit
    assert len(discord.received) == 1
    assert len(history.recent()) == 1
    assert sample(metrics, "arb_alerts_suppressed_total", reason="duplicate") == 1
    assert sample(metrics, "arb_alerts_received_total") == 2


@pytest.mark.parametrize(("raw", "reason"), [
    (b"not json {", "not_json"),
    (b'{"v":1,"id":"BTC-USD|1|a|b","symbol":"BTC-USD"}', "missing_field"),
    (b"[1, 2]", "not_object"),
    (b'{"v":99}', "bad_version"),
    (None, "empty_value"),
])
def test_bad_record_is_counted_logged_once_and_committed(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
    raw: bytes | None, reason: str,
) -> None:
    handler = handler_for(history, metrics, discord.url)

    with structlog.testing.capture_logs() as logs:
        outcome = handler.handle(raw)

    assert (outcome.kind, outcome.commit) == (INVALID, True)
    assert sample(metrics, "arb_records_invalid_total", topic="alerts", reason=reason) == 1
    assert [e["event"] for e in logs] == ["invalid_alert_record"]
    assert discord.received == []
    assert history.recent() == []


def test_huge_bad_record_is_logged_truncated(
    history: AlertHistory, metrics: AlerterMetrics,
) -> None:
    with structlog.testing.capture_logs() as logs:
        handler_for(history, metrics, None).handle(b"x" * 100_000)
    assert len(logs[0]["raw"]) < 300


def test_without_webhook_history_is_still_recorded(
    history: AlertHistory, metrics: AlerterMetrics,
) -> None:
    spread = make_spread()

    outcome = handler_for(history, metrics, None).handle(to_json(spread))

    assert (outcome.kind, outcome.commit) == (NO_WEBHOOK, True)
    assert history.get(spread.id).status == NO_WEBHOOK  # type: ignore[union-attr]
    assert sample(metrics, "arb_alerts_suppressed_total", reason="no_webhook") == 1


def test_rejected_alert_is_recorded_failed_without_the_url(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    discord.script(Reply(404, body={"message": "Unknown Webhook", "code": 10015}))
    spread = make_spread()

    outcome = handler_for(history, metrics, discord.url).handle(to_json(spread))

    assert (outcome.kind, outcome.commit) == (FAILED, True)
    stored = history.get(spread.id)
    assert stored is not None
    assert (stored.status, stored.attempts) == (FAILED, 1)
    assert "Unknown Webhook" in (stored.last_error or "")
    assert "stand-in-secret-token" not in (stored.last_error or "")
    assert sample(metrics, "arb_alerts_failed_total", channel="discord",
                  reason="client_error") == 1


def test_interrupted_delivery_is_left_pending_and_uncommitted_then_retried(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    discord.script(Reply.rate_limited(30))
    spread = make_spread()
    stopping = handler_for(history, metrics, discord.url, sleep=lambda seconds: False)

    outcome = stopping.handle(to_json(spread))

    assert (outcome.kind, outcome.commit) == (INTERRUPTED, False)
    assert history.get(spread.id).status == PENDING  # type: ignore[union-attr]

    # The next run gets the uncommitted record again: pending is not final, so it is sent.
    again = handler_for(history, metrics, discord.url).handle(to_json(spread))
    assert again.kind == SENT
    assert discord.statuses == [429, 204]


def test_cooldown_suppresses_the_same_direction_only_and_commits(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    cooldown_ms = 3000
    handler = handler_for(history, metrics, discord.url)
    handler.cooldown_ms = cooldown_ms
    same = [make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(6)]
    other = make_spread(window_end_ms=WINDOW_END_MS + 1000, buy_exchange="binance",
                        sell_exchange="coinbase")
    eth = make_spread(symbol="ETH-USD", window_end_ms=WINDOW_END_MS + 1000, buy_ask=3500.0,
                      sell_bid=3504.0)
    # Expected from the rule itself: sent unless one was sent within the cooldown before it.
    expected_sent: list[int] = []
    for spread in same:
        if not any(0 < spread.window_end_ms - s < cooldown_ms for s in expected_sent):
            expected_sent.append(spread.window_end_ms)

    outcomes = [handler.handle(to_json(s)) for s in [*same, other, eth]]

    assert all(o.commit for o in outcomes)
    kinds = {o.alert_id: o.kind for o in outcomes}
    assert kinds[other.id] == kinds[eth.id] == SENT
    sent = [s.window_end_ms for s in same if kinds[s.id] == SENT]
    assert sent == expected_sent and len(sent) < len(same)
    suppressed = [s for s in same if kinds[s.id] == COOLDOWN]
    assert len(suppressed) == len(same) - len(sent)
    assert len(discord.received) == len(sent) + 2
    for spread in suppressed:
        stored = history.get(spread.id)
        assert stored is not None
        assert stored.status == SUPPRESSED
        assert stored.suppressed_by in {s.id for s in same if kinds[s.id] == SENT}
    assert sample(metrics, "arb_alerts_suppressed_total", reason="cooldown") == len(suppressed)
    # A redelivered suppressed record is a duplicate, not a second chance to be sent.
    assert handler.handle(to_json(suppressed[0])).kind == DUPLICATE


def test_cooldown_counts_only_delivered_alerts(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    discord.script(Reply(400, body={"message": "Invalid Form Body"}))
    handler = handler_for(history, metrics, discord.url)
    handler.cooldown_ms = 60_000
    first, second = (make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(2))

    kinds = [handler.handle(to_json(s)).kind for s in (first, second)]

    # The trader never saw the first one, so the second is not held back.
    assert kinds == [FAILED, SENT]


def test_cooldown_off_sends_every_window(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    handler = handler_for(history, metrics, discord.url)
    spreads = [make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(4)]

    assert {handler.handle(to_json(s)).kind for s in spreads} == {SENT}
    assert len(discord.received) == 4


def test_refused_webhook_is_reported_once_and_not_posted_to_again(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    discord.set_default(Reply(404, body={"message": "Unknown Webhook", "code": 10015}))
    handler = handler_for(history, metrics, discord.url)
    spreads = [make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(4)]

    with structlog.testing.capture_logs() as logs:
        outcomes = [handler.handle(to_json(s)) for s in spreads]

    assert {(o.kind, o.commit) for o in outcomes} == {(FAILED, True)}
    assert len(discord.received) == 1
    assert {history.get(s.id).status for s in spreads} == {FAILED}  # type: ignore[union-attr]
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [e["event"] for e in errors] == ["discord_webhook_unusable"]
    assert errors[0]["status"] == 404
    assert "stand-in-secret-token" not in repr(logs)
    assert sample(metrics, "arb_alerts_failed_total", channel="discord",
                  reason="client_error") == 1
    assert sample(metrics, "arb_alerts_failed_total", channel="discord",
                  reason="webhook_unusable") == len(spreads) - 1


def test_consumer_lags_from_librdkafka_stats() -> None:
    unknown = {"consumer_lag": -1, "hi_offset": -1, "app_offset": -1001, "next_offset": -1001}
    stats = {"topics": {"alerts": {"partitions": {
        "0": {"consumer_lag": 3},
        "1": unknown,
        "2": {"consumer_lag": -1, "ls_offset": 8, "hi_offset": 8, "app_offset": 5},
        "3": {"consumer_lag": -1, "ls_offset": 8, "app_offset": -1001, "next_offset": 8},
        "-1": {"consumer_lag": 0},
    }}}}
    assert consumer_lags(json.dumps(stats)) == {"alerts": {0: 3, 2: 3, 3: 0}}
    assert consumer_lags("not json") == {}


# -- AlerterService against a real broker -------------------------------------------------------

def alerter_settings(tmp_path: Path, unique: str, webhook_url: str | None) -> AlerterSettings:
    return AlerterSettings(
        webhook_url=webhook_url,
        history_db=str(tmp_path / "alerts.db"),
        group_id=f"alerter-{unique}",
        metrics_port=0,
        dashboard_url="http://localhost:8501",
        http_timeout_s=2.0,
        max_attempts=3,
        cooldown_s=0,
        discord_messages="alerts",  # these tests are about alert windows
    )


class Running:
    """An AlerterService on a thread, stopped and joined on exit."""

    def __init__(self, service: AlerterService) -> None:
        self.service = service
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="alerter-under-test")

    def _run(self) -> None:
        try:
            self.service.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced by __exit__
            self.error = exc

    def __enter__(self) -> AlerterService:
        self._thread.start()
        wait_until(lambda: self.service.ready() or self.error is not None, 30, "group join")
        assert self.error is None, self.error
        return self.service

    def __exit__(self, *exc: object) -> None:
        self.service.stop()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "alerter did not stop"
        assert self.error is None, self.error


def new_service(
    settings: AlerterSettings, kafka: KafkaSettings, **options: object,
) -> AlerterService:
    return AlerterService(settings, kafka, metrics=AlerterMetrics(CollectorRegistry()),
                          poll_timeout_s=0.1, **options)  # type: ignore[arg-type]


@pytest.mark.integration
def test_alerter_delivers_each_alert_once_skips_bad_records_and_commits(
    topics: Topics, discord: DiscordStandIn, tmp_path: Path, unique: str,
) -> None:
    alerts = three_alerts()
    records = [
        to_json(alerts[0]),
        b"this is not json",
        b'{"v":1,"id":"BTC-USD|1|coinbase|binance","symbol":"BTC-USD"}',
        to_json(alerts[1]),
        to_json(alerts[0]),  # a redelivery / replayed window: same id
        to_json(alerts[2]),
    ]
    topic = topics.kafka.alerts_topic
    topics.produce(topic, records)
    discord.script(Reply.rate_limited(0.2), Reply(500))  # first alert needs three attempts
    settings = alerter_settings(tmp_path, unique, discord.url)
    service = new_service(settings, topics.kafka, spread_gauges=False)

    with Running(service):
        wait_until(lambda: len(discord.accepted) == 3, 30, "three accepted posts")
        wait_until(lambda: topics.committed_offset(settings.group_id, topic) == len(records),
                   30, "offsets committed")
        time.sleep(0.3)  # nothing more should arrive

    assert sorted(discord.accepted_alert_ids) == sorted(a.id for a in alerts)
    stored = read_recent(settings.history_db)
    assert [a.id for a in stored] == [a.id for a in reversed(alerts)]
    assert {a.status for a in stored} == {DELIVERED}
    assert {a.id: a.attempts for a in stored}[alerts[0].id] == 3

    m = service.metrics
    assert sample(m, "arb_alerts_received_total") == 4
    assert sample(m, "arb_alerts_sent_total", channel="discord") == 3
    assert sample(m, "arb_alerts_suppressed_total", reason="duplicate") == 1
    assert sample(m, "arb_records_invalid_total", topic=topic, reason="not_json") == 1
    assert sample(m, "arb_records_invalid_total", topic=topic, reason="missing_field") == 1
    assert sample(m, "arb_detection_latency_seconds_count") == 3
    assert sample(m, "arb_alert_delivery_latency_seconds_count") == 3


@pytest.mark.integration
def test_restart_with_the_same_store_sends_nothing_again(
    topics: Topics, discord: DiscordStandIn, tmp_path: Path, unique: str,
) -> None:
    alerts = three_alerts()
    topics.produce(topics.kafka.alerts_topic, [to_json(a) for a in alerts])
    settings = alerter_settings(tmp_path, unique, discord.url)

    with Running(new_service(settings, topics.kafka, spread_gauges=False)):
        wait_until(lambda: read_counts(settings.history_db)[DELIVERED] == 3, 30, "delivered")

    # A new group reads the topic from the start, as after lost offsets: the store dedups.
    replay = alerter_settings(tmp_path, f"{unique}-replay", discord.url)
    service = new_service(replay, topics.kafka, spread_gauges=False)
    with Running(service):
        wait_until(lambda: sample(service.metrics, "arb_alerts_suppressed_total",
                                  reason="duplicate") == 3, 30, "three duplicates")

    assert len(discord.received) == 3
    assert len(read_recent(settings.history_db)) == 3


@pytest.mark.integration
def test_shutdown_during_rate_limit_leaves_the_alert_uncommitted_for_the_next_run(
    topics: Topics, discord: DiscordStandIn, tmp_path: Path, unique: str,
) -> None:
    spread = make_spread()
    topic = topics.kafka.alerts_topic
    topics.produce(topic, [to_json(spread)])
    discord.script(Reply.rate_limited(60))
    settings = alerter_settings(tmp_path, unique, discord.url)
    service = new_service(settings, topics.kafka, spread_gauges=False)

    running = Running(service)
    with running:
        discord.wait_for(1, timeout_s=30)
        stop_started = time.monotonic()
    assert time.monotonic() - stop_started < 10  # the 60 s Retry-After was cut short

    assert read_recent(settings.history_db)[0].status == PENDING
    assert topics.committed_offset(settings.group_id, topic) < 0  # nothing committed

    with Running(new_service(settings, topics.kafka, spread_gauges=False)):
        wait_until(lambda: read_counts(settings.history_db)[DELIVERED] == 1, 30, "redelivery")
        wait_until(lambda: topics.committed_offset(settings.group_id, topic) == 1, 30, "commit")
    assert discord.statuses == [429, 204]


def test_unusable_history_path_fails_before_joining_a_group(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = AlerterSettings(history_db=str(blocker / "alerts.db"), metrics_port=0)
    service = new_service(settings, KafkaSettings(bootstrap_servers="127.0.0.1:1"))

    with pytest.raises(OSError):
        service.run()
    assert not service.ready()


@pytest.mark.integration
def test_missing_webhook_warns_once_and_records_history(
    topics: Topics, tmp_path: Path, unique: str,
) -> None:
    alerts = three_alerts()
    topics.produce(topics.kafka.alerts_topic, [to_json(a) for a in alerts])
    settings = alerter_settings(tmp_path, unique, None)
    service = new_service(settings, topics.kafka, spread_gauges=False)

    with structlog.testing.capture_logs() as logs, Running(service):
        wait_until(lambda: read_counts(settings.history_db)[NO_WEBHOOK] == 3, 30, "recorded")
        wait_until(lambda: topics.committed_offset(settings.group_id,
                                                   topics.kafka.alerts_topic) == 3, 30, "commit")

    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["event"] for e in warnings] == ["discord_webhook_missing"]
    assert "DISCORD_WEBHOOK_URL" in warnings[0]["message"]
    assert sample(service.metrics, "arb_alerts_suppressed_total", reason="no_webhook") == 3


@pytest.mark.integration
def test_spread_gauges_and_consumer_lag(topics: Topics, tmp_path: Path, unique: str) -> None:
    settings = alerter_settings(tmp_path, unique, None)
    service = new_service(settings, topics.kafka, stats_interval_ms=200)
    spread = make_spread(sell_bid=67_010.0)

    with Running(service):
        wait_until(service.spreads_assigned.is_set, 30, "spreads consumer assigned")
        time.sleep(0.5)  # the assignment's start offset ("latest") is resolved after assign
        topics.produce(topics.kafka.spreads_topic, [to_json(spread), b"garbage"])
        labels = {"symbol": "BTC-USD", "buy_exchange": "coinbase", "sell_exchange": "binance"}
        wait_until(lambda: service.metrics.registry.get_sample_value("arb_spread_usd", labels)
                   is not None, 30, "spread gauge")
        wait_until(lambda: service.metrics.registry.get_sample_value(
            "arb_kafka_consumer_lag_records",
            {"topic": topics.kafka.spreads_topic, "partition": "0",
             "group": f"{settings.group_id}-spreads"}) == 0, 30, "lag gauge")

    m = service.metrics
    assert sample(m, "arb_spread_usd", **labels) == pytest.approx(10.0)
    assert sample(m, "arb_spread_bps", **labels) == pytest.approx(spread.spread_bps)
    assert sample(m, "arb_net_spread_bps", **labels) == pytest.approx(spread.net_spread_bps)
    assert sample(m, "arb_records_invalid_total", topic=topics.kafka.spreads_topic,
                  reason="not_json") == 1


@pytest.mark.integration
def test_404_webhook_is_reported_not_retried_and_every_alert_committed(
    topics: Topics, discord: DiscordStandIn, tmp_path: Path, unique: str,
) -> None:
    discord.set_default(Reply(404, body={"message": "Unknown Webhook", "code": 10015}))
    alerts = three_alerts()
    topic = topics.kafka.alerts_topic
    topics.produce(topic, [to_json(a) for a in alerts])
    settings = alerter_settings(tmp_path, unique, discord.url)
    service = new_service(settings, topics.kafka, spread_gauges=False)

    with structlog.testing.capture_logs() as logs, Running(service):
        wait_until(lambda: topics.committed_offset(settings.group_id, topic) == len(alerts),
                   30, "every offset committed")
        time.sleep(1.0)  # a retrying client would post again within this
        assert service.ready()  # history keeps being recorded: still a working alerter

    assert discord.statuses == [404]
    assert read_counts(settings.history_db)[FAILED] == len(alerts)
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [e["event"] for e in errors] == ["discord_webhook_unusable"]
    assert "stand-in-secret-token" not in repr(logs)
    m = service.metrics
    assert sample(m, "arb_alerts_failed_total", channel="discord", reason="client_error") == 1
    assert sample(m, "arb_alerts_failed_total", channel="discord",
                  reason="webhook_unusable") == len(alerts) - 1
    assert sample(m, "arb_alerts_sent_total", channel="discord") == 0


@pytest.mark.integration
def test_cooldown_suppressed_alerts_are_stored_counted_and_committed(
    topics: Topics, discord: DiscordStandIn, tmp_path: Path, unique: str,
) -> None:
    burst = [make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(5)]
    topic = topics.kafka.alerts_topic
    topics.produce(topic, [to_json(a) for a in burst])
    settings = alerter_settings(tmp_path, unique, discord.url).replace(cooldown_s=60)
    service = new_service(settings, topics.kafka, spread_gauges=False)

    with Running(service):
        wait_until(lambda: topics.committed_offset(settings.group_id, topic) == len(burst),
                   30, "every offset committed")

    assert discord.accepted_alert_ids == [burst[0].id]
    counts = read_counts(settings.history_db)
    assert (counts[DELIVERED], counts[SUPPRESSED]) == (1, len(burst) - 1)
    assert sample(service.metrics, "arb_alerts_suppressed_total",
                  reason="cooldown") == len(burst) - 1
