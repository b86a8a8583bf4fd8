"""The Streamlit page itself, run headless by Streamlit's own AppTest on a populated store.

Kafka is down in most of these tests (nothing listens on the configured port): the history part
must work regardless. The live part (chart, feed strip) is tested against a real broker.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from services.common.broker import LocalBroker
from services.common.history import AlertHistory, utc_day_start_ts_ms
from services.common.kafka import ensure_topics, make_producer
from services.common.messages import Spread, to_json
from services.dashboard.data import pair_label
from services.dashboard.metrics import process_metrics
from tests.dashboard.conftest import APP
from tests.support.alerts import WINDOW_END_MS, make_quote, make_spread


def run_app() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()
    assert not app.exception, app.exception
    return app


def rerun_until(app: AppTest, check: Callable[[AppTest], bool], timeout_s: float = 20) -> None:
    """Rerun the page (as its timer would) until ``check`` holds."""
    deadline = time.monotonic() + timeout_s
    while not check(app):
        assert time.monotonic() < deadline, "page never showed what was expected"
        time.sleep(0.3)
        app.run()
        assert not app.exception, app.exception


def metrics_of(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def markdown_of(app: AppTest) -> list[str]:
    return [m.value for m in app.markdown]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def store(db: Path, spreads: list[Spread], delivered: tuple[int, ...] = ()) -> None:
    with AlertHistory(db) as history:
        for spread in spreads:
            history.record(spread)
        for index in delivered:
            history.mark_delivered(spreads[index].id, attempts=1)


def mixed_alerts(base_ms: int) -> list[Spread]:
    """Two symbols, both directions, a range of net spreads and window ends."""
    alerts = []
    for i in range(8):
        symbol, ask = (("BTC-USD", 67_000.0), ("ETH-USD", 3_500.0))[i % 2]
        buy, sell = (("coinbase", "binance"), ("binance", "coinbase"))[(i // 2) % 2]
        alerts.append(make_spread(
            symbol=symbol, buy_exchange=buy, sell_exchange=sell, buy_ask=ask,
            sell_bid=ask * (1 + (20 + 10 * i) / 1e4), fees_bps=20.0,
            window_end_ms=base_ms + i * 1000,
        ))
    return alerts


def test_populated_store_lists_alerts_newest_first_with_summary(page_env: Path) -> None:
    alerts = mixed_alerts(WINDOW_END_MS)
    store(page_env, alerts, delivered=(7, 6))

    app = run_app()

    table = app.dataframe[0].value
    assert list(table["Id"]) == [a.id for a in sorted(alerts, key=lambda a: -a.window_end_ms)]
    assert set(table["Status"]) == {"delivered", "pending"}
    numbers = metrics_of(app)
    best = max(a.net_spread_bps for a in alerts)
    profit = sum(a.est_profit_usd or 0 for a in alerts)
    assert numbers["Best net spread"] == f"{best:+.1f} bps"
    assert numbers["Total est. profit"] == f"${profit:,.2f}"
    assert numbers["Delivered to Discord"] == "2"
    assert numbers["Alerts today"] == "0"  # these windows ended in 2024
    assert numbers["Last alert"].endswith(" d ago")
    assert app.get("link_button")[0].proto.url == "http://localhost:3000"


def test_alerts_today_counts_from_utc_midnight(page_env: Path) -> None:
    midnight = utc_day_start_ts_ms(now_ms())
    alerts = [make_spread(window_end_ms=end) for end in
              (midnight - 60_000, midnight + 1000, min(now_ms(), midnight + 2000))]
    store(page_env, alerts)

    app = run_app()

    assert metrics_of(app)["Alerts today"] == "2"


def test_sidebar_filters_narrow_the_table_and_the_numbers(page_env: Path) -> None:
    alerts = mixed_alerts(now_ms() - 7 * 3_600_000)  # seven hours ago
    recent = make_spread(window_end_ms=now_ms() - 60_000, sell_bid=67_500.0)
    store(page_env, [*alerts, recent])
    app = run_app()

    def shown() -> set[str]:
        return set(app.dataframe[0].value["Id"]) if app.dataframe else set()

    app.sidebar.multiselect(key="symbols").set_value(["ETH-USD"]).run()
    assert shown() == {a.id for a in alerts if a.symbol == "ETH-USD"}

    app.sidebar.multiselect(key="pairs").set_value([pair_label("binance", "coinbase")]).run()
    assert shown() == {a.id for a in alerts
                       if a.symbol == "ETH-USD" and a.buy_exchange == "binance"}
    assert metrics_of(app)["Best net spread"] == "{:+.1f} bps".format(max(
        a.net_spread_bps for a in alerts if a.symbol == "ETH-USD" and a.buy_exchange == "binance"
    ))

    app.sidebar.multiselect(key="symbols").set_value([]).run()
    app.sidebar.multiselect(key="pairs").set_value([]).run()
    app.sidebar.number_input(key="min_net_bps").set_value(40.0).run()
    assert shown() == {a.id for a in [*alerts, recent] if a.net_spread_bps >= 40.0}

    app.sidebar.number_input(key="min_net_bps").set_value(None).run()
    app.sidebar.selectbox(key="time_range").set_value("Last hour").run()
    assert shown() == {recent.id}

    app.sidebar.selectbox(key="time_range").set_value("Last 15 minutes").run()
    app.sidebar.multiselect(key="symbols").set_value(["ETH-USD"]).run()
    assert shown() == set()
    assert "No alerts match the filters" in app.info[-1].value


def test_suppressed_alerts_show_why(page_env: Path) -> None:
    first, second = (make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(2))
    with AlertHistory(page_env) as history:
        for spread in (first, second):
            history.record(spread)
        history.mark_delivered(first.id, attempts=1)
        history.mark_suppressed(second.id, by_alert_id=first.id)

    app = run_app()

    row = app.dataframe[0].value.iloc[0]
    assert (row["Status"], row["Detail"]) == ("suppressed", f"cooldown after {first.id}")
    assert metrics_of(app)["Suppressed (cooldown)"] == "1"


def test_missing_store_says_no_alerts_yet(page_env: Path) -> None:
    app = run_app()

    assert any("No alerts yet" in i.value for i in app.info)
    assert not app.dataframe
    assert not page_env.exists()


def test_page_shows_new_alerts_on_rerun(page_env: Path) -> None:
    app = run_app()
    assert not app.dataframe

    store(page_env, [make_spread()])
    app.run()

    assert len(app.dataframe[0].value) == 1


def test_kafka_down_is_a_notice_and_history_still_shows(page_env: Path) -> None:
    store(page_env, [make_spread()])

    app = run_app()
    rerun_until(app, lambda a: any("Live data unavailable" in w.value for w in a.warning))

    assert len(app.dataframe[0].value) == 1
    assert any(":red[● unreachable]" in m for m in markdown_of(app))
    assert any("No spreads yet" in i.value for i in app.info)


def test_invalid_setting_is_shown_not_raised(
    page_env: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARB_DASHBOARD_MAX_ROWS", "-3")

    app = run_app()

    assert "ARB_DASHBOARD_MAX_ROWS" in app.error[0].value


def test_every_session_shares_one_reader(page_env: Path) -> None:
    before = {t for t in threading.enumerate() if t.name == "dashboard-reader"}

    first, second = run_app(), run_app()
    first.run()

    readers = {t for t in threading.enumerate() if t.name == "dashboard-reader"} - before
    assert first.session_state is not second.session_state
    assert len(readers) == 1
    # AppTest has no runtime and one fixed session id; the browser test counts real tabs.
    _, sessions = process_metrics()
    assert sessions.count() >= 1


def chart_data(app: AppTest) -> list[dict[str, Any]]:
    """The spread rows of every Vega-Lite chart on the page (the breakeven rule left out)."""
    rows: list[dict[str, Any]] = []
    for chart in app.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        for values in (spec.get("datasets") or {}).values():
            rows += values
        for dataset in chart.proto.datasets:
            rows += convert_arrow_bytes_to_pandas_df(dataset.data.data).to_dict("records")
    return [row for row in rows if "Pair" in row]


@pytest.mark.integration
def test_live_chart_and_feed_health_from_kafka(
    page_env: Path, broker: LocalBroker, monkeypatch: pytest.MonkeyPatch, unique: str,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers)
    monkeypatch.setenv("ARB_STALE_MS", "30000")  # coinbase's quote stays fresh while we wait
    spreads_topic, prices_topic = f"spreads-{unique}", f"prices-{unique}"
    ensure_topics(broker.bootstrap_servers, [spreads_topic, prices_topic], 1)
    now = now_ms()
    windows = [now - 10_000 + i * 1000 for i in range(10)]
    spreads = [make_spread(window_end_ms=end, sell_bid=67_080.0 + i)
               for i, end in enumerate(windows)]
    spreads += [replace(make_spread(window_end_ms=end, buy_exchange="binance",
                                    sell_exchange="coinbase"), spread_bps=-5.0) for end in windows]
    producer = make_producer(broker.bootstrap_servers)
    for spread in spreads:
        producer.produce(spreads_topic, key=b"BTC-USD", value=to_json(spread))
    producer.produce(spreads_topic, key=b"BTC-USD", value=b"not a spread")
    producer.produce(prices_topic, key=b"BTC-USD", value=to_json(make_quote(ts_ms=now)))
    producer.produce(prices_topic, key=b"BTC-USD",
                     value=to_json(make_quote(exchange="binance", ts_ms=now - 60_000)))
    assert producer.flush(10) == 0
    store(page_env, [make_spread()])

    app = run_app()
    rerun_until(app, lambda a: len(chart_data(a)) == len(spreads))

    pairs = {row["Pair"] for row in chart_data(app)}
    assert pairs == {pair_label("coinbase", "binance"), pair_label("binance", "coinbase")}
    strip = markdown_of(app)
    assert "**Kafka**  \n:green[● connected]" in strip
    assert any(m.startswith("**coinbase**  \n:green[● connected]") for m in strip)
    assert any(m.startswith("**binance**  \n:red[● silent] · last message 1 min") for m in strip)
    assert not app.warning
    metrics, _ = process_metrics()
    registry = metrics.registry
    assert registry.get_sample_value("arb_dashboard_records_read_total",
                                     {"topic": spreads_topic}) >= len(spreads) + 1
    assert registry.get_sample_value("arb_records_invalid_total",
                                     {"topic": spreads_topic, "reason": "not_json"}) >= 1

    app.sidebar.radio(key="measure").set_value("Spread bps").run()
    values = {row["Spread bps"] for row in chart_data(app) if "binance → coinbase" in row["Pair"]}
    assert values == {-5.0}
