"""The alerter: ``arbitrage-alerts`` -> history store -> Discord, offset committed last.

Per record: parse; store (idempotent, keyed by the alert id); skip if that alert already reached
a final status (a redelivery or a replayed window); suppress it if an alert of the same symbol
and direction was delivered within the cooldown; else post to Discord if a webhook is set;
record the outcome; only then commit the offset, synchronously. A crash at any point therefore
redelivers the record, and the store turns the redelivery into a no-op or a retry of a pending
alert: exactly once in the history.

Towards Discord one gap stays that no client can close, because Discord webhooks take no
idempotency key: between the request leaving and its outcome being stored (a crash after
Discord accepted, before the SQLite commit; or a request that got no answer) the message may or
may not have been posted. The alerter narrows that gap to what it is and names it: just before
the first request it marks the message "sending" in the store, so the next run knows exactly
which message was in flight, and it resolves that message by the delivery mode chosen
(``delivery``):

- ``at_least_once`` (the default): post it again. Nothing is ever lost; the message was
  posted twice only if the crash fell in that millisecond after Discord's 2xx. A request that
  timed out is retried the same way.
- ``at_most_once``: do not post it again (recorded ``failed``, noted "uncertain"); a timed-out
  request is not retried. Nothing is ever posted twice; the message is lost if the crash came
  before Discord got it.

At-least-once is the default because a trader who sees an opportunity twice loses a glance,
one who never sees it loses the opportunity; and the double needs a crash within the one
millisecond between Discord's answer and the store's commit. Either way each such message is
counted in ``arb_alerts_uncertain_total{channel,message,reason}`` and logged once with its id.

A failing history store (locked, disk full, corrupt) is waited out, the record uncommitted in
Kafka so nothing is lost: each failed call counts ``arb_history_store_errors_total{reason}``,
``arb_history_store_ok`` is 0 until a call works again, and each reason is logged once per
outage (then ``history_store_recovered``).

A record that does not parse is counted, logged once (truncated) and committed, so one bad
record never blocks the partition. Logic lives in :class:`AlertHandler` (no Kafka in it); the
Kafka wiring, the spread gauges and shutdown live in :class:`AlerterService`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, Message

from services.alerter.discord import (
    CHANNEL,
    INTERRUPTED,
    WEBHOOK_UNUSABLE,
    DeliveryResult,
    DiscordWebhook,
    build_payload,
    episode_closed_payload,
    episode_opened_payload,
)
from services.alerter.faults import AFTER_SEND, AFTER_STORE, BEFORE_SEND, SENDING_MARKED, KillPoints
from services.alerter.metrics import AlerterMetrics
from services.common.clock import now_ts_ms
from services.common.config import AlerterSettings, KafkaSettings
from services.common.exceptions import RecordError
from services.common.history.faults import classify
from services.common.history.schema import (
    CLOSED,
    DELIVERED,
    FAILED,
    NO_WEBHOOK,
    OPENED,
    PENDING,
    SKIPPED,
    SUPPRESSED,
    EpisodeRecord,
)
from services.common.history.store import AlertHistory
from services.common.kafka import end_offsets, make_consumer
from services.common.logging import truncate
from services.common.messages import Episode, Spread, parse_episode, parse_spread
from services.common.offsets import OffsetWatch

log = structlog.get_logger(__name__)
T = TypeVar("T")
R = TypeVar("R")  # the record a handler parses

#: Statuses an alert reaches once; a record for such an alert is a duplicate and is skipped.
FINAL_STATUSES = frozenset({DELIVERED, FAILED, NO_WEBHOOK, SUPPRESSED})
#: Pause between attempts to write the history store when it fails (disk full, locked).
STORE_RETRY_MAX_S = 10.0

#: Delivery modes: what to do with a message that may or may not have been posted.
AT_LEAST_ONCE = "at_least_once"
AT_MOST_ONCE = "at_most_once"
DELIVERY_MODES = (AT_LEAST_ONCE, AT_MOST_ONCE)
DEFAULT_DELIVERY = AT_LEAST_ONCE
#: ``message`` label of arb_alerts_uncertain_total for an alert window.
ALERT = "alert"
#: ``reason`` labels of arb_alerts_uncertain_total.
RESTART = "restart"
NO_ANSWER = "no_answer"

# Outcomes of one record, for callers and tests. Three are the constant of what they report:
# FAILED and NO_WEBHOOK (the status the record's alert or message is stored with) and
# INTERRUPTED (the delivery result that cut it short, left uncommitted).
INVALID = "invalid"
SENT = "sent"
DUPLICATE = "duplicate"
COOLDOWN = "cooldown"
#: An episode recorded but not posted: Discord gets alert windows instead.
NOT_POSTED = "not_posted"
#: An alert window recorded but not posted: Discord gets its episode's messages instead.
AS_EPISODE = "episodes"
#: Note stored with such an alert (shown on the dashboard).
AS_EPISODE_NOTE = "posted as its episode's opening and closing messages"
#: A message found "sending" at start and not posted again (at_most_once); also the
#: ``reason`` of arb_alerts_failed_total for it.
UNCERTAIN = "uncertain"
UNCERTAIN_NOTE = ("uncertain: a request was in flight when the alerter stopped; it may or may "
                  "not have been posted, and at_most_once does not post it again")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one record; ``commit`` is False only when shutdown cut delivery short."""

    kind: str
    commit: bool
    alert_id: str | None = None


