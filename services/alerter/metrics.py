"""The alerter's Prometheus metrics, names as in DESIGN.md's alerter section.

Built on a given registry so tests can run several alerters in one process; the service's
entry point uses the default registry, which also carries the process metrics.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from services.common.history.faults import REASONS as STORE_ERROR_REASONS
from services.common.kafka_stats import consumer_lag_gauge, consumer_lags, set_consumer_lags
from services.common.messages import Episode, Spread
from services.common.metrics import LATENCY_BUCKETS_SECONDS

_PAIR = ("symbol", "buy_exchange", "sell_exchange")
#: ``message`` of arb_alerts_uncertain_total: an alert window, or an episode's two messages.
UNCERTAIN_MESSAGES = ("alert", "opened", "closed")
#: ``reason`` of arb_alerts_uncertain_total: a run ended with the request in flight (found
#: marked "sending" at the next start), or a request got no answer (timeout, connection lost).
UNCERTAIN_REASONS = ("restart", "no_answer")
#: Episode durations (tick path): from tens of milliseconds up to minutes.
EPISODE_DURATION_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 600)

__all__ = ["AlerterMetrics", "consumer_lags"]


def _set_or_remove(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    """A null value removes the pair's series: no number is better than a stale one."""
    if value is not None:
        gauge.labels(*labels).set(value)
        return
    with contextlib.suppress(KeyError):  # never set for this pair
        gauge.remove(*labels)


