"""The alerter's spread gauges, executable size and profit included."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import CollectorRegistry

from services.alerter.metrics import AlerterMetrics
from tests.support.alerts import make_spread

PAIR = {"symbol": "BTC-USD", "buy_exchange": "coinbase", "sell_exchange": "binance"}


def value(metrics: AlerterMetrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name, PAIR)


def test_executable_gauges_follow_the_latest_window_and_vanish_when_null() -> None:
    metrics = AlerterMetrics(CollectorRegistry())
    spread = make_spread(fees_bps=10.0)
    executable = replace(spread, executable_usd=10_000.0,
                         executable_size=10_000.0 / spread.buy_ask, executable_profit_usd=3.5)

    metrics.observe_spread(spread)  # no depth: no series, not a zero
    assert value(metrics, "arb_executable_usd") is None
    metrics.observe_spread(executable)
    shown = (value(metrics, "arb_executable_usd"), value(metrics, "arb_executable_profit_usd"))
    metrics.observe_spread(spread)  # the next window passes at no ladder size

    assert shown == (executable.executable_usd, executable.executable_profit_usd)
    assert value(metrics, "arb_executable_usd") is None
    assert value(metrics, "arb_executable_profit_usd") is None
    assert value(metrics, "arb_spread_usd") == spread.spread_usd