class StoreHealth:
    """The history store's state as the alerter sees it: the ok gauge, the error counter by
    reason, and one log line per reason per outage (a store failing every 10 s for an hour is
    one error line, not 360)."""

    def __init__(self, metrics: AlerterMetrics) -> None:
        self.metrics = metrics
        self._logged: set[str] = set()
        self._failures = 0

    def ok(self) -> None:
        if self._failures:
            log.info("history_store_recovered", failed_calls=self._failures,
                     reasons=sorted(self._logged))
            self._logged.clear()
            self._failures = 0
        self.metrics.history_store_ok.set(1)

    def failed(self, exc: sqlite3.Error, retry_in_s: float) -> str:
        """Count one failed call; returns its reason."""
        reason = classify(exc)
        self._failures += 1
        self.metrics.history_store_errors.labels(reason).inc()
        self.metrics.history_store_ok.set(0)
        if reason not in self._logged:
            self._logged.add(reason)
            log.error("history_store_error", reason=reason, error=str(exc), retry_in_s=retry_in_s,
                      message="the history store fails: records stay uncommitted in Kafka and "
                              "are retried until it works (nothing is lost meanwhile)")
        return reason


def _retry_store(action: Callable[[], T], stop: threading.Event,
                 health: StoreHealth | None = None) -> T:
    """Run a store call until it works or shutdown: an alert must be recorded before its
    offset is committed, and a full disk or a long lock is worth waiting out."""
    wait_s = 0.1
    while True:
        try:
            result = action()
        except sqlite3.Error as exc:
            if health is None:
                log.error("history_store_error", error=str(exc), retry_in_s=wait_s)
            else:
                health.failed(exc, wait_s)
            if stop.wait(wait_s):
                raise
            wait_s = min(wait_s * 2, STORE_RETRY_MAX_S)
        else:
            if health is not None:
                health.ok()
            return result


