"""What the services export keeps Prometheus' rules for each type: a histogram's buckets start at
zero and its ``_sum`` never falls, so ``rate(..._sum)`` (average latency) sees no false counter
reset."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.producer.metrics import ProducerMetrics


def test_feed_latency_histogram_sum_never_falls() -> None:
    """A venue clock ahead of ours gives a negative receive - venue time; observed as such, it
    lowers the histogram's _sum and the _sum reads as a counter reset."""
    registry = CollectorRegistry()
    feed = ProducerMetrics(registry).feed("binance")
    feed.latency_ms(120)
    before = registry.get_sample_value("arb_feed_latency_seconds_sum", {"exchange": "binance"})
    feed.latency_ms(-300)
    after = registry.get_sample_value("arb_feed_latency_seconds_sum", {"exchange": "binance"})
    assert before is not None and after is not None
    assert after >= before, "a negative observation made arb_feed_latency_seconds_sum fall"


def test_feed_latency_buckets_start_at_zero() -> None:
    registry = CollectorRegistry()
    ProducerMetrics(registry).feed("binance").latency_ms(120)
    bounds = [
        float(s.labels["le"])
        for metric in registry.collect() for s in metric.samples
        if s.name == "arb_feed_latency_seconds_bucket"
    ]
    assert bounds
    assert min(bounds) >= 0, f"negative bucket bounds {sorted(b for b in bounds if b < 0)}"
