"""The plain-Python reference on tiny inputs, checked by hand-computed numbers."""

from __future__ import annotations

import pytest

from services.common.config import DetectionSettings, ProducerSettings
from services.common.messages import to_json
from services.common.reference import detect
from services.producer.replay import build_replay
from tests.flink.scenarios import T0, quote, trade

SETTINGS = DetectionSettings.from_env({"ARB_TAKER_FEE_BPS": "coinbase=60,binance=10"})


def test_one_window_two_venues_both_directions() -> None:
    found = detect([
        quote("coinbase", "BTC-USD", 60000, 60001, 100, recv_ms=90),
        quote("binance", "BTC-USD", 60100, 60101, 400),
        quote("coinbase", "BTC-USD", 60000, 60000.5, 5000),  # moves the watermark on
    ], SETTINGS)
    by_id = {s.id: s for s in found.spreads}
    buy_cb = by_id[f"BTC-USD|{T0 + 1000}|coinbase|binance"]
    assert buy_cb.spread_usd == 60100 - 60001
    assert buy_cb.spread_bps == pytest.approx(99 / 60001 * 1e4)
    assert buy_cb.net_spread_bps == pytest.approx(99 / 60001 * 1e4 - 70)
    assert buy_cb.max_size == 1.5  # min(ask size 2.0 at coinbase, bid size 1.5 at binance)
    assert buy_cb.est_profit_usd == pytest.approx(buy_cb.net_spread_bps / 1e4 * 60001 * 1.5)
    assert buy_cb.quote_age_ms == 1000 - 90
    assert buy_cb.newest_recv_ts_ms == T0 + 400
    assert by_id[f"BTC-USD|{T0 + 1000}|binance|coinbase"].spread_usd == 60000 - 60101
    assert [a.id for a in found.alerts] == [buy_cb.id]


def test_last_quote_by_event_time_and_late_records() -> None:
    found = detect([
        quote("coinbase", "BTC-USD", 60000, 60001, 500),
        quote("coinbase", "BTC-USD", 59000, 59001, 450),  # earlier event time: not the last
        quote("binance", "BTC-USD", 60100, 60101, 600),
        quote("binance", "BTC-USD", 60500, 60501, 1250),  # watermark 1050: window 0 fired
        quote("coinbase", "BTC-USD", 1, 2, 900),  # late for window 0: dropped
    ], SETTINGS)
    w0 = [s for s in found.spreads if s.window_end_ms == T0 + 1000]
    assert {s.buy_ask for s in w0 if s.buy_exchange == "coinbase"} == {60001}
    assert found.late_records == 1


def test_seed_mode_averages_trades() -> None:
    seed = DetectionSettings.from_env({"ARB_MODE": "seed"})
    found = detect([
        trade("coinbase", "BTC-USD", 60000, 100), trade("coinbase", "BTC-USD", 60100, 200),
        trade("binance", "BTC-USD", 60200, 300),
    ], seed)
    pair = next(s for s in found.spreads if s.buy_exchange == "coinbase")
    assert pair.buy_ask == 60050 and pair.sell_bid == 60200
    assert pair.spread_usd == 150 and pair.max_size is None
    assert [a.id for a in found.alerts] == [pair.id]


@pytest.mark.parametrize("window_ms", ["250", "1000"])
def test_derived_refresh_keeps_a_quiet_venue_in_every_window(fixtures_dir, window_ms) -> None:
    """Setting only the window: the replay's quiet Coinbase recording (an update every few
    hundred ms) still pairs with Binance in every window, and no record is late."""
    env = {"ARB_WINDOW_MS": window_ms}
    settings = DetectionSettings.from_env(env)
    records = build_replay(fixtures_dir, start_ms=T0,
                           refresh_ms=ProducerSettings.from_env(env).refresh_ms)

    found = detect([to_json(r) for r in records], settings)

    paired = {s.window_end_ms for s in found.spreads}
    first = min(paired)
    # every window from the first pair to the last one the final watermark closed
    assert paired == set(range(first, max(paired) + 1, settings.window_ms))
    assert len(paired) >= 40_000 // settings.window_ms
    assert found.late_records == 0
