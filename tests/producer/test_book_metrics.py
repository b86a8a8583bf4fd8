"""Book health metrics: what each BookStatus counts, the levels gauge, the age at scrape."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.producer.books.base import BookStatus
from services.producer.books.book import OrderBook
from services.producer.metrics import ProducerMetrics


def _metrics() -> ProducerMetrics:
    return ProducerMetrics(CollectorRegistry())


def test_each_problem_counts_in_its_family_and_resyncs_by_reason() -> None:
    m = _metrics()
    book = m.book("binance")
    for status in (
        BookStatus(True),
        BookStatus(False, None, "snapshot"),          # the first sync: not a resync
        BookStatus(True, "gap", "snapshot"),
        BookStatus(True, "gap", "snapshot"),
        BookStatus(True, "checksum", "resubscribe"),
        BookStatus(True, "crossed", "snapshot"),
        BookStatus(True, "bad_level", "snapshot"),
        BookStatus(False, "bad_level", None),         # rejected, a snapshot already asked for
        BookStatus(False, "out_of_order", None),
        BookStatus(False, "stale_snapshot", "snapshot"),
        BookStatus(False, "unsynced", "resubscribe"),
    ):
        book.status(status)

    def v(name: str, **labels: str) -> float:
        return m.value(name, exchange="binance", **labels)

    assert v("arb_book_gaps_total") == 2
    assert v("arb_book_checksum_failures_total") == 1
    assert v("arb_book_crossed_total") == 1
    assert v("arb_book_rejected_total", reason="bad_level") == 2
    assert v("arb_book_rejected_total", reason="out_of_order") == 1
    assert v("arb_book_rejected_total", reason="stale_snapshot") == 1
    assert v("arb_book_rejected_total", reason="unsynced") == 1
    resyncs = {r: v("arb_book_resyncs_total", reason=r) for r in
               ("gap", "checksum", "crossed", "bad_level", "stale_snapshot", "unsynced",
                "out_of_order")}
    assert resyncs == {"gap": 2, "checksum": 1, "crossed": 1, "bad_level": 1,
                       "stale_snapshot": 1, "unsynced": 1, "out_of_order": 0}
    # another venue's counts are its own
    assert m.value("arb_book_gaps_total", exchange="okx") == 0


def test_levels_gauge_per_side() -> None:
    m = _metrics()
    ob = OrderBook(10)
    ob.load([(100.0, 1.0), (99.0, 1.0)], [(101.0, 1.0)])

    m.book("coinbase").levels("BTC-USD", ob)

    assert m.value("arb_book_levels", exchange="coinbase", symbol="BTC-USD", side="bid") == 2
    assert m.value("arb_book_levels", exchange="coinbase", symbol="BTC-USD", side="ask") == 1
    ob.clear()
    m.book("coinbase").levels("BTC-USD", ob)
    assert m.value("arb_book_levels", exchange="coinbase", symbol="BTC-USD", side="bid") == 0


def test_age_is_seconds_since_the_last_change_at_scrape() -> None:
    now = [1000.0]
    m = _metrics()
    book = m.book("kraken", clock=lambda: now[0])

    book.changed("BTC-USD", 990.0)
    assert m.value("arb_book_age_seconds", exchange="kraken", symbol="BTC-USD") == 10.0
    now[0] = 1002.5
    assert m.value("arb_book_age_seconds", exchange="kraken", symbol="BTC-USD") == 12.5
    book.changed("BTC-USD")  # now
    assert m.value("arb_book_age_seconds", exchange="kraken", symbol="BTC-USD") == 0.0
    book.changed("BTC-USD", 2000.0)  # a clock ahead of ours reads as no age
    assert m.value("arb_book_age_seconds", exchange="kraken", symbol="BTC-USD") == 0.0


def test_one_book_counts_per_venue() -> None:
    m = _metrics()
    assert m.book("okx") is m.book("okx")
    assert m.book("okx") is not m.book("bybit")
