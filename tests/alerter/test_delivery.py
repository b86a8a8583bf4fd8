"""The Discord window and storage faults, per record: "sending" marks, their resolution after a
restart in each delivery mode, requests without an answer, and a failing history store.

Real SQLite stores and the real HTTP stand-in; a "crashed run" is the store state that run
leaves (the alert stored and marked sending, no outcome), written with the store's own calls.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import structlog

from services.alerter.metrics import AlerterMetrics
from services.alerter.service import (
    AT_LEAST_ONCE,
    AT_MOST_ONCE,
    INTERRUPTED,
    SENT,
    UNCERTAIN,
    UNCERTAIN_NOTE,
    AlertHandler,
    EpisodeHandler,
    StoreHealth,
    _retry_store,
)
from services.common.exceptions import HistoryUnavailable
from services.common.history import (
    CLOSED,
    DELIVERED,
    FAILED,
    OPENED,
    PENDING,
    SKIPPED,
    AlertHistory,
    read_recent,
)
from services.common.messages import to_json
from tests.alerter.conftest import Topics, fast_webhook
from tests.alerter.test_discord import make_episode
from tests.alerter.test_service import Running, alerter_settings, new_service, sample
from tests.support.alerts import make_spread
from tests.support.discord_standin import DiscordStandIn, ReceivedRequest, Reply
from tests.support.waiting import wait_until


def alerts(history: AlertHistory, metrics: AlerterMetrics, url: str, delivery: str,
           **options: object) -> AlertHandler:
    return AlertHandler(history, metrics, "alerts", webhook=fast_webhook(url, **options),
                        delivery=delivery)


def uncertain(metrics: AlerterMetrics, message: str, reason: str) -> float:
    return sample(metrics, "arb_alerts_uncertain_total", channel="discord", message=message,
                  reason=reason)


def total_uncertain(metrics: AlerterMetrics) -> float:
    return sum(uncertain(metrics, m, r) for m in ("alert", "opened", "closed")
               for r in ("restart", "no_answer"))


# -- the "sending" mark --------------------------------------------------------------------------

def test_the_alert_is_marked_sending_while_its_request_is_in_flight(
    tmp_path: Path, history: AlertHistory, metrics: AlerterMetrics,
) -> None:
    spread = make_spread()
    seen: list[tuple[str, int | None]] = []

    def look(request: ReceivedRequest) -> None:  # another connection, as a reader would
        (row,) = read_recent(tmp_path / "alerts.db")
        seen.append((row.status, row.sending_ts_ms))

    with DiscordStandIn(on_request=look) as discord:
        outcome = alerts(history, metrics, discord.url, AT_LEAST_ONCE).handle(to_json(spread))

    assert outcome.kind == SENT
    ((status, sending_ts_ms),) = seen
    assert status == PENDING and sending_ts_ms is not None
    assert history.get(spread.id).status == DELIVERED  # type: ignore[union-attr]
    assert total_uncertain(metrics) == 0


def test_an_interrupted_send_that_reached_nobody_is_not_uncertain_later(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    discord.script(Reply.rate_limited(30))  # a certain refusal, then shutdown during the wait
    spread = make_spread()

    stopping = alerts(history, metrics, discord.url, AT_MOST_ONCE, sleep=lambda seconds: False)
    assert stopping.handle(to_json(spread)).kind == INTERRUPTED
    assert history.get(spread.id).sending_ts_ms is None  # type: ignore[union-attr]

    assert alerts(history, metrics, discord.url, AT_MOST_ONCE).handle(to_json(spread)).kind == SENT
    assert total_uncertain(metrics) == 0
    assert discord.statuses == [429, 204]


# -- resolution after a restart ------------------------------------------------------------------

def crashed_mid_request(history: AlertHistory) -> str:
    """The store as a run killed during the request leaves it: stored, marked, no outcome."""
    spread = make_spread()
    history.record(spread)
    history.mark_sending(spread.id, 1_717_243_202_000)
    return spread.id


def test_at_least_once_posts_a_message_found_sending_again_and_counts_it(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    alert_id = crashed_mid_request(history)

    with structlog.testing.capture_logs() as logs:
        outcome = alerts(history, metrics, discord.url, AT_LEAST_ONCE).handle(
            to_json(make_spread()))

    assert outcome.kind == SENT
    assert discord.accepted_alert_ids == [alert_id]
    assert history.get(alert_id).status == DELIVERED  # type: ignore[union-attr]
    assert uncertain(metrics, "alert", "restart") == 1
    assert [e["id"] for e in logs if e["event"] == "delivery_uncertain"] == [alert_id]


def test_at_most_once_does_not_post_a_message_found_sending(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    alert_id = crashed_mid_request(history)

    outcome = alerts(history, metrics, discord.url, AT_MOST_ONCE).handle(to_json(make_spread()))

    assert (outcome.kind, outcome.commit) == (UNCERTAIN, True)
    assert discord.received == []
    stored = history.get(alert_id)
    assert stored is not None and (stored.status, stored.last_error) == (FAILED, UNCERTAIN_NOTE)
    assert uncertain(metrics, "alert", "restart") == 1
    assert sample(metrics, "arb_alerts_failed_total", channel="discord", reason=UNCERTAIN) == 1
    # A redelivery of the record after that is an ordinary duplicate, not counted again.
    alerts(history, metrics, discord.url, AT_MOST_ONCE).handle(to_json(make_spread()))
    assert uncertain(metrics, "alert", "restart") == 1


@pytest.mark.parametrize("delivery", [AT_LEAST_ONCE, AT_MOST_ONCE])
def test_a_delivered_alert_marked_sending_is_a_duplicate_in_both_modes(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn, delivery: str,
) -> None:
    alert_id = crashed_mid_request(history)
    history.mark_delivered(alert_id, 1)  # the crash came after the store, before the commit

    alerts(history, metrics, discord.url, delivery).handle(to_json(make_spread()))

    assert discord.received == []
    assert total_uncertain(metrics) == 0


# -- no answer -------------------------------------------------------------------------------

def test_at_least_once_retries_a_timeout_and_counts_the_possible_double(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    discord.script(Reply.slow(0.6))  # Discord posted it; the answer came too late
    spread = make_spread()

    outcome = alerts(history, metrics, discord.url, AT_LEAST_ONCE, timeout_s=0.2).handle(
        to_json(spread))

    assert outcome.kind == SENT
    assert discord.accepted_alert_ids == [spread.id] * len(discord.requests)
    assert len(discord.requests) >= 2
    assert uncertain(metrics, "alert", "no_answer") == 1  # once per message, not per attempt
    assert sample(metrics, "arb_alerts_sent_total", channel="discord") == 1


def test_at_most_once_gives_a_timeout_up_and_never_counts_it_delivered(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    discord.script(Reply.slow(0.6))
    spread = make_spread()

    outcome = alerts(history, metrics, discord.url, AT_MOST_ONCE, timeout_s=0.2).handle(
        to_json(spread))

    assert outcome.kind == FAILED
    time.sleep(0.5)
    assert len(discord.received) == 1
    assert history.get(spread.id).status == FAILED  # type: ignore[union-attr]
    assert uncertain(metrics, "alert", "no_answer") == 1
    assert sample(metrics, "arb_alerts_sent_total", channel="discord") == 0
    assert sample(metrics, "arb_alerts_failed_total", channel="discord", reason="timeout") == 1


# -- episodes ------------------------------------------------------------------------------------

def episodes(history: AlertHistory, metrics: AlerterMetrics, url: str,
             delivery: str) -> EpisodeHandler:
    return EpisodeHandler(history, metrics, "episodes", webhook=fast_webhook(url),
                          delivery=delivery)


@pytest.mark.parametrize(("delivery", "posted"), [(AT_LEAST_ONCE, 1), (AT_MOST_ONCE, 0)])
def test_an_opening_message_found_sending_follows_the_mode(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn, delivery: str,
    posted: int,
) -> None:
    opened = make_episode(is_open=True)
    history.record_episode(opened)
    history.mark_episode_sending(opened.id, OPENED, 1_717_243_202_000)

    episodes(history, metrics, discord.url, delivery).handle(to_json(opened))

    assert len(discord.accepted) == posted
    stored = history.get_episode(opened.id)
    assert stored is not None
    assert stored.opened_status == (DELIVERED if posted else FAILED)
    assert uncertain(metrics, "opened", "restart") == 1


def test_an_opening_found_sending_when_its_episode_closes_is_counted_and_skipped(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    closed = make_episode()
    history.record_episode(make_episode(is_open=True))
    history.mark_episode_sending(closed.id, OPENED, 1_717_243_202_000)

    episodes(history, metrics, discord.url, AT_LEAST_ONCE).handle(to_json(closed))

    assert discord.accepted_footers == [f"episode {closed.id} closed"]
    stored = history.get_episode(closed.id)
    assert stored is not None and (stored.opened_status, stored.closed_status) == (
        SKIPPED, DELIVERED)
    assert uncertain(metrics, "opened", "restart") == 1
    assert uncertain(metrics, CLOSED, "restart") == 0


# -- storage faults ------------------------------------------------------------------------------

@pytest.mark.parametrize(("error", "reason"), [
    (sqlite3.OperationalError("database is locked"), "locked"),
    (sqlite3.OperationalError("database or disk is full"), "full"),
    (sqlite3.DatabaseError("database disk image is malformed"), "corrupt"),
    (sqlite3.DatabaseError("file is not a database"), "corrupt"),
    (sqlite3.OperationalError("something else"), "other"),
])
def test_store_errors_are_counted_by_reason_logged_once_and_waited_out(
    metrics: AlerterMetrics, error: sqlite3.Error, reason: str,
) -> None:
    health = StoreHealth(metrics)
    failures = [error, error, error]
    gauge_while_failing: list[float | None] = []

    def flaky() -> str:
        if failures:
            gauge_while_failing.append(
                metrics.registry.get_sample_value("arb_history_store_ok"))
            raise failures.pop()
        return "stored"

    with structlog.testing.capture_logs() as logs:
        assert _retry_store(flaky, threading.Event(), health) == "stored"

    assert sample(metrics, "arb_history_store_errors_total", reason=reason) == 3
    assert gauge_while_failing[1:] == [0.0, 0.0]
    assert sample(metrics, "arb_history_store_ok") == 1
    events = [e["event"] for e in logs]
    assert events.count("history_store_error") == 1
    assert events.count("history_store_recovered") == 1
    assert next(e for e in logs if e["event"] == "history_store_error")["reason"] == reason


class FreeSpaceWhileWaiting(threading.Event):
    """The retry's pause: looks at what the alerter shows while the store is full, then makes
    room (same thread: the store's connection is bound to it)."""

    def __init__(self, history: AlertHistory, metrics: AlerterMetrics,
                 discord: DiscordStandIn) -> None:
        super().__init__()
        self.history, self.metrics, self.discord = history, metrics, discord
        self.seen: list[tuple[float, float, int]] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.seen.append((sample(self.metrics, "arb_history_store_errors_total", reason="full"),
                          sample(self.metrics, "arb_history_store_ok"),
                          len(self.discord.received)))
        self.history._conn.execute("PRAGMA max_page_count = 1073741823")
        return False


def test_a_full_store_holds_the_alert_until_space_comes_back(
    history: AlertHistory, metrics: AlerterMetrics, discord: DiscordStandIn,
) -> None:
    """A real SQLITE_FULL: the store may not grow past its present size."""
    pages = history._conn.execute("PRAGMA page_count").fetchone()[0]
    history._conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(HistoryUnavailable, match="full"):  # fill it up to that size
        for i in range(10_000):
            history.record(make_spread(window_end_ms=1_000_000_000_000 + i * 1000))
    stop = FreeSpaceWhileWaiting(history, metrics, discord)
    spread = make_spread(window_end_ms=2_000_000_000_000)
    handler = AlertHandler(history, metrics, "alerts", webhook=fast_webhook(discord.url), stop=stop)

    outcome = handler.handle(to_json(spread))

    assert stop.seen[:1] == [(1.0, 0.0, 0)]  # counted, gauge down, nothing sent unstored
    assert outcome.kind == SENT
    assert discord.accepted_alert_ids == [spread.id]
    assert sample(metrics, "arb_history_store_ok") == 1


# -- storage faults with the whole service on a real broker ------------------------------------

@pytest.mark.integration
def test_a_locked_store_keeps_the_alert_uncommitted_until_the_lock_goes(
    topics: Topics, discord: DiscordStandIn, tmp_path: Path, unique: str,
) -> None:
    settings = alerter_settings(tmp_path, unique, discord.url)
    service = new_service(settings, topics.kafka, spread_gauges=False)
    spread = make_spread()

    with Running(service):
        locker = sqlite3.connect(tmp_path / "alerts.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # e.g. a sqlite3 shell left in a transaction
        try:
            topics.produce(topics.kafka.alerts_topic, [to_json(spread)])
            wait_until(lambda: sample(service.metrics, "arb_history_store_errors_total",
                                      reason="locked") >= 1, 30, "locked error counted")
            assert sample(service.metrics, "arb_history_store_ok") == 0
            assert discord.received == []
            assert topics.committed_offset(settings.group_id, topics.kafka.alerts_topic) < 1
        finally:
            locker.rollback()
            locker.close()
        wait_until(lambda: topics.committed_offset(
            settings.group_id, topics.kafka.alerts_topic) == 1, 60, "committed once stored")
        assert sample(service.metrics, "arb_history_store_ok") == 1

    assert discord.accepted_alert_ids == [spread.id]
    assert read_recent(tmp_path / "alerts.db")[0].status == DELIVERED


@pytest.mark.integration
def test_a_corrupt_store_at_start_is_waited_out_until_moved_aside(
    topics: Topics, discord: DiscordStandIn, tmp_path: Path, unique: str,
) -> None:
    db = tmp_path / "alerts.db"
    db.write_bytes(b"this is not an SQLite file " * 200)
    settings = alerter_settings(tmp_path, unique, discord.url)
    service = new_service(settings, topics.kafka, spread_gauges=False)
    spread = make_spread()
    topics.produce(topics.kafka.alerts_topic, [to_json(spread)])
    errors: list[BaseException] = []

    def run() -> None:
        try:
            service.run()
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    thread = threading.Thread(target=run, name="alerter-corrupt-store")
    with structlog.testing.capture_logs() as logs:
        thread.start()
        try:
            wait_until(lambda: sample(service.metrics, "arb_history_store_errors_total",
                                      reason="corrupt") >= 2, 30, "corrupt error counted")
            assert sample(service.metrics, "arb_history_store_ok") == 0
            assert not service.ready()
            db.rename(tmp_path / "alerts.db.corrupt")  # the runbook's fix
            wait_until(lambda: discord.accepted_alert_ids == [spread.id], 60, "delivered")
            assert sample(service.metrics, "arb_history_store_ok") == 1
        finally:
            service.stop()
            thread.join(timeout=30)
    assert errors == []
    store_errors = [e for e in logs if e["event"] == "history_store_error"]
    assert [e["reason"] for e in store_errors] == ["corrupt"]  # once, not per retry
