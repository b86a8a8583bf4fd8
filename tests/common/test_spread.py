"""The executable size of a pair from the two depth ladders, checked by hand-computed numbers."""

from __future__ import annotations

import pytest

from services.common.config import DetectionSettings
from services.common.messages import DepthLevel, Ladder
from services.common.spread import Executable, WindowQuote, executable, ladder_matches, pair_spread

#: Fees 60 + 10 bps; the rule: >= $50 gross and >= 0 bps net; 500 bps is a bad quote.
SETTINGS = DetectionSettings.from_env({
    "ARB_TAKER_FEE_BPS": "coinbase=60,binance=10", "ARB_MIN_SPREAD_USD": "50",
    "ARB_MIN_NET_BPS": "0", "ARB_MAX_SPREAD_BPS": "500",
    "ARB_DEPTH_NOTIONALS_USD": "1000,10000,100000",
})
BUY_FEE_BPS, SELL_FEE_BPS = 60.0, 10.0


def ladder(*prices: tuple[float | None, float | None],
           notionals: tuple[float, ...] = (1000.0, 10000.0, 100000.0)) -> Ladder:
    """(bid_px, ask_px) per size."""
    return tuple(DepthLevel(n, bid, ask) for n, (bid, ask) in zip(notionals, prices, strict=True))


#: The buy venue's asks get dearer with size, the sell venue's bids cheaper.
BUY = ladder((None, 60010.0), (None, 60050.0), (None, 60400.0))
SELL = ladder((60600.0, None), (60500.0, None), (60300.0, None))


def test_the_largest_size_that_passes() -> None:
    # $100k: 60,300 - 60,400 < 0, fails. $10k: $450 gross, 450 / 60,050 = 74.94 bps - 70 bps
    # of fees = 4.94 bps net: passes; the profit is that share of $10k.
    found = executable(BUY, BUY_FEE_BPS, SELL, SELL_FEE_BPS, SETTINGS)
    net_bps = 450 / 60050 * 10000 - 70
    assert found is not None
    assert found.usd == 10000.0
    assert found.size == pytest.approx(10000 / 60050, rel=1e-15)
    assert found.profit_usd == pytest.approx(net_bps / 10000 * 10000, rel=1e-12)
    assert found.profit_usd == pytest.approx(4.937552, abs=1e-6)


def test_a_higher_net_threshold_stops_at_the_first_size() -> None:
    strict = SETTINGS.model_copy(update={"min_net_bps": 5.0})
    # $10k nets 4.94 bps < 5; $1k: $590 gross, 590 / 60,010 = 98.32 bps, 28.32 net.
    found = executable(BUY, BUY_FEE_BPS, SELL, SELL_FEE_BPS, strict)
    assert found == Executable(1000.0, 1000 / 60010,
                               (590 / 60010 * 10000 - 70) / 10000 * 60010 * (1000 / 60010))
    assert found.profit_usd == pytest.approx(2.8317, abs=1e-4)


def test_a_side_too_thin_at_a_size_is_skipped_not_fatal() -> None:
    thin = ladder((60600.0, None), (None, None), (None, None))  # only $1k of bids
    found = executable(BUY, BUY_FEE_BPS, thin, SELL_FEE_BPS, SETTINGS)
    assert found is not None and found.usd == 1000.0


def test_nothing_passes_or_no_depth_is_none() -> None:
    flat = ladder((60000.0, None), (59990.0, None), (59900.0, None))
    assert executable(BUY, BUY_FEE_BPS, flat, SELL_FEE_BPS, SETTINGS) is None
    assert executable(None, BUY_FEE_BPS, SELL, SELL_FEE_BPS, SETTINGS) is None
    assert executable(BUY, BUY_FEE_BPS, None, SELL_FEE_BPS, SETTINGS) is None
    none = SETTINGS.model_copy(update={"depth_notionals_usd": ()})
    assert executable(BUY, BUY_FEE_BPS, SELL, SELL_FEE_BPS, none) is None


def test_a_bad_quote_size_does_not_count() -> None:
    # $1k: 66,100 over 60,010 is 1015 bps, the bad-quote guard; $10k passes as before.
    wild = ladder((66100.0, None), (60500.0, None), (60300.0, None))
    found = executable(BUY, BUY_FEE_BPS, wild, SELL_FEE_BPS, SETTINGS)
    assert found is not None and found.usd == 10000.0


def test_a_ladder_of_other_sizes_counts_as_no_depth() -> None:
    other = ladder((60600.0, None), (60500.0, None), (60300.0, None),
                   notionals=(1000.0, 5000.0, 100000.0))
    short = SELL[:2]
    assert not ladder_matches(other, SETTINGS.depth_notionals_usd)
    assert not ladder_matches(short, SETTINGS.depth_notionals_usd)
    assert ladder_matches(SELL, SETTINGS.depth_notionals_usd)
    assert executable(BUY, BUY_FEE_BPS, other, SELL_FEE_BPS, SETTINGS) is None
    assert executable(BUY, BUY_FEE_BPS, short, SELL_FEE_BPS, SETTINGS) is None


def test_a_window_spread_carries_the_executable_fields() -> None:
    buy = WindowQuote("coinbase", 59999.0, 1.0, 60001.0, 0.01, 5, BUY)
    sell = WindowQuote("binance", 60700.0, 0.02, 60702.0, 1.0, 7, SELL)
    spread = pair_spread("BTC-USD", 0, 1000, buy, sell, SETTINGS)
    assert (spread.executable_usd, spread.executable_size) == (10000.0, 10000 / 60050)
    assert spread.executable_profit_usd == pytest.approx(4.937552, abs=1e-6)
    bare = pair_spread("BTC-USD", 0, 1000, WindowQuote("coinbase", 59999.0, 1.0, 60001.0, 0.01,
                                                       5), sell, SETTINGS)
    assert (bare.executable_usd, bare.executable_size, bare.executable_profit_usd) == (
        None, None, None)
    assert bare.est_profit_usd == spread.est_profit_usd  # top of book unchanged by depth
