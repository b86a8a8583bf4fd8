"""The alert history store: idempotent inserts, status changes, durability, concurrent readers."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict
from pathlib import Path

import pytest

from services.common.history import (
    DELIVERED,
    FAILED,
    MAX_ERROR_CHARS,
    NO_WEBHOOK,
    PENDING,
    SUPPRESSED,
    AlertHistory,
    open_reader,
    read_counts,
    read_recent,
)
from tests.support.alerts import WINDOW_END_MS, make_spread


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "alerts.db"


def test_record_stores_every_spread_field_as_pending(db_path: Path) -> None:
    spread = make_spread()
    with AlertHistory(db_path) as history:
        result = history.record(spread, received_ts_ms=WINDOW_END_MS + 400)

    assert result.inserted
    stored = result.alert
    assert stored.to_spread() == spread
    assert stored.status == PENDING
    assert stored.attempts == 0
    assert stored.received_ts_ms == WINDOW_END_MS + 400
    assert stored.delivered_ts_ms is None
    assert stored.last_error is None


def test_second_record_with_same_id_is_a_no_op(db_path: Path) -> None:
    spread = make_spread()
    with AlertHistory(db_path) as history:
        first = history.record(spread, received_ts_ms=1)
        history.mark_delivered(spread.id, attempts=1, delivered_ts_ms=5)
        # A redelivered record may even carry different numbers: the first one stands.
        again = history.record(make_spread(sell_bid=99_999.0), received_ts_ms=2)

        assert first.inserted and not again.inserted
        assert again.alert.status == DELIVERED
        assert again.alert.sell_bid == spread.sell_bid
        assert again.alert.received_ts_ms == 1
        assert len(history.recent()) == 1


def test_status_updates_accumulate_attempts(db_path: Path) -> None:
    spread = make_spread()
    with AlertHistory(db_path) as history:
        history.record(spread)
        failed = history.mark_failed(spread.id, attempts=3, error="server_error: HTTP 502")
        assert (failed.status, failed.attempts, failed.last_error) == (
            FAILED, 3, "server_error: HTTP 502",
        )
        delivered = history.mark_delivered(spread.id, attempts=2, delivered_ts_ms=123)
        assert (delivered.status, delivered.attempts, delivered.delivered_ts_ms) == (
            DELIVERED, 5, 123,
        )
        assert delivered.last_error is None


def test_long_errors_are_clipped(db_path: Path) -> None:
    spread = make_spread()
    with AlertHistory(db_path) as history:
        history.record(spread)
        stored = history.mark_failed(spread.id, attempts=1, error="x" * 5000)
    assert stored.last_error is not None
    assert len(stored.last_error) == MAX_ERROR_CHARS


def test_updating_an_unknown_alert_raises(db_path: Path) -> None:
    with AlertHistory(db_path) as history, pytest.raises(KeyError):
        history.mark_no_webhook("nope")


def test_history_survives_reopen(db_path: Path) -> None:
    spreads = [make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(3)]
    with AlertHistory(db_path) as history:
        for spread in spreads:
            history.record(spread)
        history.mark_no_webhook(spreads[0].id)

    with AlertHistory(db_path) as reopened:
        assert not reopened.record(spreads[0]).inserted
        assert reopened.get(spreads[0].id).status == NO_WEBHOOK  # type: ignore[union-attr]
        assert reopened.counts() == {PENDING: 2, DELIVERED: 0, FAILED: 0, NO_WEBHOOK: 1,
                                     SUPPRESSED: 0}


def test_recent_is_newest_first_and_limited(db_path: Path) -> None:
    ends = [WINDOW_END_MS + offset for offset in (3000, 1000, 5000, 2000, 4000)]
    with AlertHistory(db_path) as history:
        for end in ends:
            history.record(make_spread(window_end_ms=end))

    newest = read_recent(db_path, limit=3)

    assert [a.window_end_ms for a in newest] == sorted(ends, reverse=True)[:3]


def test_reader_sees_writer_commits_while_writer_is_open(db_path: Path) -> None:
    with AlertHistory(db_path) as history:
        history.record(make_spread())
        assert len(read_recent(db_path)) == 1
        history.record(make_spread(buy_exchange="binance", sell_exchange="coinbase"))
        assert len(read_recent(db_path)) == 2
        assert read_counts(db_path)[PENDING] == 2
        mode = history._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_reader_never_creates_the_store(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet" / "alerts.db"

    assert read_recent(missing) == []
    assert set(read_counts(missing).values()) == {0}
    assert not missing.exists()


def test_reader_of_a_file_without_the_table_sees_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()

    assert read_recent(empty) == []


def test_reader_is_read_only(db_path: Path) -> None:
    with AlertHistory(db_path) as history:
        history.record(make_spread())
    with open_reader(db_path) as conn:
        assert conn is not None
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("DELETE FROM alerts")


def test_alert_record_roundtrips_through_spread(db_path: Path) -> None:
    spread = make_spread(buy_size=None, sell_size=None)
    with AlertHistory(db_path) as history:
        stored = history.record(spread).alert
    assert asdict(stored.to_spread()) == asdict(spread)
    assert stored.max_size is None and stored.est_profit_usd is None
