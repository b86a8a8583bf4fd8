"""The real page in headless Chromium, served by ``python -m services.dashboard`` against a real
broker: the alert table and the live spread chart render, new alerts arrive without a reload,
and the server's metrics count the open tab. Screenshots go to the test's output folder."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common.broker import LocalBroker, free_port
from services.common.history import AlertHistory
from services.common.kafka import ensure_topics, make_producer
from services.common.messages import to_json
from services.dashboard.data import COLUMNS
from tests.support.alerts import make_quote, make_spread
from tests.support.browser import Browser, chromium_binary
from tests.support.streamlit import served
from tests.support.waiting import http_body, wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    # Skipped only on a developer machine without Chromium; CI (CI=true) must run it.
    pytest.mark.skipif(chromium_binary() is None and not os.environ.get("CI"),
                       reason="chromium is not installed (make test installs it)"),
]

#: The grid draws on a canvas; its accessible cells (glide-cell-<col>-<row>) carry the text.
GRID_CELL = "[data-testid=stDataFrame] [id^=glide-cell-0-{row}]"
#: Vega-Lite renders into a canvas (or an svg) inside Streamlit's chart element.
CHART_MARK = ("[data-testid=stVegaLiteChart] canvas, [data-testid=stVegaLiteChart] svg, "
              ".vega-embed canvas, .vega-embed svg")


@dataclass
class Dashboard:
    url: str
    metrics_url: str
    db: Path


class LiveFeed:
    """Publishes a spread per ordered pair each 500 ms window and a quote per venue, as the
    Flink job and the producer would, until stopped."""

    def __init__(self, bootstrap: str, spreads_topic: str, prices_topic: str) -> None:
        self._producer = make_producer(bootstrap)
        self._topics = (spreads_topic, prices_topic)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-feed", daemon=True)

    def _run(self) -> None:
        spreads_topic, prices_topic = self._topics
        step = 0
        while not self._stop.is_set():
            now_ms = time.time_ns() // 1_000_000
            window_end_ms = now_ms - now_ms % 500
            wiggle = 20.0 * ((step % 10) - 5)
            for buy, sell, bid in (("coinbase", "binance", 67_060.0 + wiggle),
                                   ("binance", "coinbase", 66_990.0 - wiggle)):
                spread = make_spread(window_end_ms=window_end_ms, window_ms=500,
                                     buy_exchange=buy, sell_exchange=sell, sell_bid=bid)
                self._producer.produce(spreads_topic, key=b"BTC-USD", value=to_json(spread))
            for venue in ("coinbase", "binance"):
                quote = make_quote(exchange=venue, ts_ms=now_ms, refresh=True)
                self._producer.produce(prices_topic, key=b"BTC-USD", value=to_json(quote))
            self._producer.poll(0)
            step += 1
            self._stop.wait(0.5)
        self._producer.flush(5)

    def __enter__(self) -> LiveFeed:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def dashboard(broker: LocalBroker, tmp_path: Path, unique: str,
              output_dir: Path) -> Iterator[Dashboard]:
    port, metrics_port = free_port(), free_port()
    spreads_topic, prices_topic = f"spreads-{unique}", f"prices-{unique}"
    ensure_topics(broker.bootstrap_servers, [spreads_topic, prices_topic], 1)
    db = tmp_path / "alerts.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "KAFKA_"))}
    env.update({
        "ARB_HISTORY_DB": str(db),
        "ARB_DASHBOARD_REFRESH_SECONDS": "1",
        "ARB_DASHBOARD_PORT": str(port),
        "ARB_DASHBOARD_METRICS_PORT": str(metrics_port),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "ARB_SPREADS_TOPIC": spreads_topic,
        "ARB_PRICES_TOPIC": prices_topic,
    })
    log_path = output_dir / "streamlit.log"
    argv = [sys.executable, "-m", "services.dashboard", "--server.address", "127.0.0.1"]
    with (LiveFeed(broker.bootstrap_servers, spreads_topic, prices_topic),
          served(argv, port, tmp_path, log_path, env) as url):
        yield Dashboard(url, f"http://127.0.0.1:{metrics_port}/metrics", db)


def sample(metrics_url: str, name: str, labels: str = "") -> float | None:
    """One sample from a /metrics page, e.g. ``arb_dashboard_sessions``."""
    text = http_body(metrics_url).decode()
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(f"^{pattern}$", text, flags=re.MULTILINE)
    return float(match.group(1)) if match else None


def test_table_and_chart_render_and_alerts_arrive_without_reload(
    dashboard: Dashboard, output_dir: Path,
) -> None:
    # Served from the start, before anyone opened the page (python -m services.dashboard).
    assert sample(dashboard.metrics_url, "arb_dashboard_sessions") == 0

    with Browser(width=1600, height=1700) as browser:
        browser.goto(dashboard.url)
        browser.wait_for_text("No alerts yet")
        browser.wait_for(f"document.querySelector({CHART_MARK!r}) !== null", timeout_s=30)
        wait_until(lambda: sample(dashboard.metrics_url, "arb_dashboard_sessions") == 1, 30,
                   "the open tab counted")

        alerts = [make_spread(window_end_ms=(time.time_ns() // 1_000_000) - i * 1000,
                              sell_bid=67_080.5 + 10 * i) for i in range(3)]
        with AlertHistory(dashboard.db) as history:
            for spread in alerts:
                history.record(spread)
                history.mark_delivered(spread.id, attempts=1)

        # No navigation: the fragment's own timer brings the alerts in.
        text = browser.wait_for_text(f"{len(alerts)} alerts match the filters", timeout_s=30)
        browser.wait_for(f"document.querySelector({GRID_CELL.format(row=2)!r}) !== null")
        # The grid only renders the columns in view; the sell bids tell the three alerts apart.
        bids = browser.evaluate(
            f"[0, 1, 2].map(r => document.getElementById("
            f"'glide-cell-{COLUMNS.index('Sell bid $')}-' + r)?.textContent)",
        )
        assert [float(b) for b in bids] == [a.sell_bid for a in alerts]  # newest first
        assert "No alerts yet" not in text
        assert "coinbase" in text and "connected" in text  # feed strip, fed by the live topic
        # A drawn chart, not an empty placeholder: its canvas has a real size.
        chart = browser.wait_for(
            f"(() => {{ const sizes = Array.from(document.querySelectorAll({CHART_MARK!r}))"
            ".map(c => c.getBoundingClientRect()).filter(r => r.width > 300 && r.height > 150)"
            ".map(r => [r.width, r.height]); return sizes.length ? sizes[0] : null; })()",
        )
        assert chart, chart
        time.sleep(1.5)  # one more refresh so the chart has drawn several windows
        browser.screenshot(output_dir / "dashboard.png")

        assert sample(dashboard.metrics_url, "arb_dashboard_records_read_total",
                      f'topic="{dashboard_topic(dashboard, "spreads")}"') > 0

    wait_until(lambda: sample(dashboard.metrics_url, "arb_dashboard_sessions") == 0, 60,
               "the closed tab forgotten")
    assert (output_dir / "dashboard.png").stat().st_size > 20_000


def dashboard_topic(dashboard: Dashboard, kind: str) -> str:
    """The topic name the dashboard reads, from its own metrics (one per kind)."""
    names = re.findall(r'arb_dashboard_records_read_total\{topic="([^"]+)"\}',
                       http_body(dashboard.metrics_url).decode())
    (name,) = [n for n in names if n.startswith(kind)]
    return name
