"""The producer's Prometheus metrics, named exactly as in DESIGN.md (prefix ``arb_``).

Besides DESIGN.md's list, three families show what a slow or absent broker costs:
``arb_quotes_dropped_total`` and ``arb_trades_dropped_total`` (records dropped before Kafka, by
reason: a quote superseded by a newer one of the same venue and symbol while waiting, a trade
pushed out of the full backlog) and ``arb_kafka_backlog_records`` (records waiting in the
producer's own bounded buffer, in front of librdkafka's queue).

One :class:`ProducerMetrics` per registry: the process uses the default registry, tests pass a
fresh :class:`~prometheus_client.CollectorRegistry` so their counts start at zero.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from services.common.metrics import LATENCY_BUCKETS_SECONDS

#: recv - exchange time can be negative when the venue's clock is ahead of ours.
FEED_LATENCY_BUCKETS_SECONDS = (-1.0, -0.1, 0.0, *LATENCY_BUCKETS_SECONDS)


class ProducerMetrics:
    """Feed health (owned by the feed loop), best prices, and Kafka delivery."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.feed_messages = Counter(
            "arb_feed_messages_total", "Frames received from a venue, by channel.",
            ["exchange", "channel"], registry=registry,
        )
        self.feed_errors = Counter(
            "arb_feed_errors_total", "Frames that could not be used, by reason.",
            ["exchange", "reason"], registry=registry,
        )
        self.feed_reconnects = Counter(
            "arb_feed_reconnects_total", "Reconnects after a dropped or silent connection.",
            ["exchange"], registry=registry,
        )
        self.feed_connected = Gauge(
            "arb_feed_connected", "1 while the venue's WebSocket is connected and subscribed.",
            ["exchange"], registry=registry,
        )
        self.feed_last_message = Gauge(
            "arb_feed_last_message_timestamp_seconds", "Epoch seconds of the last frame received.",
            ["exchange"], registry=registry,
        )
        self.feed_latency = Histogram(
            "arb_feed_latency_seconds", "Receive time minus the venue's own timestamp.",
            ["exchange"], buckets=FEED_LATENCY_BUCKETS_SECONDS, registry=registry,
        )
        self.best_bid = Gauge(
            "arb_best_bid_usd", "Last best bid in USD after fx.", ["exchange", "symbol"],
            registry=registry,
        )
        self.best_ask = Gauge(
            "arb_best_ask_usd", "Last best ask in USD after fx.", ["exchange", "symbol"],
            registry=registry,
        )
        self.kafka_produced = Counter(
            "arb_kafka_produced_total", "Records the broker acknowledged.", ["topic"],
            registry=registry,
        )
        self.kafka_produce_errors = Counter(
            "arb_kafka_produce_errors_total",
            "Records the broker did not acknowledge in time (delivery failed).",
            ["topic"], registry=registry,
        )
        self.quotes_dropped = Counter(
            "arb_quotes_dropped_total",
            "Quotes dropped before Kafka: superseded by a newer quote while the broker lagged.",
            ["exchange", "reason"], registry=registry,
        )
        self.trades_dropped = Counter(
            "arb_trades_dropped_total",
            "Trades dropped before Kafka: the oldest, when the backlog was full.",
            ["exchange", "reason"], registry=registry,
        )
        self.kafka_backlog = Gauge(
            "arb_kafka_backlog_records",
            "Records waiting in the producer's bounded buffer for room in librdkafka's queue.",
            registry=registry,
        )
        self.kafka_delivery_latency = Histogram(
            "arb_kafka_delivery_latency_seconds", "produce() call to broker acknowledgement.",
            buckets=LATENCY_BUCKETS_SECONDS, registry=registry,
        )

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0 when never set); for tests and health checks."""
        return self.registry.get_sample_value(name, labels) or 0.0


_default: ProducerMetrics | None = None


def default_metrics() -> ProducerMetrics:
    """The process-wide instance on the default registry, created on first use."""
    global _default  # one registration per process
    if _default is None:
        _default = ProducerMetrics()
    return _default
