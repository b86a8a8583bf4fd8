"""Configuration: defaults, DEMO_MODE, validation errors that name the variable, secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.config import (
    AlerterSettings,
    DashboardSettings,
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
    assert settings.taker_fee_bps == {"coinbase": 60, "binance": 7.5, "kraken": 26, "okx": 10,
                                      "bybit": 10, "bitstamp": 40}


@pytest.mark.parametrize(("raw", "sizes"), [
    ("1000,10000,100000", (1000.0, 10000.0, 100000.0)),
    (" 500 , 2500 ", (500.0, 2500.0)),
    ("none", ()),
    ("", (1000.0, 10000.0, 100000.0)),  # empty means the default, as for every setting
])
def test_depth_notionals_read(raw: str, sizes: tuple[float, ...]) -> None:
    env = {"ARB_DEPTH_NOTIONALS_USD": raw}
    assert DetectionSettings.from_env(env).depth_notionals_usd == sizes


@pytest.mark.parametrize("raw", ["10000,1000", "1000,1000", "0,1000", "-5", "nan", "1,2,3,4,5,6,7",
                                 "1000;10000"])
def test_bad_depth_notionals_name_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="ARB_DEPTH_NOTIONALS_USD"):
        DetectionSettings.from_env({"ARB_DEPTH_NOTIONALS_USD": raw})


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


# --- one declaration per setting -----------------------------------------------------------------


def test_every_field_is_a_declared_setting_or_derived_from_one() -> None:
    from services.common.config import MODELS
    from services.common.settings.base import doc_of, env_name

    derived = {"default_feed_latency_ms", "webhook_problem"}
    for model in MODELS:
        assert model.SECTION, model
        for name, field in model.model_fields.items():
            if name in derived:
                assert env_name(field) is None
                continue
            assert env_name(field), f"{model.__name__}.{name} has no variable"
            assert doc_of(field)[0], f"{model.__name__}.{name} has no doc"


def test_a_setting_several_services_read_is_declared_once() -> None:
    from services.common.config import MODELS
    from services.common.settings.catalogue import entries

    found = [entry.env for entry in entries(MODELS)]
    assert len(found) == len(set(found))
    by_name = {entry.env: entry for entry in entries(MODELS)}
    assert set(by_name["ARB_VENUES"].readers) == {
        "Detection (Flink job)", "Producer", "Dashboard"}
    # One declaration, every reader: the alerter writes where the dashboard reads.
    env = {"ARB_HISTORY_DB": "x.db"}
    assert DashboardSettings.from_env(env).history_db == AlerterSettings.from_env(env).history_db


# --- the environment -----------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "suggested"), [
    ("ARB_WINDOW_M", "ARB_WINDOW_MS"),
    ("ARB_WATERMARKMS", "ARB_WATERMARK_MS"),
    ("ARB_BINANCE_WS_UR", "ARB_BINANCE_WS_URL"),
])
def test_a_misspelt_variable_stops_the_service_with_did_you_mean(given, suggested) -> None:
    for model in (DetectionSettings, ProducerSettings, AlerterSettings, KafkaSettings):
        with pytest.raises(ConfigError, match=f"{given} is not a setting; did you mean "
                                              f"{suggested}"):
            model.from_env({given: "250"})


def test_variables_of_listed_venues_and_other_programs_are_known() -> None:
    env = {"ARB_VENUES": "coinbase,bitstamp", "ARB_BITSTAMP_WS_URL": "ws://127.0.0.1:1",
           "ARB_KRAKEN_SYMBOLS": "BTC-USD=XBT/USD", "PATH": "/bin", "KAFKA_HEAP_OPTS": "-Xmx1g"}
    assert ProducerSettings.from_env(env).ws_urls == {"bitstamp": "ws://127.0.0.1:1"}
    DetectionSettings.from_env(env)  # the producer's variables do not stop the job
    with pytest.raises(ConfigError, match="ARB_NOTHING_LIKE_IT is not a setting"):
        KafkaSettings.from_env({"ARB_NOTHING_LIKE_IT": "1"})


def test_dotenv_is_read_as_docker_compose_reads_it(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "ARB_WINDOW_MS=250 # quarter-second windows\n"
        "ARB_HISTORY_DB=${STATE_DIR}/alerts.db\n"
        "ARB_CHECKPOINT_DIR=${MISSING:-var/ckpt}\n"
        "ARB_PRICES_TOPIC=prices\n"
        "ARB_SPREADS_TOPIC=${ARB_PRICES_TOPIC}-spreads\n"
        "ARB_ALERTS_TOPIC='${literal} # kept'\n"
        'ARB_EPISODES_TOPIC="episodes # quoted"\n'
        "ARB_DASHBOARD_URL=http://host/#anchor\n",
    )
    environ = {"STATE_DIR": "/data"}
    load_dotenv(env_file, environ)
    assert environ["ARB_WINDOW_MS"] == "250"
    assert environ["ARB_HISTORY_DB"] == "/data/alerts.db"
    assert environ["ARB_CHECKPOINT_DIR"] == "var/ckpt"
    assert environ["ARB_SPREADS_TOPIC"] == "prices-spreads"
    assert environ["ARB_ALERTS_TOPIC"] == "${literal} # kept"
    assert environ["ARB_EPISODES_TOPIC"] == "episodes # quoted"
    assert environ["ARB_DASHBOARD_URL"] == "http://host/#anchor"
    assert DetectionSettings.from_env(environ).window_ms == 250


def test_secret_is_a_secret_type_and_never_in_errors_or_strings() -> None:
    from pydantic import SecretStr

    secret = "https://discord.example/api/webhooks/1/very-secret-token"  # noqa: S105 - fake
    settings = AlerterSettings.from_env({"DISCORD_WEBHOOK_URL": secret})
    assert isinstance(settings.webhook_url, SecretStr)
    assert settings.webhook_url.get_secret_value() == secret
    for text in (str(settings), repr(settings), str(describe(settings)),
                 settings.model_dump_json()):
        assert "very-secret-token" not in text


def test_errors_name_the_variable_and_its_value() -> None:
    with pytest.raises(ConfigError) as caught:
        DetectionSettings.from_env({"ARB_WINDOW_MS": "soon", "ARB_STALE_MS": "-5"})
    message = str(caught.value)
    assert "ARB_WINDOW_MS='soon' is invalid" in message
    assert "ARB_STALE_MS='-5' is invalid" in message
    with pytest.raises(ConfigError, match="ARB_FEED_LATENCY_MS='fast' is invalid"):
        DetectionSettings.from_env({"ARB_FEED_LATENCY_MS": "fast"})
    with pytest.raises(ConfigError, match="ARB_DISCORD_MESSAGES='all' is invalid"):
        AlerterSettings.from_env({"ARB_DISCORD_MESSAGES": "all"})


def test_feed_latency_number_and_pairs_come_from_one_variable() -> None:
    settings = DetectionSettings.from_env({"ARB_FEED_LATENCY_MS": "300,binance=120"})
    assert settings.latency_ms("binance") == 120 and settings.latency_ms("okx") == 300
    assert DetectionSettings.from_env({}).latency_ms("okx") == 250


def test_a_model_built_in_code_reads_no_environment(monkeypatch) -> None:
    monkeypatch.setenv("ARB_WINDOW_MS", "250")
    monkeypatch.setenv("ARB_WINDOW_M", "typo")
    assert DetectionSettings().window_ms == 1000
    assert DetectionSettings(mode="seed").window_ms == 10_000