class _Handler(Generic[R]):
    """What both record handlers share: their collaborators, store retries, and the rule that
    a record that does not parse is counted, logged once (truncated) and committed."""

    #: the log event of a record that does not parse
    invalid_event = "invalid_record"

    def __init__(
        self,
        history: AlertHistory,
        metrics: AlerterMetrics,
        topic: str,
        *,
        webhook: DiscordWebhook | None,
        dashboard_url: str | None = None,
        stop: threading.Event | None = None,
        post: bool = True,
        delivery: str = DEFAULT_DELIVERY,
        health: StoreHealth | None = None,
        kill_points: KillPoints | None = None,
    ) -> None:
        if delivery not in DELIVERY_MODES:
            raise ValueError(f"delivery must be one of {DELIVERY_MODES}, not {delivery!r}")
        self.history = history
        self.metrics = metrics
        self.topic = topic
        self.webhook = webhook
        self.dashboard_url = dashboard_url
        #: False: records are stored but not posted (ARB_DISCORD_MESSAGES picks what is)
        self.post = post
        self.delivery = delivery
        if webhook is not None:  # the mode decides whether a request without answer is retried
            webhook.retry_uncertain = delivery == AT_LEAST_ONCE
        self.health = health or StoreHealth(metrics)
        self._kills = kill_points or KillPoints()
        self._stop = stop or threading.Event()

    def _store(self, action: Callable[[], T]) -> T:
        return _retry_store(action, self._stop, self.health)

    def _uncertain(self, message: str, item_id: str, reason: str, action: str,
                   **context: Any) -> None:
        """Count and log, once, a message that may or may not have been posted."""
        self.metrics.alerts_uncertain.labels(CHANNEL, message, reason).inc()
        log.warning("delivery_uncertain", id=item_id, message=message, reason=reason,
                    delivery=self.delivery, action=action, **context)

    def _found_sending(self, message: str, item_id: str, sending_ts_ms: int) -> bool:
        """A previous run marked this message "sending" and never stored its outcome: count
        it; True when the mode says not to post it again (at_most_once)."""
        again = self.delivery == AT_LEAST_ONCE
        self._uncertain(message, item_id, RESTART,
                        "posted again (may show twice)" if again else "not posted again",
                        sending_ts_ms=sending_ts_ms)
        return not again

    def _post(self, message: str, item_id: str, payload: dict[str, Any],
              mark: Callable[[int | None], Any]) -> DeliveryResult:
        """Send one message: marked "sending" (``mark``) just before the first request leaves,
        the mark cleared again when shutdown stopped it before anything could reach Discord."""
        assert self.webhook is not None  # noqa: S101 - callers check
        self._kills.reach(BEFORE_SEND)
        marked = False

        def before_request() -> None:
            nonlocal marked
            self._store(lambda: mark(now_ts_ms()))
            marked = True
            self._kills.reach(SENDING_MARKED)

        result = self.webhook.send(payload, before_request=before_request)
        if result.ok:
            self._kills.reach(AFTER_SEND)
        if result.reason == INTERRUPTED:
            if marked and not result.uncertain:  # nothing in flight: not uncertain at restart
                self._store(lambda: mark(None))
        elif result.uncertain:  # (an interrupted one is counted by the next run)
            again = self.delivery == AT_LEAST_ONCE
            action = ("retried, posted (may show twice)" if result.ok
                      else "retried, not accepted (may have been posted)" if again
                      else "not retried (may have been posted)")
            self._uncertain(message, item_id, NO_ANSWER, action, attempts=result.attempts)
        return result

    def _parse(self, value: bytes | None, parse: Callable[[bytes], R]) -> R | Outcome:
        """The parsed record, or the Outcome of an invalid one (counted and committed)."""
        try:
            if value is None:
                raise RecordError("empty_value")
            return parse(value)
        except RecordError as exc:
            self.metrics.records_invalid.labels(self.topic, exc.reason).inc()
            log.warning(self.invalid_event, topic=self.topic, reason=exc.reason,
                        detail=exc.detail, raw=truncate(value or b""))
            return Outcome(INVALID, commit=True)


