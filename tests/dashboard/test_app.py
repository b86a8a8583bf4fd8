"""The Streamlit page itself, run headless by Streamlit's own AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from services.common.history import AlertHistory
from tests.support.alerts import WINDOW_END_MS, make_spread

APP = Path(__file__).resolve().parents[2] / "services" / "dashboard" / "app.py"


def run_app(monkeypatch: pytest.MonkeyPatch, db: Path) -> AppTest:
    monkeypatch.setenv("ARB_HISTORY_DB", str(db))
    monkeypatch.setenv("ARB_DASHBOARD_REFRESH_SECONDS", "1")
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()
    assert not app.exception, app.exception
    return app


def test_populated_store_lists_alerts_newest_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    db = tmp_path / "alerts.db"
    ends = [WINDOW_END_MS + offset for offset in (2000, 0, 4000, 1000, 3000)]
    with AlertHistory(db) as history:
        for end in ends:
            history.record(make_spread(window_end_ms=end))
        newest_id = make_spread(window_end_ms=max(ends)).id
        history.mark_delivered(newest_id, attempts=1)

    app = run_app(monkeypatch, db)

    table = app.dataframe[0].value
    assert len(table) == len(ends)
    assert list(table["Id"]) == [make_spread(window_end_ms=e).id for e in sorted(ends)[::-1]]
    assert table["Status"].iloc[0] == "delivered"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Alerts"] == "5"
    assert metrics["Delivered to Discord"] == "1"
    assert not app.info


def test_missing_store_says_no_alerts_yet(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    db = tmp_path / "never-created" / "alerts.db"

    app = run_app(monkeypatch, db)

    assert "No alerts yet" in app.info[0].value
    assert not app.dataframe
    assert not db.exists()


def test_page_shows_new_alerts_on_rerun(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    app = run_app(monkeypatch, db)
    assert app.info

    with AlertHistory(db) as history:
        history.record(make_spread())
    app.run()

    assert len(app.dataframe[0].value) == 1


def test_invalid_setting_is_shown_not_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("ARB_DASHBOARD_MAX_ROWS", "-3")
    app = run_app(monkeypatch, tmp_path / "alerts.db")

    assert "ARB_DASHBOARD_MAX_ROWS" in app.error[0].value
