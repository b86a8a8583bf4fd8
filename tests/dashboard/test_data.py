"""The dashboard's query logic, without Streamlit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.common.history import AlertHistory, AlertQuery, HistoryOptions, utc_day_start_ts_ms
from services.dashboard.data import (
    ALL_TIME,
    COLUMNS,
    TIME_RANGES,
    TODAY,
    FeedHealth,
    Filters,
    age_text,
    chart_rows,
    choices,
    duration_text,
    feed_health,
    load_options,
    load_view,
    pair_label,
    parse_pair_label,
    since_ts_ms,
)
from services.dashboard.live import SpreadPoint, VenueActivity
from tests.support.alerts import WINDOW_END_MS, make_spread


def test_missing_store_is_an_empty_view(tmp_path: Path) -> None:
    view = load_view(tmp_path / "absent.db", limit=10)

    assert not view.store_exists
    assert view.rows == []
    assert view.summary.total == 0
    assert view.summary.last_window_end_ts_ms is None


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
    assert view.rows[1]["Detail"] == "server_error: HTTP 503"
    assert view.rows[2]["Delivered after ms"] is None
    assert view.summary.total == 5
    assert view.summary.by_status == {
        "pending": 3, "delivered": 1, "failed": 1, "no_webhook": 0, "suppressed": 0,
    }
    assert view.summary.last_window_end_ts_ms == spreads[4].window_end_ms
    assert view.summary.max_spread_usd == spreads[4].spread_usd


def test_rows_show_the_executable_size_and_profit(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    top_only = make_spread(window_end_ms=WINDOW_END_MS)
    base = make_spread(window_end_ms=WINDOW_END_MS + 1000)
    sized = replace(base, executable_usd=10_000.0, executable_size=10_000.0 / base.buy_ask,
                    executable_profit_usd=4.75)
    with AlertHistory(db) as history:
        for spread in (top_only, sized):
            history.record(spread, received_ts_ms=spread.window_end_ms + 300)

    newest, oldest = load_view(db, limit=10).rows

    assert (newest["Executable $"], newest["Executable size"], newest["Executable profit $"]) == (
        sized.executable_usd, sized.executable_size, sized.executable_profit_usd)
    assert newest["Est. profit $"] == sized.est_profit_usd  # the top of book stays beside it
    assert (oldest["Executable $"], oldest["Executable size"],
            oldest["Executable profit $"]) == (None, None, None)


def test_age_text() -> None:
    now_ms = 10_000_000
    assert age_text(None, now_ms) == "never"
    assert age_text(now_ms - 12_400, now_ms) == "12 s ago"
    assert age_text(now_ms - 5 * 60_000, now_ms) == "5 min ago"
    assert age_text(now_ms - 3 * 3_600_000, now_ms) == "3 h ago"
    assert age_text(now_ms + 5_000, now_ms) == "0 s ago"


def test_filters_become_a_query() -> None:
    now_ms = WINDOW_END_MS + 10 * 86_400_000
    filters = Filters(symbols=("ETH-USD",), pairs=(pair_label("binance", "coinbase"),),
                      time_range="Last hour", min_net_bps=2.5)

    query = filters.query(now_ms)

    assert query == AlertQuery(symbols=("ETH-USD",), pairs=(("binance", "coinbase"),),
                               since_ts_ms=now_ms - 3_600_000, min_net_bps=2.5)
    assert Filters().query(now_ms) == AlertQuery()


@pytest.mark.parametrize(("label", "expected_back_ms"), [
    ("Last 15 minutes", 15 * 60_000),
    ("Last 24 hours", 86_400_000),
    ("Last 7 days", 7 * 86_400_000),
])
def test_time_ranges(label: str, expected_back_ms: int) -> None:
    assert since_ts_ms(label, 10**13) == 10**13 - expected_back_ms


def test_today_starts_at_utc_midnight_and_all_time_has_no_start() -> None:
    assert since_ts_ms(TODAY, WINDOW_END_MS) == utc_day_start_ts_ms(WINDOW_END_MS)
    assert since_ts_ms(ALL_TIME, WINDOW_END_MS) is None
    assert set(TIME_RANGES) >= {TODAY, ALL_TIME}


def test_pair_labels_round_trip() -> None:
    assert parse_pair_label(pair_label("coinbase", "binance")) == ("coinbase", "binance")


def test_options_of_a_missing_store_are_empty(tmp_path: Path) -> None:
    assert load_options(tmp_path / "absent.db") == HistoryOptions((), ())


def test_choices_keep_selected_values_that_vanished() -> None:
    assert choices(["BTC-USD"], {"ETH-USD"}, ["SOL-USD"]) == ["BTC-USD", "ETH-USD", "SOL-USD"]


def point(symbol: str, buy: str, sell: str, end_ms: int, net_bps: float) -> SpreadPoint:
    return SpreadPoint(symbol, buy, sell, end_ms, spread_usd=net_bps * 10,
                       spread_bps=net_bps + 70, net_spread_bps=net_bps)


def test_chart_rows_per_symbol_follow_filters_and_measure() -> None:
    points = [point("BTC-USD", "coinbase", "binance", WINDOW_END_MS + i, i) for i in range(3)]
    points += [point("ETH-USD", "binance", "coinbase", WINDOW_END_MS, -1.0)]

    everything = chart_rows(points, Filters())
    btc_usd = chart_rows(points, Filters(pairs=(pair_label("coinbase", "binance"),),
                                          measure="Spread $"))

    assert list(everything) == ["BTC-USD", "ETH-USD"]
    assert [r["Net bps"] for r in everything["BTC-USD"]] == [0, 1, 2]
    assert everything["ETH-USD"][0]["Pair"] == "binance → coinbase"
    assert list(btc_usd) == ["BTC-USD"]
    assert [r["Spread $"] for r in btc_usd["BTC-USD"]] == [0, 10, 20]
    assert btc_usd["BTC-USD"][0]["Window end (UTC)"] == datetime(2024, 6, 1, 12, 0, 1,
                                                                 tzinfo=UTC)


def test_chart_rows_can_show_the_executable_size_with_gaps() -> None:
    points = [replace(point("BTC-USD", "coinbase", "binance", WINDOW_END_MS + i, i),
                      executable_usd=usd, executable_profit_usd=profit)
              for i, (usd, profit) in enumerate([(1000.0, 0.2), (None, None), (10_000.0, 3.0)])]

    sizes = chart_rows(points, Filters(measure="Executable $"))["BTC-USD"]
    profits = chart_rows(points, Filters(measure="Executable profit $"))["BTC-USD"]

    assert [r["Executable $"] for r in sizes] == [p.executable_usd for p in points]
    assert [r["Executable profit $"] for r in profits] == [0.2, None, 3.0]


def test_feed_health_lists_configured_venues_first_and_judges_staleness() -> None:
    now_ms = WINDOW_END_MS
    activity = {
        "binance": VenueActivity("binance", now_ms - 300, now_ms, 40),
        "coinbase": VenueActivity("coinbase", now_ms - 5000, now_ms, 7),
        "kraken": VenueActivity("kraken", now_ms + 50, now_ms, 1),  # clock ahead: age 0
    }

    health = feed_health(["coinbase", "binance", "bitstamp"], activity, 2000, now_ms)

    assert health == [
        FeedHealth("coinbase", False, 5000, 7),
        FeedHealth("binance", True, 300, 40),
        FeedHealth("bitstamp", False, None, 0),
        FeedHealth("kraken", True, 0, 1),
    ]


def test_duration_text() -> None:
    assert duration_text(None) == "no data"
    assert duration_text(350) == "350 ms"
    assert duration_text(4_249) == "4.2 s"
    assert duration_text(180_000) == "3 min"


def test_suppressed_rows_say_which_alert_held_them_back(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    first, second = (make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(2))
    with AlertHistory(db) as history:
        history.record(first)
        history.record(second)
        history.mark_suppressed(second.id, by_alert_id=first.id)

    view = load_view(db, limit=10)

    assert view.rows[0]["Detail"] == f"cooldown after {first.id}"
    assert view.rows[1]["Detail"] == ""
