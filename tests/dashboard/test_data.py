"""The dashboard's query logic, without Streamlit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from services.common.history import AlertHistory
from services.dashboard.data import COLUMNS, age_text, load_view
from tests.support.alerts import WINDOW_END_MS, make_spread


def test_missing_store_is_an_empty_view(tmp_path: Path) -> None:
    view = load_view(tmp_path / "absent.db", limit=10)

    assert not view.store_exists
    assert view.rows == []
    assert view.summary.total == 0
    assert view.summary.last_window_end_ms is None


def test_rows_are_newest_first_with_every_column(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    spreads = [make_spread(window_end_ms=WINDOW_END_MS + i * 1000, sell_bid=67_080.5 + i)
               for i in range(5)]
    with AlertHistory(db) as history:
        for spread in spreads:
            history.record(spread, received_ts_ms=spread.window_end_ms + 300)
        history.mark_delivered(spreads[4].id, attempts=2,
                               delivered_ts_ms=spreads[4].newest_recv_ts_ms + 900)
        history.mark_failed(spreads[3].id, attempts=5, error="server_error: HTTP 503")

    view = load_view(db, limit=3)

    assert view.store_exists
    assert [tuple(row) for row in view.rows] == [COLUMNS] * 3
    assert [row["Id"] for row in view.rows] == [s.id for s in reversed(spreads)][:3]
    newest = view.rows[0]
    assert newest["Window end (UTC)"] == datetime(2024, 6, 1, 12, 0, 5, tzinfo=UTC)
    assert (newest["Status"], newest["Attempts"], newest["Delivered after ms"]) == (
        "delivered", 2, 900,
    )
    assert newest["Spread $"] == spreads[4].spread_usd
    assert view.rows[1]["Last error"] == "server_error: HTTP 503"
    assert view.rows[2]["Delivered after ms"] is None
    assert view.summary.total == 5
    assert view.summary.by_status == {
        "pending": 3, "delivered": 1, "failed": 1, "no_webhook": 0, "suppressed": 0,
    }
    assert view.summary.last_window_end_ms == spreads[4].window_end_ms
    assert view.summary.max_spread_usd == spreads[4].spread_usd


def test_age_text() -> None:
    now_ms = 10_000_000
    assert age_text(None, now_ms) == "never"
    assert age_text(now_ms - 12_400, now_ms) == "12 s ago"
    assert age_text(now_ms - 5 * 60_000, now_ms) == "5 min ago"
    assert age_text(now_ms - 3 * 3_600_000, now_ms) == "3 h ago"
    assert age_text(now_ms + 5_000, now_ms) == "0 s ago"
