"""FxRates: live stablecoin rates from rate markets, freshness, fallback, sanity band."""

from __future__ import annotations

import pytest
import structlog

from services.common.exceptions import RecordError
from services.common.messages import Quote
from services.producer.fx import FxRates


def rate_quote(exchange: str = "coinbase", symbol: str = "USDT-USD", bid: float = 1.0001,
               ask: float = 1.0003, recv_ts_ms: int = 1_000) -> Quote:
    return Quote(exchange=exchange, symbol=symbol, venue_symbol=symbol, bid=bid, bid_size=1.0,
                 ask=ask, ask_size=1.0, quote_ccy="USD", fx_to_usd=1.0, ts_ms=recv_ts_ms,
                 recv_ts_ms=recv_ts_ms, exchange_ts_ms=None)


@pytest.fixture
def rates() -> FxRates:
    return FxRates({"USDT": 0.999, "USDC": 1.0}, max_age_ms=10_000)


def test_fallback_until_a_rate_market_quotes(rates) -> None:
    assert rates.table(0) == {"USDT": 0.999, "USDC": 1.0}
    assert rates.source("USDT", 0) == "fallback"


def test_the_mid_of_a_rate_market_is_the_live_rate(rates) -> None:
    assert rates.on_quote(rate_quote(bid=1.0001, ask=1.0003, recv_ts_ms=1_000))

    assert rates.rate("USDT", 1_500) == pytest.approx(1.0002)
    assert rates.source("USDT", 1_500) == "coinbase"
    assert rates.rate("USDC", 1_500) == 1.0  # untouched


def test_a_stale_rate_gives_way_to_the_fallback(rates) -> None:
    rates.on_quote(rate_quote(recv_ts_ms=1_000))

    assert rates.rate("USDT", 10_999) == pytest.approx(1.0002)
    assert rates.rate("USDT", 11_000) == 0.999


def test_a_disconnected_source_is_forgotten(rates) -> None:
    rates.on_quote(rate_quote(exchange="coinbase", recv_ts_ms=1_000))

    rates.forget("coinbase")

    assert rates.rate("USDT", 1_001) == 0.999


def test_the_newest_of_several_sources_wins(rates) -> None:
    rates.on_quote(rate_quote(exchange="coinbase", bid=1.0001, ask=1.0003, recv_ts_ms=1_000))
    rates.on_quote(rate_quote(exchange="kraken", symbol="USDT-USD", bid=1.0004, ask=1.0006,
                              recv_ts_ms=2_000))

    assert rates.rate("USDT", 2_001) == pytest.approx(1.0005)
    rates.forget("kraken")
    assert rates.rate("USDT", 2_002) == pytest.approx(1.0002)


def test_usdc_market(rates) -> None:
    rates.on_quote(rate_quote(exchange="kraken", symbol="USDC-USD", bid=0.9998, ask=1.0,
                              recv_ts_ms=5))

    assert rates.table(6) == {"USDT": 0.999, "USDC": pytest.approx(0.9999)}


def test_other_symbols_are_not_rates(rates) -> None:
    assert rates.on_quote(rate_quote(symbol="BTC-USD", bid=60_000.0, ask=60_001.0)) is False
    assert rates.table(1) == {"USDT": 0.999, "USDC": 1.0}


def test_a_mid_outside_the_band_is_a_bad_rate(rates) -> None:
    with pytest.raises(RecordError) as err:
        rates.on_quote(rate_quote(bid=2.5, ask=2.51))  # a mis-mapped market

    assert err.value.reason == "bad_fx_rate"
    assert rates.rate("USDT", 2_000) == 0.999


def test_switches_are_logged(rates) -> None:
    with structlog.testing.capture_logs() as logs:
        rates.on_quote(rate_quote(recv_ts_ms=1_000))
        rates.table(1_001)
        rates.table(20_000)

    assert [e["event"] for e in logs] == ["fx_rate_live", "fx_rate_fallback"]
    assert logs[0]["source"] == "coinbase" and logs[1]["was"] == "coinbase"


HOUR_MS = 3_600_000


def test_a_clock_step_forward_keeps_a_rate_its_true_age(rates) -> None:
    rates.on_quote(rate_quote(exchange="coinbase", recv_ts_ms=1_000))
    rates.rate("USDT", 1_500)  # caches the table until 11_000

    rates.shift("coinbase", HOUR_MS)

    assert rates.rate("USDT", 1_500 + HOUR_MS) == pytest.approx(1.0002)
    assert rates.source("USDT", 10_999 + HOUR_MS) == "coinbase"
    assert rates.rate("USDT", 11_000 + HOUR_MS) == 0.999


def test_a_clock_step_back_does_not_keep_a_quiet_rate_live(rates) -> None:
    rates.on_quote(rate_quote(exchange="coinbase", recv_ts_ms=HOUR_MS + 1_000))
    assert rates.source("USDT", HOUR_MS + 1_500) == "coinbase"  # cached until HOUR + 11_000

    rates.shift("coinbase", -HOUR_MS)

    assert rates.source("USDT", 10_999) == "coinbase"
    assert rates.rate("USDT", 11_000) == 0.999  # not live for another hour


def test_a_step_moves_only_the_venue_that_saw_it(rates) -> None:
    rates.on_quote(rate_quote(exchange="coinbase", bid=1.0001, ask=1.0003, recv_ts_ms=1_000))
    rates.on_quote(rate_quote(exchange="kraken", bid=1.0004, ask=1.0006, recv_ts_ms=2_000))

    rates.shift("coinbase", HOUR_MS)  # coinbase's rate is now the newer one

    assert rates.source("USDT", 3_000 + HOUR_MS) == "coinbase"
    assert rates.rate("USDT", 3_000 + HOUR_MS) == pytest.approx(1.0002)
    rates.shift("kraken", HOUR_MS)
    assert rates.source("USDT", 3_000 + HOUR_MS) == "kraken"
    rates.shift("bitstamp", HOUR_MS)  # a venue with no rate: nothing moves
    assert rates.rate("USDT", 11_999 + HOUR_MS) == pytest.approx(1.0005)
