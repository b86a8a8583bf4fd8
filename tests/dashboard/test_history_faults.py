"""A history store the dashboard cannot read (corrupt, locked, not a file) gives one error line
saying what is wrong, with which file, what to do and where the runbook says more, counted in
``arb_dashboard_history_errors_total{reason}``; the live parts of the page still render, and
the page recovers by itself once the store is fixed. Kafka is down here (nothing listens): the
live parts show their own notices. The corrupt case also runs in a real browser."""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from services.common.broker import free_port
from services.common.exceptions import HistoryUnavailable
from services.common.history import AlertHistory
from services.common.history import schema as schema_module
from services.common.history.faults import ADVICE, CORRUPT, LOCKED, MISSING, REASONS
from services.dashboard import data
from services.dashboard.metrics import process_metrics
from tests.dashboard.conftest import APP
from tests.support.alerts import WINDOW_END_MS, make_spread
from tests.support.browser import Browser, chromium_binary
from tests.support.streamlit import served
from tests.support.waiting import http_body, wait_until

LIVE_HEADING = "Live spread per venue pair"


def errors_counted(reason: str) -> float:
    metrics, _ = process_metrics()
    value = metrics.registry.get_sample_value("arb_dashboard_history_errors_total",
                                              {"reason": reason})
    return 0.0 if value is None else value


def run_page() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()
    assert not app.exception, app.exception  # said on the page, never a traceback
    return app


def make_store(path: Path, alerts: int = 3) -> None:
    with AlertHistory(path) as history:
        for i in range(alerts):
            history.record(make_spread(window_end_ms=WINDOW_END_MS + i * 1000))
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def write_garbage(path: Path) -> None:
    path.write_bytes(b"this is not an SQLite file\n" * 200)


def damage(path: Path) -> None:
    make_store(path, alerts=300)
    with open(path, "r+b") as file:
        file.seek(2 * 4096)
        file.write(bytes(range(256)) * 48)


@contextmanager
def locked_against_readers(path: Path) -> Iterator[None]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("UPDATE alerts SET attempts = attempts")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def assert_said_once(app: AppTest, reason: str, path: Path) -> None:
    (error,) = app.error  # one line, not one per failing read
    assert f"Alert history unavailable ({reason})" in error.value
    assert f"`{path}`" in error.value
    assert ADVICE[reason] in error.value
    assert f"]({data.HISTORY_RUNBOOK_LINK})" in error.value
    # The live parts are still there; the history parts gave way.
    assert LIVE_HEADING in [h.value for h in app.subheader]
    assert any(m.value.startswith("**Kafka**") for m in app.markdown)
    assert "Alert history" not in [h.value for h in app.subheader]
    assert not app.metric


# -- the text, per reason (pure) ------------------------------------------------------------------

@pytest.mark.parametrize("reason", REASONS)
def test_the_line_names_reason_file_fix_and_runbook(reason: str) -> None:
    problem = HistoryUnavailable(reason, "/data/alerts.db", "what sqlite said.", ADVICE[reason])
    text = data.history_problem_text(problem)
    assert text.startswith(f"**Alert history unavailable ({reason})**: `/data/alerts.db`: "
                           "what sqlite said. ")
    assert ADVICE[reason] in text
    assert text.endswith("Runbook: [HistoryStoreFailing](runbook#historystorefailing).")
    assert "\n" not in text


def test_a_raw_sqlite_error_becomes_a_problem_with_the_store_path(tmp_path: Path) -> None:
    problem = data.history_problem(sqlite3.OperationalError("database is locked"),
                                   tmp_path / "alerts.db")
    assert (problem.reason, problem.path) == (LOCKED, str(tmp_path / "alerts.db"))


# -- the data layer raises, the page says ---------------------------------------------------------

@pytest.mark.parametrize("load", [
    lambda db: data.load_view(db, 10),
    lambda db: data.load_options(db),
    lambda db: data.load_episodes(db, 10, data.Filters(), WINDOW_END_MS),
])
def test_every_read_of_a_corrupt_store_raises_history_unavailable(
    tmp_path: Path, load: Callable[[Path], object],
) -> None:
    db = tmp_path / "alerts.db"
    write_garbage(db)
    with pytest.raises(HistoryUnavailable) as raised:
        load(db)
    assert raised.value.reason == CORRUPT


