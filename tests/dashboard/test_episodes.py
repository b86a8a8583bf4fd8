"""Opportunity episodes on the dashboard: rows from the history store, the sidebar's filters,
and the table on the Streamlit page with the capturable judgement."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from streamlit.testing.v1 import AppTest

from services.common.history import AlertHistory
from services.dashboard.data import ALL_TIME, EPISODE_COLUMNS, Filters, load_episodes, pair_label
from tests.alerter.test_episodes import scenario
from tests.dashboard.conftest import APP


def store_episodes(db: Path, *, closed: bool = True) -> None:
    _, records = scenario()
    with AlertHistory(db) as history:
        for record in records:
            if closed or record.is_open:
                history.record_episode(record)


def test_rows_newest_first_with_capturable(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    store_episodes(db)

    rows = load_episodes(db, 100, Filters(), now_ts_ms=0)

    assert all(tuple(r) == EPISODE_COLUMNS for r in rows)
    # newest first: ETH 19.01 s, BTC the other way at 19 s, then BTC 11.1, 7.5, 5 s (Coinbase,
    # then Kraken), Kraken at 3.025 s, Coinbase at 3 and 1.1 s
    assert [(r["Symbol"], r["Buy on"], r["Duration ms"], r["Capturable"]) for r in rows] == [
        ("ETH-USD", "coinbase", 1995, True), ("BTC-USD", "binance", 200, False),
        ("BTC-USD", "coinbase", 1900, True), ("BTC-USD", "coinbase", 100, False),
        ("BTC-USD", "coinbase", 1000, True), ("BTC-USD", "kraken", 100, False),
        ("BTC-USD", "kraken", 425, False), ("BTC-USD", "coinbase", 450, False),
        ("BTC-USD", "coinbase", 300, False)]
    assert {r["State"] for r in rows} == {"closed"}
    assert rows[-1]["Passing quotes"] == 2 and rows[-1]["Needs ms"] == 550


def test_episode_rows_show_the_executable_size(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    _, records = scenario()
    closed = next(r for r in records if not r.is_open)
    sized = replace(closed, executable_usd=100_000.0, executable_size=1.5,
                    executable_profit_usd=42.0)
    with AlertHistory(db) as history:
        history.record_episode(sized)

    (row,) = load_episodes(db, 10, Filters(), now_ts_ms=0)

    assert (row["Executable $"], row["Executable size"], row["Executable profit $"]) == (
        sized.executable_usd, sized.executable_size, sized.executable_profit_usd)
    assert row["Peak est. profit $"] == sized.peak_est_profit_usd


def test_filters_and_open_episodes(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    store_episodes(db, closed=False)

    rows = load_episodes(db, 100, Filters(symbols=("BTC-USD",),
                                          pairs=(pair_label("coinbase", "binance"),),
                                          time_range=ALL_TIME), now_ts_ms=0)

    assert len(rows) == 5 and {r["State"] for r in rows} == {"open"}
    assert {r["Duration ms"] for r in rows} == {0}
    assert load_episodes(tmp_path / "missing.db", 100, Filters(), now_ts_ms=0) == []


def test_page_shows_the_episode_table(page_env: Path) -> None:
    store_episodes(page_env)

    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()

    assert not app.exception, app.exception
    assert "Opportunity episodes" in [h.value for h in app.subheader]
    table = app.dataframe[0].value
    assert list(table.columns) == list(EPISODE_COLUMNS)
    assert list(table["Capturable"]) == [True, False, True, False, True, False, False, False,
                                         False]


def test_page_lists_open_opportunities(page_env: Path) -> None:
    store_episodes(page_env, closed=False)

    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()

    assert not app.exception, app.exception
    banner = [m.value for m in app.markdown if "Open now" in m.value]
    assert banner and banner[0].startswith("**Open now: 9**")
    assert "BTC-USD coinbase \u2192 binance" in banner[0]
