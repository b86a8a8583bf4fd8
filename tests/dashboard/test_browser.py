"""The real page in headless Chromium: it must pick up new alerts by itself, without a reload."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.broker import free_port
from services.common.history import AlertHistory
from services.dashboard.data import COLUMNS
from tests.support.alerts import WINDOW_END_MS, make_spread
from tests.support.browser import Browser, chromium_binary

APP = Path(__file__).resolve().parents[2] / "services" / "dashboard" / "app.py"

pytestmark = [
    pytest.mark.browser,
    # Skipped only on a developer machine without Chromium; CI (CI=true) must run it.
    pytest.mark.skipif(chromium_binary() is None and not os.environ.get("CI"),
                       reason="chromium is not installed (make test installs it)"),
]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def streamlit_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "ARB_HISTORY_DB": str(tmp_path / "alerts.db"),
           "ARB_DASHBOARD_REFRESH_SECONDS": "1"}
    log = open(tmp_path / "streamlit.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _healthy(f"{url}/_stcore/health"):
            assert proc.poll() is None, (tmp_path / "streamlit.log").read_text()
            assert time.monotonic() < deadline, "streamlit did not become healthy"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_page_refreshes_itself_when_alerts_arrive(
    streamlit_url: str, tmp_path: Path, output_dir: Path,
) -> None:
    with Browser() as browser:
        browser.goto(streamlit_url)
        browser.wait_for_text("No alerts yet")
        browser.screenshot(output_dir / "empty.png")

        with AlertHistory(tmp_path / "alerts.db") as history:
            for i in range(3):
                spread = make_spread(window_end_ms=WINDOW_END_MS + i * 1000)
                history.record(spread)
                history.mark_delivered(spread.id, attempts=1)

        # No navigation: the fragment's own timer must bring the alerts in.
        text = browser.wait_for_text("Delivered to Discord", timeout_s=30)
        assert "No alerts yet" not in text
        # The grid draws on a canvas; its accessible cells (glide-cell-<col>-<row>) show the rows.
        rows = browser.wait_for(
            "document.querySelector('[data-testid=stDataFrame] [id^=glide-cell-0-2]') !== null",
        )
        assert rows
        id_column = COLUMNS.index("Id")
        ids = browser.evaluate(
            f"[0, 1, 2].map(r => document.getElementById('glide-cell-{id_column}-' + r)"
            ".textContent)",
        )
        assert ids == [make_spread(window_end_ms=WINDOW_END_MS + i * 1000).id for i in (2, 1, 0)]
        browser.screenshot(output_dir / "alerts.png")
