"""Shared conversions of every connector: numbers, times, rates, markets; the venue registry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.exceptions import ConfigError, RecordError
from services.producer import binance, coinbase
from services.producer.connector import (
    epoch_ms,
    fx_to_usd_for,
    positive,
    rate_for,
    rfc3339_to_ms,
    seconds_text_to_ms,
    seq_number,
)
from services.producer.venues import VENUES, get_venue


@pytest.mark.parametrize(("value", "expected"), [
    ("61837.63000000", 61837.63), ("0.00000001", 1e-8), (3, 3.0), (2.5, 2.5), ("1e3", 1000.0),
])
def test_positive_numbers(value, expected) -> None:
    assert positive(value, "p", "bad_price") == expected


@pytest.mark.parametrize("value", [
    "NaN", "nan", "inf", "-Infinity", "0", "0.00000000", "-1", "", "abc", True, False, [1], {},
    float("nan"), 0, -3,
])
def test_not_positive_numbers_are_the_given_reason(value) -> None:
    with pytest.raises(RecordError) as err:
        positive(value, "p", "bad_size")
    assert err.value.reason == "bad_size"


def test_absent_number_is_missing() -> None:
    with pytest.raises(RecordError) as err:
        positive(None, "p", "bad_price")
    assert (err.value.reason, err.value.detail) == ("missing_field", "p")


def test_float_of_text_matches_decimal_exactly() -> None:
    from decimal import Decimal

    for text in ["61837.63000000", "0.7911", "30228.6", "354.32000000", "0.1", "1.55896972"]:
        assert positive(text, "p", "bad_price") == float(Decimal(text))


@pytest.mark.parametrize("text", [
    "2021-04-17T16:43:37.056746Z", "2021-04-17T16:43:37.056746123Z", "2021-04-17T16:43:37Z",
    "2021-04-17T16:43:37.5Z", "2024-02-29T23:59:59.999Z", "2021-04-17T18:43:37.5+02:00",
])
def test_rfc3339_fast_and_slow_paths_agree(text) -> None:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    expected = int(parsed.replace(microsecond=0).timestamp()) * 1000 + parsed.microsecond // 1000

    assert rfc3339_to_ms(text) == rfc3339_to_ms(text) == expected  # twice: the cached second


@pytest.mark.parametrize("text", [
    "yesterday", "2021-13-17T16:43:37Z", "2021-04-17T25:43:37.1Z", "2021-04-17T16:43:37.Z",
    "2021-04-17T16:43:37.12aZ", "2021-04-17 16:43:37", 1618677817, None,
])
def test_bad_rfc3339_is_bad_time(text) -> None:
    with pytest.raises(RecordError) as err:
        rfc3339_to_ms(text)
    assert err.value.reason == "bad_time"


def test_seconds_text() -> None:
    assert seconds_text_to_ms("1618678142.557535") == 1618678142557
    assert seconds_text_to_ms("1618678142") == 1618678142000
    for bad in ["1618678142.5x", "-1.5", "", 1618678142.5]:
        with pytest.raises(RecordError):
            seconds_text_to_ms(bad)


def test_epoch_ms_and_sequence_numbers() -> None:
    assert epoch_ms({"T": 1723161255342}, "T") == 1723161255342
    assert epoch_ms({"ts": "1652459224956"}, "ts") == 1652459224956
    for bad in [{"T": "soon"}, {"T": True}, {"T": -5}, {"T": 1.5}]:
        with pytest.raises(RecordError) as err:
            epoch_ms(bad, "T")
        assert err.value.reason == "bad_time"
    assert seq_number(12) == 12 and seq_number("338476307") == 338476307
    assert seq_number(True) is None and seq_number("12a") is None and seq_number(1.0) is None


def test_rates() -> None:
    assert rate_for(1.0003, "USD") == 1.0
    assert rate_for(1.0003, "USDT") == 1.0003
    assert rate_for({"USDT": 1.0002}, "USDT") == 1.0002
    with pytest.raises(RecordError) as err:
        rate_for({"USDT": 1.0002}, "USDC")
    assert err.value.reason == "no_fx_rate"
    assert fx_to_usd_for("USD", 0.99) == 1.0
    assert fx_to_usd_for("USDC", 0.99, 1.01) == 1.01
    with pytest.raises(ConfigError):
        fx_to_usd_for("EUR", 1.0)


def test_registry_has_six_venues_with_btc_and_eth() -> None:
    assert set(VENUES) == {"coinbase", "binance", "kraken", "okx", "bybit", "bitstamp"}
    for venue in VENUES.values():
        markets = venue.venue_symbols(["BTC-USD", "ETH-USD"])
        venue.check_markets(markets)  # USD or a convertible stablecoin


def test_unknown_venue_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="ARB_VENUES"):
        get_venue("mtgox")


def test_symbol_overrides_add_to_the_defaults() -> None:
    venue = get_venue("binance", {"BTC-USD": "BTCUSDC", "SOL-USD": "SOLUSDT"})

    assert venue.venue_symbols(["BTC-USD", "ETH-USD", "SOL-USD"]) == [
        "BTCUSDC", "ETHUSDT", "SOLUSDT"]
    assert venue.market_quote_ccy("BTCUSDC") == "USDC"
    assert binance.VENUE.symbols["BTC-USD"] == "BTCUSDT"  # the module's data is untouched


def test_unlisted_symbol_and_unconvertible_market_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="ARB_SYMBOLS: SOL-USD not listed on coinbase"):
        coinbase.VENUE.venue_symbols(["SOL-USD"])
    with pytest.raises(ConfigError, match="ARB_BINANCE_SYMBOLS: BTCEUR is quoted in EUR"):
        get_venue("binance", {"BTC-USD": "BTCEUR"}).check_markets(["BTCEUR"])


def test_epoch_of_the_cached_second_is_utc() -> None:
    ms = rfc3339_to_ms("2021-04-17T16:43:37Z")
    assert datetime.fromtimestamp(ms / 1000, UTC) == datetime(2021, 4, 17, 16, 43, 37, tzinfo=UTC)
