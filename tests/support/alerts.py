"""Factories for alert and price records, with numbers consistent with DESIGN.md's formulas."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from services.common.messages import Quote, Spread, spread_id, to_json

#: A fixed window end (2024-06-01 12:00:01 UTC) so expected texts can be written down.
WINDOW_END_MS = 1_717_243_201_000


def make_spread(
    *,
    symbol: str = "BTC-USD",
    window_end_ms: int = WINDOW_END_MS,
    buy_exchange: str = "coinbase",
    sell_exchange: str = "binance",
    buy_ask: float = 67_000.00,
    sell_bid: float = 67_080.50,
    buy_size: float | None = 0.40,
    sell_size: float | None = 0.25,
    fees_bps: float = 70.0,
    window_ms: int = 1000,
    quote_age_ms: int = 350,
    **overrides: Any,
) -> Spread:
    """One alert for an ordered venue pair, derived like the detector derives it."""
    spread_usd = sell_bid - buy_ask
    spread_bps = spread_usd / buy_ask * 1e4
    net_spread_bps = spread_bps - fees_bps
    sizes = [s for s in (buy_size, sell_size) if s is not None]
    max_size = min(sizes) if len(sizes) == 2 else None
    est_profit_usd = None if max_size is None else net_spread_bps / 1e4 * buy_ask * max_size
    spread = Spread(
        id=spread_id(symbol, window_end_ms, buy_exchange, sell_exchange),
        symbol=symbol,
        window_start_ms=window_end_ms - window_ms,
        window_end_ms=window_end_ms,
        buy_exchange=buy_exchange,
        buy_ask=buy_ask,
        buy_size=buy_size,
        sell_exchange=sell_exchange,
        sell_bid=sell_bid,
        sell_size=sell_size,
        spread_usd=spread_usd,
        spread_bps=spread_bps,
        net_spread_bps=net_spread_bps,
        max_size=max_size,
        est_profit_usd=est_profit_usd,
        quote_age_ms=quote_age_ms,
        newest_recv_ts_ms=window_end_ms - quote_age_ms,
        detected_ts_ms=window_end_ms + 250,
    )
    return replace(spread, **overrides) if overrides else spread


def alert_json(spread: Spread) -> bytes:
    return to_json(spread)


def make_quote(
    *,
    exchange: str = "coinbase",
    symbol: str = "BTC-USD",
    ts_ms: int = WINDOW_END_MS,
    bid: float = 67_000.0,
    ask: float = 67_000.5,
    refresh: bool = False,
) -> Quote:
    """One ``crypto-prices`` quote in USD, received at ``ts_ms``."""
    return Quote(
        exchange=exchange, symbol=symbol, venue_symbol=symbol.replace("-", ""), bid=bid,
        bid_size=1.0, ask=ask, ask_size=1.0, quote_ccy="USD", fx_to_usd=1.0, ts_ms=ts_ms,
        recv_ts_ms=ts_ms, exchange_ts_ms=None, refresh=refresh,
    )
