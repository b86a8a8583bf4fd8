"""Depth ladder: the volume-weighted price, in USD, of buying and selling a given USD notional.

For each notional the asks are walked best first (a buy), and the bids (a sell), adding
``price * size * fx_to_usd`` until the notional is filled, the last level partly; the VWAP is
the notional over the base quantity it took. Where the kept book holds less than the notional
the price is None: a thin book gives no number rather than a wrong one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from services.common.exceptions import RecordError
from services.producer.books.book import OrderBook

_INF = float("inf")


class DepthLevel(NamedTuple):
    """One rung: the VWAP (USD per unit of base) at which ``notional_usd`` sells / buys now."""

    notional_usd: float
    bid_px: float | None  # selling into the bids
    ask_px: float | None  # buying from the asks


def ladder(book: OrderBook, notionals_usd: Sequence[float],
           fx_to_usd: float) -> tuple[DepthLevel, ...]:
    """One DepthLevel per notional, in the order given (the contract's order is increasing)."""
    if not notionals_usd:
        return ()
    if not 0.0 < fx_to_usd < _INF:
        raise RecordError("bad_fx", f"fx_to_usd={fx_to_usd!r}")
    if not all(0.0 < n < _INF for n in notionals_usd):
        raise ValueError(f"notionals must be finite and > 0, got {notionals_usd!r}")
    bid_keys, bid_sizes, ask_keys, ask_sizes = book.sides()
    bid_px = _vwaps(bid_keys, bid_sizes, -fx_to_usd, notionals_usd)
    ask_px = _vwaps(ask_keys, ask_sizes, fx_to_usd, notionals_usd)
    return tuple(DepthLevel(n, b, a) for n, b, a in zip(notionals_usd, bid_px, ask_px,
                                                         strict=True))


def _vwaps(keys: list[float], sizes: dict[float, float], key_to_usd: float,
           notionals_usd: Sequence[float]) -> list[float | None]:
    """VWAP in USD for each notional, one walk over one side that stops once all are filled.

    ``keys`` are the side's sort keys best first and ``key * key_to_usd`` the level's USD
    price (bids are stored negated, so their factor is -fx).
    """
    sign = -1.0 if key_to_usd < 0 else 1.0
    order = sorted(range(len(notionals_usd)), key=notionals_usd.__getitem__)
    out: list[float | None] = [None] * len(notionals_usd)
    filled_usd = 0.0   # notional of the whole levels taken so far
    filled_qty = 0.0   # their base quantity
    n_keys = len(keys)
    idx = 0
    level_usd = level_qty = 0.0
    price_usd = 0.0
    for i in order:
        target = notionals_usd[i]
        # take whole levels while the next one still fits under the target
        while filled_usd + level_usd < target:
            filled_usd += level_usd
            filled_qty += level_qty
            if idx == n_keys:
                level_usd = level_qty = 0.0
                break
            key = keys[idx]
            idx += 1
            price_usd = key * key_to_usd
            level_qty = sizes[sign * key]
            level_usd = price_usd * level_qty
        else:
            # the current level fills the rest, partly; inside the first level the price is
            # exactly that level's (no rounding from notional / quantity)
            if filled_qty == 0.0:
                out[i] = price_usd
            else:
                out[i] = target / (filled_qty + (target - filled_usd) / price_usd)
            continue
        # ran out of levels: this and every larger notional stay None
        break
    return out


def ladder_json(levels: Sequence[DepthLevel]) -> list[dict[str, Any]]:
    """The quote's ``depth`` field on the wire: one object per notional."""
    return [{"notional_usd": lv.notional_usd, "bid_px": lv.bid_px, "ask_px": lv.ask_px}
            for lv in levels]