class AlertHandler(_Handler[Spread]):
    """Store, dedup, deliver, record: everything per alert except Kafka itself.

    Uses the history store from the thread that created it (SQLite connections are per thread).
    """

    invalid_event = "invalid_alert_record"

    def __init__(self, *args: Any, cooldown_ms: int = 0, **kwargs: Any) -> None:
        """The shared collaborators (see :class:`_Handler`), and ``cooldown_ms``: an alert
        within this much event time of a delivered one for the same symbol and direction (buy
        and sell venue) is suppressed."""
        super().__init__(*args, **kwargs)
        self.cooldown_ms = cooldown_ms

    def handle(self, value: bytes | None, kafka_ts_ms: int | None = None) -> Outcome:
        """Process one alerts-topic record value; ``kafka_ts_ms`` is the record's timestamp."""
        spread = self._parse(value, parse_spread)
        if isinstance(spread, Outcome):
            return spread

        self.metrics.alerts_received.inc()
        stored = self._store(lambda: self.history.record(spread))
        if not stored.inserted and stored.alert.status in FINAL_STATUSES:
            self.metrics.alerts_suppressed.labels(DUPLICATE).inc()
            log.info("alert_duplicate", alert_id=spread.id, status=stored.alert.status)
            return Outcome(DUPLICATE, commit=True, alert_id=spread.id)
        if stored.inserted and kafka_ts_ms is not None:
            self.metrics.detection_latency.observe(
                max(0.0, (kafka_ts_ms - spread.newest_recv_ts_ms) / 1000),
            )
        sending_ts_ms = stored.alert.sending_ts_ms
        if (stored.alert.status == PENDING and sending_ts_ms is not None
                and self._found_sending(ALERT, spread.id, sending_ts_ms)):
            self._store(lambda: self.history.mark_failed(spread.id, 0, UNCERTAIN_NOTE))
            self.metrics.alerts_failed.labels(CHANNEL, UNCERTAIN).inc()
            return Outcome(UNCERTAIN, commit=True, alert_id=spread.id)

        if self.webhook is None:
            self._store(lambda: self.history.mark_no_webhook(spread.id))
            self.metrics.alerts_suppressed.labels(NO_WEBHOOK).inc()
            log.info("alert_recorded", alert_id=spread.id, status=NO_WEBHOOK)
            return Outcome(NO_WEBHOOK, commit=True, alert_id=spread.id)

        if not self.post:
            self._store(lambda: self.history.mark_suppressed(spread.id, None, AS_EPISODE_NOTE))
            self.metrics.alerts_suppressed.labels(AS_EPISODE).inc()
            log.info("alert_recorded", alert_id=spread.id, status=SUPPRESSED, reason=AS_EPISODE)
            return Outcome(AS_EPISODE, commit=True, alert_id=spread.id)

        if self.cooldown_ms > 0:
            anchor = self._store(lambda: self.history.last_delivered(spread, self.cooldown_ms))
            if anchor is not None:
                self._store(lambda: self.history.mark_suppressed(spread.id, anchor.id))
                self.metrics.alerts_suppressed.labels(COOLDOWN).inc()
                log.info("alert_suppressed", alert_id=spread.id, reason=COOLDOWN,
                         after=anchor.id, cooldown_ms=self.cooldown_ms)
                return Outcome(COOLDOWN, commit=True, alert_id=spread.id)

        first_refusal = self.webhook.unusable is None
        result = self._post(ALERT, spread.id, build_payload(spread, self.dashboard_url),
                            lambda ts_ms: self.history.mark_sending(spread.id, ts_ms))
        if result.ok:
            accepted_ts_ms = result.accepted_ts_ms or now_ts_ms()
            self._store(lambda: self.history.mark_delivered(
                spread.id, result.attempts, accepted_ts_ms,
            ))
            self.metrics.alerts_sent.labels(CHANNEL).inc()
            self.metrics.delivery_latency.observe(
                max(0.0, (accepted_ts_ms - spread.newest_recv_ts_ms) / 1000),
            )
            log.info("alert_delivered", alert_id=spread.id, attempts=result.attempts)
            return Outcome(SENT, commit=True, alert_id=spread.id)
        if result.reason == INTERRUPTED:
            # Left pending and uncommitted: the next run gets the record again and retries it.
            log.info("alert_delivery_interrupted", alert_id=spread.id)
            return Outcome(INTERRUPTED, commit=False, alert_id=spread.id)
        error = f"{result.reason}: {result.detail}" if result.detail else result.reason
        self._store(lambda: self.history.mark_failed(spread.id, result.attempts, error))
        self.metrics.alerts_failed.labels(CHANNEL, result.reason).inc()
        if first_refusal and self.webhook.unusable is not None:
            # Said once, loudly: every later alert is recorded failed without a request.
            log.error("discord_webhook_unusable", status=result.status, detail=result.detail,
                      message="Discord refused the webhook itself (deleted, or a wrong token): "
                              "alerts are recorded in the history store only until "
                              "DISCORD_WEBHOOK_URL is fixed and the alerter restarted")
        log_failure = log.info if result.reason == WEBHOOK_UNUSABLE else log.warning
        log_failure("alert_delivery_failed", alert_id=spread.id, reason=result.reason,
                    status=result.status, attempts=result.attempts, detail=result.detail)
        return Outcome(FAILED, commit=True, alert_id=spread.id)