def test_a_corrupt_store_is_said_and_counted(page_env: Path) -> None:
    write_garbage(page_env)
    before = errors_counted(CORRUPT)

    app = run_page()

    assert_said_once(app, CORRUPT, page_env)
    assert "not a database" in app.error[0].value
    # Both reads of the run failed (the sidebar's choices and the page's history).
    assert errors_counted(CORRUPT) == before + 2


def test_a_damaged_store_is_said(page_env: Path) -> None:
    damage(page_env)
    app = run_page()
    assert_said_once(app, CORRUPT, page_env)
    assert "malformed" in app.error[0].value


def test_a_locked_store_is_said_and_the_page_recovers(page_env: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    make_store(page_env)
    monkeypatch.setattr(schema_module, "BUSY_TIMEOUT_MS", 50)
    before = errors_counted(LOCKED)
    with locked_against_readers(page_env):
        app = run_page()
        assert_said_once(app, LOCKED, page_env)
        assert errors_counted(LOCKED) > before

    app.run()  # the lock is gone: the next refresh shows the history again
    assert not app.exception and not app.error
    assert any("3 alerts match the filters" in c.value for c in app.caption)


def test_a_folder_in_the_stores_place_is_said(page_env: Path) -> None:
    page_env.mkdir()
    app = run_page()
    assert_said_once(app, MISSING, page_env)


def test_a_corrupt_store_moved_aside_is_an_empty_history_again(page_env: Path) -> None:
    write_garbage(page_env)
    app = run_page()
    assert app.error

    page_env.rename(page_env.with_suffix(".db.corrupt"))  # the runbook's fix
    app.run()
    assert not app.exception and not app.error
    assert any("No alerts yet" in i.value for i in app.info)


# -- in a real browser ----------------------------------------------------------------------------

@pytest.fixture
def corrupt_dashboard(tmp_path: Path, unique: str, output_dir: Path) -> Iterator[tuple[str, str,
                                                                                     Path]]:
    """``python -m services.dashboard`` on a corrupt store, Kafka pointed where nothing
    listens: (page URL, metrics URL, store path)."""
    port, metrics_port = free_port(), free_port()
    db = tmp_path / "alerts.db"
    write_garbage(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "KAFKA_"))}
    env.update({
        "ARB_HISTORY_DB": str(db),
        "ARB_DASHBOARD_REFRESH_SECONDS": "1",
        "ARB_DASHBOARD_PORT": str(port),
        "ARB_DASHBOARD_METRICS_PORT": str(metrics_port),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "ARB_SPREADS_TOPIC": f"spreads-{unique}",
        "ARB_PRICES_TOPIC": f"prices-{unique}",
    })
    argv = [sys.executable, "-m", "services.dashboard", "--server.address", "127.0.0.1"]
    with served(argv, port, tmp_path, output_dir / "streamlit.log", env) as url:
        yield url, f"http://127.0.0.1:{metrics_port}/metrics", db


def counted_on(metrics_url: str, reason: str) -> float:
    match = re.search(rf'^arb_dashboard_history_errors_total\{{reason="{reason}"\}} (\S+)$',
                      http_body(metrics_url).decode(), flags=re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.mark.browser
@pytest.mark.skipif(chromium_binary() is None and not os.environ.get("CI"),
                    reason="chromium is not installed (make test installs it)")
def test_a_corrupt_store_in_a_real_browser(corrupt_dashboard: tuple[str, str, Path],
                                           output_dir: Path) -> None:
    url, metrics_url, db = corrupt_dashboard
    assert counted_on(metrics_url, CORRUPT) == 0  # the series exists before any page run
    with Browser(width=1400, height=1000) as browser:
        browser.goto(url)
        text = browser.wait_for_text("Alert history unavailable (corrupt)", timeout_s=40)
        assert str(db) in text
        assert "move the file aside" in text
        assert LIVE_HEADING in text  # the rest of the page rendered
        assert "Traceback" not in text and "DatabaseError" not in text
        link = browser.evaluate(
            "Array.from(document.querySelectorAll('[data-testid=stAlertContentError] a'))"
            ".map(a => a.getAttribute('href'))")
        assert link == [data.HISTORY_RUNBOOK_LINK]
        browser.screenshot(output_dir / "history-corrupt.png")
        # The page's own refresh keeps counting while the store stays corrupt.
        wait_until(lambda: counted_on(metrics_url, CORRUPT) >= 3, 30, "refreshes counted")