class AlerterMetrics:
    """Counters for every alert outcome, latency histograms, spread gauges and consumer lag."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.alerts_received = Counter(
            "arb_alerts_received_total",
            "Alert records read from the alerts topic that parsed (duplicates included)",
            registry=registry,
        )
        self.alerts_sent = Counter(
            "arb_alerts_sent_total", "Alerts a channel accepted", ["channel"], registry=registry,
        )
        self.alerts_failed = Counter(
            "arb_alerts_failed_total",
            "Alerts a channel did not accept after retries, by final reason",
            ["channel", "reason"],
            registry=registry,
        )
        self.alerts_suppressed = Counter(
            "arb_alerts_suppressed_total",
            "Alerts deliberately not sent (duplicate: already final; no_webhook: unset; "
            "cooldown: same symbol and direction delivered recently)",
            ["reason"],
            registry=registry,
        )
        self.records_invalid = Counter(
            "arb_records_invalid_total",
            "Records that did not parse and were skipped",
            ["topic", "reason"],
            registry=registry,
        )
        self.delivery_latency = Histogram(
            "arb_alert_delivery_latency_seconds",
            "Newest contributing quote received -> Discord accepted the alert",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.detection_latency = Histogram(
            "arb_detection_latency_seconds",
            "Newest contributing quote received -> alert record's Kafka timestamp",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.tick_detection_latency = Histogram(
            "arb_tick_detection_latency_seconds",
            "Tick path: opening quote received -> opened episode record's Kafka timestamp",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.episodes_open = Gauge(
            "arb_episodes_open",
            "Opportunity episodes opened and not yet closed, by direction (the history's open "
            "ones at start, then as the records come)",
            _PAIR,
            registry=registry,
        )
        self.spread_usd = Gauge(
            "arb_spread_usd", "Latest window's spread (sell bid - buy ask) in USD", _PAIR,
            registry=registry,
        )
        self.spread_bps = Gauge(
            "arb_spread_bps", "Latest window's spread relative to the buy ask, in bps", _PAIR,
            registry=registry,
        )
        self.net_spread_bps = Gauge(
            "arb_net_spread_bps", "Latest window's spread net of both taker fees, in bps", _PAIR,
            registry=registry,
        )
        # Absent for a pair while no ladder size passes or a venue sends no book depth.
        self.executable_usd = Gauge(
            "arb_executable_usd",
            "Latest window's largest order-book ladder notional (USD) that still passes the "
            "alert rule at both venues' depth",
            _PAIR,
            registry=registry,
        )
        self.executable_profit_usd = Gauge(
            "arb_executable_profit_usd",
            "Latest window's estimated profit (USD) at that notional, net of both taker fees",
            _PAIR,
            registry=registry,
        )
        self.episodes_received = Counter(
            "arb_episodes_received_total",
            "Episode records read from the episodes topic that parsed, by state (opened, "
            "closed; duplicates included)",
            ["state"],
            registry=registry,
        )
        self.episodes_closed = Counter(
            "arb_episodes_closed_total",
            "Opportunity episodes that closed, by direction and whether they lasted long "
            "enough to capture (capturable: true or false)",
            [*_PAIR, "capturable"],
            registry=registry,
        )
        self.episode_duration = Histogram(
            "arb_episode_duration_seconds",
            "Duration of closed episodes (opening quote -> end of the last pass), tick path",
            ["capturable"],
            buckets=EPISODE_DURATION_BUCKETS_SECONDS,
            registry=registry,
        )
        self.episode_messages_sent = Counter(
            "arb_episode_messages_sent_total",
            "Episode messages a channel accepted (message: opened or closed)",
            ["channel", "message"],
            registry=registry,
        )
        self.episode_messages_failed = Counter(
            "arb_episode_messages_failed_total",
            "Episode messages a channel did not accept after retries, by final reason",
            ["channel", "message", "reason"],
            registry=registry,
        )
        self.alerts_uncertain = Counter(
            "arb_alerts_uncertain_total",
            "Messages that may or may not have been posted (a request in flight when the "
            "alerter stopped, or no answer): at_least_once posts them again (maybe twice), "
            "at_most_once does not (maybe lost); message: alert, opened or closed",
            ["channel", "message", "reason"],
            registry=registry,
        )
        self.history_store_errors = Counter(
            "arb_history_store_errors_total",
            "Failed history store calls, retried with the record left uncommitted in Kafka "
            "(reason: locked, full, corrupt, readonly, missing, other)",
            ["reason"],
            registry=registry,
        )
        self.history_store_ok = Gauge(
            "arb_history_store_ok",
            "1 while the history store answers, 0 from a failed call until one succeeds",
            registry=registry,
        )
        for message in UNCERTAIN_MESSAGES:  # present at 0, so increase() sees the first one
            for reason in UNCERTAIN_REASONS:
                self.alerts_uncertain.labels("discord", message, reason)
        for reason in STORE_ERROR_REASONS:
            self.history_store_errors.labels(reason)
        self.consumer_lag = consumer_lag_gauge(registry)

    def observe_spread(self, spread: Spread) -> None:
        labels = (spread.symbol, spread.buy_exchange, spread.sell_exchange)
        self.spread_usd.labels(*labels).set(spread.spread_usd)
        self.spread_bps.labels(*labels).set(spread.spread_bps)
        self.net_spread_bps.labels(*labels).set(spread.net_spread_bps)
        for gauge, value in ((self.executable_usd, spread.executable_usd),
                             (self.executable_profit_usd, spread.executable_profit_usd)):
            _set_or_remove(gauge, labels, value)

    def observe_opened_episode(self, episode: Episode, kafka_ts_ms: int | None) -> None:
        self.episodes_open.labels(*episode.direction).inc()
        if kafka_ts_ms is not None:
            self.tick_detection_latency.observe(
                max(0.0, (kafka_ts_ms - episode.start_ms) / 1000))

    def observe_closed_episode(self, episode: Episode, *, was_open: bool) -> None:
        if was_open:
            self.episodes_open.labels(*episode.direction).dec()
        capturable = "true" if episode.capturable else "false"
        self.episodes_closed.labels(*episode.direction, capturable).inc()
        self.episode_duration.labels(capturable).observe(episode.duration_ms / 1000)

    def stats_callback(self, group: str) -> Any:
        """A librdkafka ``stats_cb`` that turns per-partition ``consumer_lag`` into the gauge."""

        def _on_stats(raw: str) -> None:
            set_consumer_lags(self.consumer_lag, raw, group)

        return _on_stats