class EpisodeHandler(_Handler[Episode]):
    """Opportunity episodes: store each record, post one message when an episode opens and one
    short update when it closes. Same delivery rules as alerts: stored before posting, a
    message's outcome recorded before the offset is committed, a redelivery a no-op.

    The two records of an episode can arrive in either order (a backlog, a replay): a closing
    record seen before its opening was posted gives one full "seen closed" message, and the
    opening is recorded as ``skipped``.
    """

    invalid_event = "invalid_episode_record"

    def handle(self, value: bytes | None, kafka_ts_ms: int | None = None) -> Outcome:
        episode = self._parse(value, parse_episode)
        if isinstance(episode, Outcome):
            return episode
        self.metrics.episodes_received.labels(OPENED if episode.is_open else CLOSED).inc()
        before = self._store(lambda: self.history.get_episode(episode.id))
        stored = self._store(lambda: self.history.record_episode(episode))
        if episode.is_open:
            if before is None:  # first seen, still open: count it once
                self.metrics.observe_opened_episode(episode, kafka_ts_ms)
            return self._on_opened(episode, stored)
        if before is None or before.is_open:  # this record closed it: count it once
            self.metrics.observe_closed_episode(stored.to_episode(),
                                                was_open=before is not None)
        return self._on_closed(stored)

    def _on_opened(self, episode: Episode, stored: EpisodeRecord) -> Outcome:
        if stored.opened_status != PENDING:
            self.metrics.alerts_suppressed.labels(DUPLICATE).inc()
            return Outcome(DUPLICATE, commit=True, alert_id=episode.id)
        if (stored.opened_sending_ts_ms is not None
                and self._found_sending(OPENED, episode.id, stored.opened_sending_ts_ms)):
            return self._give_up_uncertain(episode.id, OPENED)
        if not stored.is_open:  # already closed: its closing message says it all
            self._mark(episode.id, OPENED, SKIPPED)
            return Outcome(DUPLICATE, commit=True, alert_id=episode.id)
        return self._deliver(episode.id, OPENED,
                             episode_opened_payload(episode, self.dashboard_url))

    def _on_closed(self, stored: EpisodeRecord) -> Outcome:
        if stored.closed_status != PENDING:
            self.metrics.alerts_suppressed.labels(DUPLICATE).inc()
            return Outcome(DUPLICATE, commit=True, alert_id=stored.id)
        if (stored.closed_sending_ts_ms is not None
                and self._found_sending(CLOSED, stored.id, stored.closed_sending_ts_ms)):
            return self._give_up_uncertain(stored.id, CLOSED)
        opened_posted = stored.opened_status == DELIVERED
        if stored.opened_status == PENDING:
            if stored.opened_sending_ts_ms is not None:  # its opening may have been posted
                self._uncertain(OPENED, stored.id, RESTART, "not posted again (closed since)",
                                sending_ts_ms=stored.opened_sending_ts_ms)
            self._mark(stored.id, OPENED, SKIPPED)
        payload = episode_closed_payload(stored.to_episode(), opened_posted=opened_posted)
        return self._deliver(stored.id, CLOSED, payload)

    def _mark(self, episode_id: str, message: str, status: str, attempts: int = 0,
              error: str | None = None) -> None:
        self._store(lambda: self.history.mark_episode_message(
            episode_id, message, status, attempts, error))

    def _give_up_uncertain(self, episode_id: str, message: str) -> Outcome:
        """at_most_once: a message found "sending" is recorded failed, not posted again."""
        self._mark(episode_id, message, FAILED, error=UNCERTAIN_NOTE)
        self.metrics.episode_messages_failed.labels(CHANNEL, message, UNCERTAIN).inc()
        return Outcome(UNCERTAIN, commit=True, alert_id=episode_id)

    def _deliver(self, episode_id: str, message: str, payload: dict[str, Any]) -> Outcome:
        if self.webhook is None:
            self._mark(episode_id, message, NO_WEBHOOK)
            log.info("episode_recorded", episode_id=episode_id, message=message,
                     status=NO_WEBHOOK)
            return Outcome(NO_WEBHOOK, commit=True, alert_id=episode_id)
        if not self.post:  # ARB_DISCORD_MESSAGES=alerts: stored, not posted
            self._mark(episode_id, message, SUPPRESSED)
            return Outcome(NOT_POSTED, commit=True, alert_id=episode_id)
        result = self._post(message, episode_id, payload,
                            lambda ts_ms: self.history.mark_episode_sending(
                                episode_id, message, ts_ms))
        if result.ok:
            self._mark(episode_id, message, DELIVERED, result.attempts)
            self.metrics.episode_messages_sent.labels(CHANNEL, message).inc()
            log.info("episode_message_delivered", episode_id=episode_id, message=message,
                     attempts=result.attempts)
            return Outcome(SENT, commit=True, alert_id=episode_id)
        if result.reason == INTERRUPTED:
            log.info("episode_delivery_interrupted", episode_id=episode_id, message=message)
            return Outcome(INTERRUPTED, commit=False, alert_id=episode_id)
        error = f"{result.reason}: {result.detail}" if result.detail else result.reason
        self._mark(episode_id, message, FAILED, result.attempts, error)
        self.metrics.episode_messages_failed.labels(CHANNEL, message, result.reason).inc()
        log.warning("episode_message_failed", episode_id=episode_id, message=message,
                    reason=result.reason, status=result.status, attempts=result.attempts)
        return Outcome(FAILED, commit=True, alert_id=episode_id)


