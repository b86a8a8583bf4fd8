"""The alerter's Prometheus metrics, names as in DESIGN.md's alerter section.

Built on a given registry so tests can run several alerters in one process; the service's
entry point uses the default registry, which also carries the process metrics.
"""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from services.common.messages import Spread
from services.common.metrics import LATENCY_BUCKETS_SECONDS

_PAIR = ("symbol", "buy_exchange", "sell_exchange")


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
            "Alerts deliberately not sent (duplicate: already delivered; no_webhook: unset)",
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
        self.consumer_lag = Gauge(
            "arb_kafka_consumer_lag",
            "Records between the consumer's position and the partition end (librdkafka stats)",
            ["topic", "partition", "group"],
            registry=registry,
        )

    def observe_spread(self, spread: Spread) -> None:
        labels = (spread.symbol, spread.buy_exchange, spread.sell_exchange)
        self.spread_usd.labels(*labels).set(spread.spread_usd)
        self.spread_bps.labels(*labels).set(spread.spread_bps)
        self.net_spread_bps.labels(*labels).set(spread.net_spread_bps)

    def stats_callback(self, group: str) -> Any:
        """A librdkafka ``stats_cb`` that turns per-partition ``consumer_lag`` into the gauge."""

        def _on_stats(raw: str) -> None:
            for topic, lags in consumer_lags(raw).items():
                for partition, lag in lags.items():
                    self.consumer_lag.labels(topic, str(partition), group).set(lag)

        return _on_stats


def consumer_lags(stats_json: str) -> dict[str, dict[int, int]]:
    """``{topic: {partition: lag}}`` from a librdkafka statistics document.

    librdkafka's ``consumer_lag`` counts from the committed offset, so it is unknown (-1) for a
    consumer that never commits (the spread gauges): then the lag counts from the position
    handed to the application (``app_offset``, else the fetch position ``next_offset``).
    Partitions whose lag is unknown, and the internal partition -1, are left out.
    """
    try:
        stats = json.loads(stats_json)
    except ValueError:
        return {}
    lags: dict[str, dict[int, int]] = {}
    for topic, info in (stats.get("topics") or {}).items():
        for key, part in (info.get("partitions") or {}).items():
            partition = int(key)
            lag = _lag(part)
            if partition >= 0 and lag is not None:
                lags.setdefault(topic, {})[partition] = lag
    return lags


def _lag(part: dict[str, Any]) -> int | None:
    committed_lag = part.get("consumer_lag", -1)
    if isinstance(committed_lag, int) and committed_lag >= 0:
        return committed_lag
    end = part.get("ls_offset", -1)
    end = end if isinstance(end, int) and end >= 0 else part.get("hi_offset", -1)
    position = part.get("app_offset", -1)
    position = position if isinstance(position, int) and position >= 0 else part.get(
        "next_offset", -1,
    )
    if not isinstance(end, int) or not isinstance(position, int) or end < 0 or position < 0:
        return None
    return max(0, end - position)
