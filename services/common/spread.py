"""Spread arithmetic for one ordered venue pair: the pure core the Flink SQL mirrors.

Buy at venue X's ask, sell at venue Y's bid. Every operation is written in the same order as in
``flink/sql/view_pair_spreads.sql`` so both give the same IEEE-754 doubles.
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


def pair_spread(
    symbol: str,
    window_start_ms: int,
    window_end_ms: int,
    buy: WindowQuote,
    sell: WindowQuote,
    settings: DetectionSettings,
) -> Spread:
    """Spread of buying at ``buy.ask`` and selling at ``sell.bid``, net of both taker fees."""
    spread_usd = sell.bid - buy.ask
    spread_bps = (sell.bid - buy.ask) / buy.ask * BPS
    net_spread_bps = spread_bps - settings.fee_bps(buy.exchange) - settings.fee_bps(sell.exchange)
    max_size = _min_size(buy.ask_size, sell.bid_size)
    est_profit_usd = None if max_size is None else net_spread_bps / BPS * buy.ask * max_size
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
        spread_usd=spread_usd,
        spread_bps=spread_bps,
        net_spread_bps=net_spread_bps,
        max_size=max_size,
        est_profit_usd=est_profit_usd,
        quote_age_ms=window_end_ms - min(buy.recv_ts_ms, sell.recv_ts_ms),
        newest_recv_ts_ms=max(buy.recv_ts_ms, sell.recv_ts_ms),
    )


def is_alert(spread: Spread, settings: DetectionSettings) -> bool:
    """DESIGN's alert rule: big enough in $, net of fees if asked, and not a bad quote."""
    if spread.spread_usd < settings.min_spread_usd:
        return False
    if spread.spread_bps >= settings.max_spread_bps:
        return False
    return settings.min_net_bps is None or spread.net_spread_bps >= settings.min_net_bps


def is_bad_quote(spread: Spread, settings: DetectionSettings) -> bool:
    """A spread this wide is a broken quote, not an opportunity: counted, never alerted."""
    return spread.spread_bps >= settings.max_spread_bps
