"""What the dashboard shows, computed without Streamlit so it can be tested on its own.

Reads the alerter's history store read-only; a store that does not exist yet is an empty view,
not an error (the dashboard may start before the first alert).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.common.history import (
    AlertRecord,
    HistorySummary,
    open_reader,
    recent_alerts,
    summarize,
)

#: Table columns, in display order; units are in the names.
COLUMNS = (
    "Window end (UTC)",
    "Symbol",
    "Buy on",
    "Buy ask $",
    "Sell on",
    "Sell bid $",
    "Spread $",
    "Spread bps",
    "Net bps",
    "Max size",
    "Est. profit $",
    "Quote age ms",
    "Status",
    "Attempts",
    "Delivered after ms",
    "Last error",
    "Id",
)


@dataclass(frozen=True, slots=True)
class AlertsView:
    """One refresh of the page: the newest alerts as table rows and whole-store numbers."""

    store_exists: bool
    rows: list[dict[str, Any]]
    summary: HistorySummary


def utc(ts_ms: int | None) -> datetime | None:
    return None if ts_ms is None else datetime.fromtimestamp(ts_ms / 1000, tz=UTC)


def to_row(alert: AlertRecord) -> dict[str, Any]:
    """One table row; delivery latency counts from the newest contributing quote's receipt."""
    delivered_after_ms = (
        None if alert.delivered_ts_ms is None
        else alert.delivered_ts_ms - alert.newest_recv_ts_ms
    )
    values = (
        utc(alert.window_end_ms),
        alert.symbol,
        alert.buy_exchange,
        alert.buy_ask,
        alert.sell_exchange,
        alert.sell_bid,
        alert.spread_usd,
        alert.spread_bps,
        alert.net_spread_bps,
        alert.max_size,
        alert.est_profit_usd,
        alert.quote_age_ms,
        alert.status,
        alert.attempts,
        delivered_after_ms,
        alert.last_error or "",
        alert.id,
    )
    return dict(zip(COLUMNS, values, strict=True))


def load_view(db_path: str | Path, limit: int) -> AlertsView:
    """The newest ``limit`` alerts (newest first) and the summary, from one consistent read."""
    with open_reader(db_path) as conn:
        if conn is None:
            return AlertsView(store_exists=False, rows=[], summary=summarize(None))
        conn.execute("BEGIN")  # one snapshot for the rows and the numbers
        try:
            alerts = recent_alerts(conn, limit)
            summary = summarize(conn)
        finally:
            conn.rollback()
    return AlertsView(store_exists=True, rows=[to_row(a) for a in alerts], summary=summary)


def age_text(ts_ms: int | None, now_ms: int) -> str:
    """'12 s ago', '5 min ago', '3 h ago', '2 d ago': how long since the last alert."""
    if ts_ms is None:
        return "never"
    seconds = max(0, (now_ms - ts_ms) // 1000)
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"