def _kafka_ts_ms(msg: Message) -> int | None:
    ts_type, ts_ms = msg.timestamp()
    return None if ts_type == TIMESTAMP_NOT_AVAILABLE or ts_ms < 0 else ts_ms


class AlerterService:
    """A group consumer on the alerts topic driving :class:`AlertHandler`, plus a second
    consumer on the spreads topic feeding the spread gauges. ``run`` blocks until ``stop``."""

    def __init__(
        self,
        settings: AlerterSettings,
        kafka: KafkaSettings,
        *,
        metrics: AlerterMetrics | None = None,
        webhook: DiscordWebhook | None = None,
        stop: threading.Event | None = None,
        spread_gauges: bool = True,
        stats_interval_ms: int = 5000,
        poll_timeout_s: float = 0.5,
        consumer_overrides: dict[str, Any] | None = None,
        delivery: str | None = None,
        kill_points: KillPoints | None = None,
    ) -> None:
        self.settings = settings
        #: at_least_once or at_most_once; the setting once it exists, else the default
        self.delivery = delivery or settings.discord_delivery
        if self.delivery not in DELIVERY_MODES:
            raise ValueError(f"delivery must be one of {DELIVERY_MODES}, not {self.delivery!r}")
        self.kill_points = kill_points or KillPoints()
        self.kafka = kafka
        self.metrics = metrics or AlerterMetrics()
        self.stop_event = stop or threading.Event()
        self.spread_gauges = spread_gauges
        self.poll_timeout_s = poll_timeout_s
        self._stats_interval_ms = stats_interval_ms
        self._overrides = dict(consumer_overrides or {})
        if webhook is None and settings.webhook_url:
            webhook = DiscordWebhook(
                settings.webhook_url.get_secret_value(),  # the one place the secret is read
                timeout_s=settings.http_timeout_s,
                max_attempts=settings.max_attempts,
                retry_uncertain=self.delivery == AT_LEAST_ONCE,
                sleep=lambda seconds: not self.stop_event.wait(seconds),
            )
        self.webhook = webhook
        self.health = StoreHealth(self.metrics)
        self._assigned = threading.Event()
        self.spreads_assigned = threading.Event()
        # A broker that lost records (restarted empty, truncated, topic recreated) shows as
        # a partition behind what this alerter committed: counted and logged (offsets.py).
        self.offsets = OffsetWatch("alerter", self.metrics.registry)
        self.offsets.touch([kafka.alerts_topic, kafka.episodes_topic])
        self._spreads_thread: threading.Thread | None = None

    # -- readiness and shutdown ----------------------------------------------------------------
    def ready(self) -> bool:
        """Ready once the alerts consumer joined its group and got an assignment."""
        return self._assigned.is_set() and not self.stop_event.is_set()

    def stop(self) -> None:
        self.stop_event.set()

    # -- consumers -----------------------------------------------------------------------------
    def _consumer(self, group_id: str, **overrides: Any) -> Consumer:
        return make_consumer(
            self.kafka.bootstrap_servers,
            group_id,
            stats_cb=self.metrics.stats_callback(group_id),
            **{"statistics.interval.ms": self._stats_interval_ms, **overrides, **self._overrides},
        )

    def _on_assign(self, consumer: Consumer, partitions: list[Any]) -> None:
        log.info("partitions_assigned", topic=self.kafka.alerts_topic,
                 partitions=[p.partition for p in partitions])
        self.offsets.on_assign(
            consumer, partitions,
            true_ends=lambda topic: end_offsets(self.kafka.bootstrap_servers, topic))
        self._assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[Any]) -> None:
        log.info("partitions_revoked", topic=self.kafka.alerts_topic,
                 partitions=[p.partition for p in partitions])

    def run(self) -> None:
        """Consume until :meth:`stop`; the consumer leaves its group cleanly on the way out."""
        if self.webhook is None and self.settings.webhook_problem:
            log.error(
                "discord_webhook_invalid",
                message=f"{self.settings.webhook_problem}: alerts are recorded in the history "
                        "store only, nothing is posted to Discord",
                history_db=self.settings.history_db,
            )
        elif self.webhook is None:
            log.warning(
                "discord_webhook_missing",
                message="DISCORD_WEBHOOK_URL is not set: alerts are recorded in the history "
                        "store only, nothing is posted to Discord",
                history_db=self.settings.history_db,
            )
        # Opened first: an unusable store path fails before anything joins a group; a store
        # that is locked, full or corrupt is waited out (counted, the gauge at 0) until fixed.
        history = _retry_store(lambda: AlertHistory(self.settings.history_db),
                               self.stop_event, self.health)
        shared: dict[str, Any] = {
            "webhook": self.webhook, "dashboard_url": self.settings.dashboard_url,
            "stop": self.stop_event, "delivery": self.delivery, "health": self.health,
            "kill_points": self.kill_points,
        }
        handler = AlertHandler(
            history, self.metrics, self.kafka.alerts_topic,
            cooldown_ms=round(self.settings.cooldown_s * 1000), post=self.settings.post_alerts,
            **shared,
        )
        episodes = EpisodeHandler(
            history, self.metrics, self.kafka.episodes_topic, post=self.settings.post_episodes,
            **shared,
        )
        # Open episodes carry over a restart: their closing records decrement the gauge.
        for direction, count in history.open_episode_counts().items():
            self.metrics.episodes_open.labels(*direction).set(count)
        try:
            if self.spread_gauges:
                self._spreads_thread = threading.Thread(
                    target=self._run_spreads, name="spread-gauges", daemon=True,
                )
                self._spreads_thread.start()
            log.info("alerter_started", topic=self.kafka.alerts_topic,
                     group=self.settings.group_id, history_db=self.settings.history_db,
                     discord=self.webhook is not None, cooldown_s=self.settings.cooldown_s,
                     episodes_topic=self.kafka.episodes_topic,
                     discord_messages=self.settings.discord_messages, delivery=self.delivery)
            self._consume(handler, episodes)
        finally:
            self.stop_event.set()
            history.close()
            if self.webhook is not None:
                self.webhook.close()
            if self._spreads_thread is not None:
                self._spreads_thread.join(timeout=10)
            log.info("alerter_stopped")

    def _consume(self, handler: AlertHandler, episodes: EpisodeHandler) -> None:
        """Poll, handle, commit; a record is committed only once its outcome is recorded.

        One consumer for both topics, so alerts and episodes share one commit discipline."""
        consumer = self._consumer(self.settings.group_id)
        try:
            consumer.subscribe(
                [self.kafka.alerts_topic, self.kafka.episodes_topic],
                on_assign=self._on_assign, on_revoke=self._on_revoke,
            )
            while not self.stop_event.is_set():
                msg = consumer.poll(self.poll_timeout_s)
                if msg is None:
                    continue
                if msg.error():
                    self._log_consumer_error(msg.error())
                    continue
                self.offsets.on_message(msg)
                target = episodes if msg.topic() == self.kafka.episodes_topic else handler
                outcome = target.handle(msg.value(), _kafka_ts_ms(msg))
                if not outcome.commit:
                    break
                self.kill_points.reach(AFTER_STORE)
                if self._commit(consumer, msg):
                    self.offsets.on_commit(msg)
        finally:
            consumer.close()

    @staticmethod
    def _commit(consumer: Consumer, msg: Message) -> bool:
        """Commit ``msg``'s offset; False (logged) if the broker refused it."""
        try:
            consumer.commit(message=msg, asynchronous=False)
            return True
        except KafkaException as exc:
            # E.g. a rebalance took the partition: the record comes back to whoever owns it
            # and the history store makes that a no-op.
            log.warning("offset_commit_failed", topic=msg.topic(), partition=msg.partition(),
                        offset=msg.offset(), error=str(exc.args[0]))
            return False

    @staticmethod
    def _log_consumer_error(err: KafkaError) -> None:
        if err.code() == KafkaError._PARTITION_EOF:  # librdkafka's own name
            return
        if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            # E.g. the episodes topic before the first job that writes it: read once it exists.
            log.info("topic_not_there_yet", reason=err.str())
            return
        log.warning("consumer_error", code=err.name(), reason=err.str())

    def _run_spreads(self) -> None:
        """Latest spread per ordered pair into gauges; starts at the end, never commits (a
        gauge needs the present, not a replay of what was missed)."""
        topic = self.kafka.spreads_topic
        consumer = self._consumer(
            f"{self.settings.group_id}-spreads",
            **{"auto.offset.reset": "latest", "enable.auto.commit": False},
        )
        try:
            consumer.subscribe([topic], on_assign=lambda c, p: self.spreads_assigned.set())
            while not self.stop_event.is_set():
                msg = consumer.poll(self.poll_timeout_s)
                if msg is None:
                    continue
                if msg.error():
                    self._log_consumer_error(msg.error())
                    continue
                try:
                    value = msg.value()
                    if value is None:
                        raise RecordError("empty_value")
                    self.metrics.observe_spread(parse_spread(value))
                except RecordError as exc:
                    self.metrics.records_invalid.labels(topic, exc.reason).inc()
                    log.warning("invalid_spread_record", topic=topic, reason=exc.reason,
                                detail=exc.detail, raw=truncate(msg.value() or b""))
        except Exception:  # gauges are optional; alerts must keep flowing
            log.exception("spread_gauges_stopped")
        finally:
            consumer.close()
