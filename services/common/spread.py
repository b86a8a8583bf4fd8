"""Spread arithmetic for one ordered venue pair: the pure core the Flink SQL mirrors.

Buy at venue X's ask, sell at venue Y's bid. :func:`pair_numbers` is the one definition, used by
the window path, the tick path and the Python reference; ``flink.detection.pair_arithmetic``
writes the same operations in the same order as SQL, so both give the same IEEE-754 doubles.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import DetectionSettings
from services.common.messages import Spread, spread_id

BPS = 10000


@dataclass(frozen=True, slots=True)
class WindowQuote:
    """The quote a venue contributes to one window (its last by event time)."""

    exchange: str
    bid: float
    bid_size: float | None
    ask: float
    ask_size: float | None
    recv_ts_ms: int


def _min_size(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a <= b else b


@dataclass(frozen=True, slots=True)
class PairNumbers:
    """What buying at one ask and selling at another bid yields, net of both taker fees."""

    spread_usd: float
    spread_bps: float
    net_spread_bps: float
    max_size: float | None
    est_profit_usd: float | None


def pair_numbers(buy_ask: float, buy_size: float | None, buy_fee_bps: float,
                 sell_bid: float, sell_size: float | None, sell_fee_bps: float) -> PairNumbers:
    """Gross spread ($ and bps on the ask), net of fees, size at those prices, profit at it."""
    spread_usd = sell_bid - buy_ask
    spread_bps = (sell_bid - buy_ask) / buy_ask * BPS
    net_spread_bps = spread_bps - buy_fee_bps - sell_fee_bps
    max_size = _min_size(buy_size, sell_size)
    est_profit_usd = None if max_size is None else net_spread_bps / BPS * buy_ask * max_size
    return PairNumbers(spread_usd, spread_bps, net_spread_bps, max_size, est_profit_usd)


def passes_rule(spread_usd: float, spread_bps: float, net_spread_bps: float,
                settings: DetectionSettings) -> bool:
    """DESIGN's alert rule: big enough in $, net of fees if asked, and not a bad quote."""
    if spread_usd < settings.min_spread_usd:
        return False
    if spread_bps >= settings.max_spread_bps:
        return False
    return settings.min_net_bps is None or net_spread_bps >= settings.min_net_bps


def pair_spread(
    symbol: str,
    window_start_ms: int,
    window_end_ms: int,
    buy: WindowQuote,
    sell: WindowQuote,
    settings: DetectionSettings,
) -> Spread:
    """Spread of buying at ``buy.ask`` and selling at ``sell.bid``, net of both taker fees."""
    n = pair_numbers(buy.ask, buy.ask_size, settings.fee_bps(buy.exchange),
                     sell.bid, sell.bid_size, settings.fee_bps(sell.exchange))
    return Spread(
        id=spread_id(symbol, window_end_ms, buy.exchange, sell.exchange),
        symbol=symbol,
        window_start_ms=window_start_ms,
        window_end_ms=window_end_ms,
        buy_exchange=buy.exchange,
        buy_ask=buy.ask,
        buy_size=buy.ask_size,
        sell_exchange=sell.exchange,
        sell_bid=sell.bid,
        sell_size=sell.bid_size,
        spread_usd=n.spread_usd,
        spread_bps=n.spread_bps,
        net_spread_bps=n.net_spread_bps,
        max_size=n.max_size,
        est_profit_usd=n.est_profit_usd,
        quote_age_ms=window_end_ms - min(buy.recv_ts_ms, sell.recv_ts_ms),
        newest_recv_ts_ms=max(buy.recv_ts_ms, sell.recv_ts_ms),
    )


def is_alert(spread: Spread, settings: DetectionSettings) -> bool:
    """Whether a window's spread is an alert (see :func:`passes_rule`)."""
    return passes_rule(spread.spread_usd, spread.spread_bps, spread.net_spread_bps, settings)

