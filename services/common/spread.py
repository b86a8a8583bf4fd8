"""Spread arithmetic for one ordered venue pair: the pure core the Flink SQL mirrors.

Buy at venue X's ask, sell at venue Y's bid. :func:`pair_numbers` is the one definition, used by
the window path, the tick path and the Python reference; ``flink.detection.pair_arithmetic``
writes the same operations in the same order as SQL, so both give the same IEEE-754 doubles.
:func:`executable` applies the same arithmetic and rule to the depth ladders, size by size
(``flink.detection.executable_columns`` is its SQL).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import DetectionSettings
from services.common.messages import Ladder, Spread, spread_id

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
    depth: Ladder | None = None


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


@dataclass(frozen=True, slots=True)
class Executable:
    """The largest ladder size at which a pair still passes the alert rule, and what it earns."""

    #: The ladder notional N (USD).
    usd: float
    #: N / the buy venue's VWAP ask at N, in the base asset.
    size: float
    #: Profit at that size, net of both taker fees.
    profit_usd: float


def ladder_matches(depth: Ladder | None, notionals_usd: tuple[float, ...]) -> bool:
    """Whether a ladder has exactly the configured sizes, in order: any other (another
    producer's configuration, a truncated ladder) counts as no depth."""
    return (depth is not None and len(depth) == len(notionals_usd) and len(depth) > 0
            and all(level.notional_usd == n for level, n in zip(depth, notionals_usd,
                                                                   strict=True)))


def executable(buy_depth: Ladder | None, buy_fee_bps: float, sell_depth: Ladder | None,
               sell_fee_bps: float, settings: DetectionSettings) -> Executable | None:
    """The largest configured size N (scanned largest first) at which buying N worth at the buy
    venue's VWAP ask and selling it at the sell venue's VWAP bid passes :func:`passes_rule`,
    with :func:`pair_numbers` at size q = N / ask_px on both sides; None when no size passes,
    a side has no price at the sizes that would, or either ladder is not the configured one."""
    notionals = settings.depth_notionals_usd
    if (buy_depth is None or sell_depth is None or not ladder_matches(buy_depth, notionals)
            or not ladder_matches(sell_depth, notionals)):
        return None
    for i in range(len(notionals) - 1, -1, -1):
        ask_px, bid_px = buy_depth[i].ask_px, sell_depth[i].bid_px
        if ask_px is None or bid_px is None:
            continue
        size = notionals[i] / ask_px
        n = pair_numbers(ask_px, size, buy_fee_bps, bid_px, size, sell_fee_bps)
        # est_profit_usd is set: both sizes are
        if (n.est_profit_usd is not None
                and passes_rule(n.spread_usd, n.spread_bps, n.net_spread_bps, settings)):
            return Executable(notionals[i], size, n.est_profit_usd)
    return None


def pair_spread(
    symbol: str,
    window_start_ms: int,
    window_end_ms: int,
    buy: WindowQuote,
    sell: WindowQuote,
    settings: DetectionSettings,
) -> Spread:
    """Spread of buying at ``buy.ask`` and selling at ``sell.bid``, net of both taker fees."""
    buy_fee_bps, sell_fee_bps = settings.fee_bps(buy.exchange), settings.fee_bps(sell.exchange)
    n = pair_numbers(buy.ask, buy.ask_size, buy_fee_bps, sell.bid, sell.bid_size, sell_fee_bps)
    x = executable(buy.depth, buy_fee_bps, sell.depth, sell_fee_bps, settings)
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
        executable_usd=None if x is None else x.usd,
        executable_size=None if x is None else x.size,
        executable_profit_usd=None if x is None else x.profit_usd,
    )


def is_alert(spread: Spread, settings: DetectionSettings) -> bool:
    """Whether a window's spread is an alert (see :func:`passes_rule`)."""
    return passes_rule(spread.spread_usd, spread.spread_bps, spread.net_spread_bps, settings)

