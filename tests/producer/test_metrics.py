"""Feed metrics: counts taken as plain integers reach Prometheus whenever the registry is read,
with the same exposition as counting into the Prometheus counters directly, and none is lost
while another thread scrapes."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, generate_latest

from services.producer.metrics import ProducerMetrics

KINDS = ("bookTicker", "trade", "depthUpdate")
REASONS = ("unknown_symbol", "sequence_gap")


def feed_lines(metrics: ProducerMetrics) -> list[str]:
    """The exposition of the feed families, without the creation times."""
    text = generate_latest(metrics.registry).decode()
    return [line for line in text.splitlines() if line.startswith("arb_feed_")
            and "_created" not in line]


def test_counts_read_as_if_counted_into_prometheus() -> None:
    # Arrange: the same counts, through FeedMetrics and straight into the Prometheus counters
    deferred, direct = ProducerMetrics(CollectorRegistry()), ProducerMetrics(CollectorRegistry())
    feed = deferred.feed("binance")
    direct.feed("binance")  # the same eagerly created children (latency, last message)

    # Act
    for i in range(30):
        kind, reason = KINDS[i % 3], REASONS[i % 2]
        feed.message(kind)
        direct.feed_messages.labels("binance", kind).inc()
        if i % 4 == 0:
            feed.error(reason)
            direct.feed_errors.labels("binance", reason).inc()
        feed.latency_ms(i * 37 - 200)
        direct.feed_latency.labels("binance").observe(max(0, i * 37 - 200) / 1000)  # clamped

    # Assert: every count visible on the first read, and the exposition is the same
    assert deferred.value("arb_feed_messages_total", exchange="binance", channel="trade") == 10
    assert feed_lines(deferred) == feed_lines(direct)
    feed.message("trade")
    assert deferred.value("arb_feed_messages_total", exchange="binance", channel="trade") == 11


def test_one_feed_metrics_per_venue() -> None:
    metrics = ProducerMetrics(CollectorRegistry())

    assert metrics.feed("okx") is metrics.feed("okx")
    assert metrics.feed("okx") is not metrics.feed("kraken")


def test_no_count_is_lost_to_a_concurrent_scrape() -> None:
    metrics = ProducerMetrics(CollectorRegistry())
    feed = metrics.feed("coinbase")
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            generate_latest(metrics.registry)

    scrapers = [threading.Thread(target=scrape) for _ in range(2)]
    for thread in scrapers:
        thread.start()
    try:
        for i in range(50_000):
            feed.message(KINDS[i % 3])
            if i % 10 == 0:
                feed.error("unknown_symbol")
    finally:
        done.set()
        for thread in scrapers:
            thread.join()

    total = sum(metrics.value("arb_feed_messages_total", exchange="coinbase", channel=k)
                for k in KINDS)
    assert total == 50_000
    assert metrics.value("arb_feed_errors_total", exchange="coinbase",
                         reason="unknown_symbol") == 5_000
