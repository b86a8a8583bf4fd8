"""Configuration: defaults, DEMO_MODE, validation errors that name the variable, secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.config import (
    AlerterSettings,
    DetectionSettings,
    KafkaSettings,
    ProducerSettings,
    describe,
    load_dotenv,
)
from services.common.exceptions import ConfigError


def test_detection_defaults_follow_design() -> None:
    settings = DetectionSettings.from_env({})
    assert (settings.window_ms, settings.watermark_ms) == (1000, 200)
    assert settings.min_spread_usd == 50 and settings.min_net_bps is None
    assert settings.max_spread_bps == 500
    assert settings.fee_bps("coinbase") == 60 and settings.fee_bps("binance") == 10
    assert settings.fee_bps("somewhere") == 10  # fallback for venues not configured


def test_demo_mode_lowers_the_threshold_unless_set_explicitly() -> None:
    assert DetectionSettings.from_env({"DEMO_MODE": "TRUE"}).min_spread_usd == 0.10
    explicit = {"DEMO_MODE": "true", "ARB_MIN_SPREAD_USD": "5"}
    assert DetectionSettings.from_env(explicit).min_spread_usd == 5


def test_seed_mode_has_the_seed_windows() -> None:
    seed = DetectionSettings.from_env({"ARB_MODE": "seed"})
    assert (seed.mode, seed.window_ms, seed.watermark_ms) == ("seed", 10_000, 5000)


def test_fee_map_merges_with_defaults() -> None:
    settings = DetectionSettings.from_env({"ARB_TAKER_FEE_BPS": "kraken=26, binance=7.5"})
    assert settings.taker_fee_bps == {"coinbase": 60, "binance": 7.5, "kraken": 26, "okx": 10}


@pytest.mark.parametrize(("name", "value"), [
    ("ARB_WINDOW_MS", "0"),
    ("ARB_WINDOW_MS", "soon"),
    ("ARB_WATERMARK_MS", "-1"),
    ("ARB_MIN_SPREAD_USD", "nan"),
    ("ARB_MAX_SPREAD_BPS", "0"),
    ("ARB_TAKER_FEE_BPS", "coinbase"),
    ("ARB_TAKER_FEE_BPS", "coinbase=-1"),
    ("DEMO_MODE", "maybe"),
    ("ARB_MODE", "fast"),
    ("ARB_STARTUP_MODE", "yesterday"),
])
def test_bad_detection_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        DetectionSettings.from_env({name: value})


@pytest.mark.parametrize(("name", "value"), [
    ("KAFKA_BOOTSTRAP_SERVERS", "localhost"),
    ("ARB_TOPIC_PARTITIONS", "0"),
])
def test_bad_kafka_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        KafkaSettings.from_env({name: value})


def test_producer_symbols_and_url_overrides() -> None:
    settings = ProducerSettings.from_env({
        "ARB_SYMBOLS": "btc-usd,SOL-USD", "ARB_BINANCE_WS_URL": "ws://127.0.0.1:9001",
    })
    assert settings.symbols == ("BTC-USD", "SOL-USD")
    assert settings.ws_urls == {"binance": "ws://127.0.0.1:9001"}
    with pytest.raises(ConfigError, match="ARB_SYMBOLS"):
        ProducerSettings.from_env({"ARB_SYMBOLS": "BTC-USDT"})
    with pytest.raises(ConfigError, match="ARB_COINBASE_WS_URL"):
        ProducerSettings.from_env({"ARB_COINBASE_WS_URL": "http://example.invalid"})


@pytest.mark.parametrize(("env", "window_ms", "watermark_ms"), [
    ({}, 1000, 200),
    ({"ARB_WINDOW_MS": "250"}, 250, 50),
    ({"ARB_WINDOW_MS": "250", "ARB_WATERMARK_MS": "20"}, 250, 20),
    ({"ARB_WATERMARK_MS": "0"}, 1000, 0),
    ({"ARB_MODE": "seed"}, 10_000, 5000),
    ({"ARB_MODE": "seed", "ARB_WINDOW_MS": "4000"}, 4000, 2000),
])
def test_watermark_keeps_the_modes_proportion_of_the_window_unless_set(
    env, window_ms, watermark_ms,
) -> None:
    settings = DetectionSettings.from_env(env)
    assert (settings.window_ms, settings.watermark_ms) == (window_ms, watermark_ms)


@pytest.mark.parametrize(("env", "refresh_ms"), [
    ({}, 500),  # DESIGN's default with the default 1 s window
    ({"ARB_WINDOW_MS": "250"}, 125),
    ({"ARB_WINDOW_MS": "3000"}, 500),
    ({"ARB_MODE": "seed"}, 500),
    ({"ARB_WINDOW_MS": "250", "ARB_QUOTE_REFRESH_MS": "50"}, 50),
    ({"ARB_WINDOW_MS": "1"}, 1),
])
def test_quote_refresh_follows_the_window_unless_set(env, refresh_ms) -> None:
    assert ProducerSettings.from_env(env).refresh_ms == refresh_ms


def test_webhook_is_a_secret() -> None:
    secret = "https://discord.example/api/webhooks/1/very-secret-token"  # noqa: S105 - fake
    settings = AlerterSettings.from_env({"DISCORD_WEBHOOK_URL": secret})
    assert settings.webhook_url == secret
    assert "very-secret-token" not in repr(settings)
    assert describe(settings)["webhook_url"] == "<set, redacted>"
    # Malformed: reported (without the value) and not used; history is still recorded.
    broken = AlerterSettings.from_env({"DISCORD_WEBHOOK_URL": "not a url very-secret-token"})
    assert broken.webhook_url is None
    assert broken.webhook_problem is not None
    assert "DISCORD_WEBHOOK_URL" in broken.webhook_problem
    assert "very-secret-token" not in broken.webhook_problem


def test_dotenv_fills_only_unset_variables(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nexport ARB_WINDOW_MS=250\nARB_WATERMARK_MS='50'\nBROKEN\n")
    environ = {"ARB_WATERMARK_MS": "100"}
    load_dotenv(env_file, environ)
    assert environ == {"ARB_WINDOW_MS": "250", "ARB_WATERMARK_MS": "100"}
