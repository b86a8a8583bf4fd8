"""Opportunity episodes on the dashboard: rows from the history store, the sidebar's filters,
and the table on the Streamlit page with the capturable judgement."""

from __future__ import annotations

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

    rows = load_episodes(db, 100, Filters(), now_ms=0)

    assert all(tuple(r) == EPISODE_COLUMNS for r in rows)
    assert [(r["Buy on"], r["Windows"], r["Capturable"]) for r in rows] == [
        ("binance", 1, False), ("coinbase", 2, True), ("coinbase", 2, True),
        ("coinbase", 4, True)]
    assert {r["State"] for r in rows} == {"closed"}
    assert rows[-1]["Duration s"] == 5.0 and rows[-1]["Seen to last ms"] == 4000


def test_filters_and_open_episodes(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    store_episodes(db, closed=False)

    rows = load_episodes(db, 100, Filters(symbols=("BTC-USD",),
                                          pairs=(pair_label("coinbase", "binance"),),
                                          time_range=ALL_TIME), now_ms=0)

    assert len(rows) == 2 and {r["State"] for r in rows} == {"open"}
    assert load_episodes(tmp_path / "missing.db", 100, Filters(), now_ms=0) == []


def test_page_shows_the_episode_table(page_env: Path) -> None:
    store_episodes(page_env)

    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()

    assert not app.exception, app.exception
    assert "Opportunity episodes" in [h.value for h in app.subheader]
    table = app.dataframe[0].value
    assert list(table.columns) == list(EPISODE_COLUMNS)
    assert list(table["Capturable"]) == [False, True, True, True]
