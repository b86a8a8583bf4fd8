"""The entry point's wiring: configured venues, shared stablecoin rates, invalid settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from services.common.config import ProducerSettings
from services.common.exceptions import ConfigError
from services.producer.__main__ import (
    build_feeds,
    configured_venues,
    warn_if_refresh_misses_windows,
)
from tests.producer.conftest import ListSink

REPO = Path(__file__).resolve().parents[2]


def settings(**env: str) -> ProducerSettings:
    return ProducerSettings.from_env(env)


def test_defaults_read_coinbase_and_binance_with_coinbase_usdt_rate(metrics) -> None:
    feeds = build_feeds(settings(), ListSink(), metrics)

    assert [f.name for f in feeds] == ["coinbase", "binance"]
    cb, bn = feeds
    assert cb.rate_only == ["USDT-USD"] and bn.rate_only == []
    assert cb.fx is bn.fx  # one table of rates for the process
    assert bn.rollover_after_s == 24 * 3600 - 600
    assert cb.rollover_after_s is None


def test_every_venue_and_overrides(metrics) -> None:
    env = {"ARB_VENUES": "coinbase,binance,kraken,okx", "ARB_SYMBOLS": "BTC-USD",
           "ARB_BINANCE_SYMBOLS": "BTC-USD=BTCUSDC", "ARB_OKX_WS_URL": "ws://127.0.0.1:1",
           "ARB_WATCHDOG_MS": "5000", "ARB_ROLLOVER_MARGIN_SECONDS": "60",
           "ARB_BINANCE_REST_URL": "http://127.0.0.1:2", "ARB_BOOK_LEVELS": "200"}

    feeds = {f.name: f for f in build_feeds(settings(**env), ListSink(), metrics)}

    # USDT (OKX) and USDC (Binance BTCUSDC) are needed: Coinbase lists USDT, Kraken both
    assert feeds["coinbase"].rate_only == ["USDT-USD"]
    assert feeds["kraken"].rate_only == ["USDT/USD", "USDC/USD"]
    assert feeds["binance"].url.endswith(
        "streams=btcusdc@bookTicker/btcusdc@trade/btcusdc@depth@100ms")
    assert feeds["okx"].url == "ws://127.0.0.1:1"
    assert {f.watchdog_ms for f in feeds.values()} == {5000}
    assert feeds["binance"].rollover_after_s == 24 * 3600 - 60
    # books on by default (ARB_DEPTH_NOTIONALS_USD), snapshots from the overridden REST URL
    assert feeds["binance"].rest_url == "http://127.0.0.1:2"
    assert feeds["coinbase"].rest_url == ""  # no REST snapshot: level2_batch brings its own
    assert feeds["kraken"].processor.book_levels == 200
    assert feeds["okx"].processor.notionals_usd == (1000.0, 10000.0, 100000.0)


def test_no_stablecoin_market_no_rate_subscription(metrics) -> None:
    feeds = build_feeds(settings(ARB_VENUES="coinbase,kraken"), ListSink(), metrics)

    assert [f.rate_only for f in feeds] == [[], []]


@pytest.mark.parametrize(("env", "variable"), [
    ({"ARB_VENUES": "coinbase,mtgox"}, "ARB_VENUES"),
    ({"ARB_SYMBOLS": "SOL-USD"}, "ARB_SYMBOLS"),
    ({"ARB_BINANCE_SYMBOLS": "BTC-USD=BTCEUR"}, "ARB_BINANCE_SYMBOLS"),
])
def test_unusable_markets_are_config_errors(env, variable) -> None:
    with pytest.raises(ConfigError, match=variable):
        configured_venues(settings(**env))


@pytest.mark.parametrize(("env", "variable"), [
    ({"ARB_BINANCE_SYMBOLS": "BTC-USD"}, "ARB_BINANCE_SYMBOLS"),
    ({"ARB_KRAKEN_SYMBOLS": "BTC-EUR=XBT/EUR", "ARB_VENUES": "kraken"}, "ARB_KRAKEN_SYMBOLS"),
    ({"ARB_WATCHDOG_MS": "0"}, "ARB_WATCHDOG_MS"),
    ({"ARB_USDC_USD": "nan"}, "ARB_USDC_USD"),
    ({"ARB_FX_MAX_AGE_MS": "-1"}, "ARB_FX_MAX_AGE_MS"),
    ({"ARB_ROLLOVER_MARGIN_SECONDS": "0"}, "ARB_ROLLOVER_MARGIN_SECONDS"),
    ({"ARB_PRODUCER_QUEUE_MAX_MESSAGES": "x"}, "ARB_PRODUCER_QUEUE_MAX_MESSAGES"),
    ({"ARB_PRODUCER_TRADE_BACKLOG": "0"}, "ARB_PRODUCER_TRADE_BACKLOG"),
])
def test_invalid_settings_name_the_variable(env, variable) -> None:
    with pytest.raises(ConfigError, match=variable):
        settings(**env)


def test_cli_exits_2_on_an_unconvertible_market() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.producer", "live"],
        cwd=REPO, env=os.environ | {"ARB_BINANCE_SYMBOLS": "BTC-USD=BTCEUR"},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert "ARB_BINANCE_SYMBOLS" in done.stderr


def test_a_refresh_as_long_as_the_window_is_reported() -> None:
    with structlog.testing.capture_logs() as logs:
        assert warn_if_refresh_misses_windows(settings(ARB_WINDOW_MS="250",
                                                       ARB_QUOTE_REFRESH_MS="250"))
        assert not warn_if_refresh_misses_windows(settings(ARB_WINDOW_MS="250"))
        assert not warn_if_refresh_misses_windows(settings())
    assert [(e["event"], e["refresh_ms"], e["window_ms"]) for e in logs] == [
        ("quote_refresh_not_below_window", 250, 250)]
