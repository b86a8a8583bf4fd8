"""Depth ladder: the volume-weighted price, in USD, of buying and selling a given USD notional.

For each notional the asks are walked best first (a buy), and the bids (a sell), taking whole
levels while their quote notional stays under the target and the last one partly; the VWAP is
the notional over the base quantity it took. Where the kept book holds less than the notional
the price is None: a thin book gives no number rather than a wrong one.

Cost: a side is walked only as deep as the largest notional needs, in C (``accumulate`` over
``map``), and not at all while the changes since its last walk stayed beyond the levels that
walk used (the side's ``dirty`` key) and cannot have filled a notional it could not
(``grown``): the result is then the cached one.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate, islice, takewhile
from operator import mul, neg
from typing import Any, NamedTuple

from services.common.exceptions import RecordError
from services.common.messages import DepthLevel, Ladder
from services.producer.books.book import BookSide, OrderBook

_INF = float("inf")
#: a side whose walk ran out stays too thin while (its notional + what was added since) is
#: below the target by this much (float sums drift far less over any realistic run)
_THIN_MARGIN = 1e-6


class _Memo(NamedTuple):
    """A side's last walk: valid while nothing changed at or before ``limit_key`` and the
    notional added cannot fill a target it ran out on; else its sums before the first
    changed level are kept and the walk goes on from there."""

    notionals_usd: tuple[float, ...]
    fx_to_usd: float
    prices: list[float | None]
    limit_key: float       # key of the deepest level a filled target used (-inf: none)
    unfilled_quote: float  # smallest target (quote units) it ran out on (inf: none)
    total_quote: float     # the side's whole notional when it ran out (quote units)
    sums: list[float]      # running quote notional of the levels walked (bids: negative)
    quantities: list[float]  # running base quantity of the same levels


def ladder(book: OrderBook, notionals_usd: Sequence[float],
           fx_to_usd: float) -> Ladder:
    """One :class:`~services.common.messages.DepthLevel` (the record's own) per notional, in
    the order given (the contract's order is increasing)."""
    if not notionals_usd:
        return ()
    if not 0.0 < fx_to_usd < _INF:
        raise RecordError("bad_fx", f"fx_to_usd={fx_to_usd!r}")
    notionals = notionals_usd if notionals_usd.__class__ is tuple else tuple(notionals_usd)
    bid_px = _side_prices(book.bid_side, True, notionals, fx_to_usd)
    ask_px = _side_prices(book.ask_side, False, notionals, fx_to_usd)
    return tuple(map(DepthLevel, notionals, bid_px, ask_px))


def _side_prices(side: BookSide, is_bid: bool, notionals: tuple[float, ...],
                 fx: float) -> list[float | None]:
    """One side's VWAPs: the cached ones when the changes since cannot alter them."""
    memo: Any = side.memo
    if memo is not None and memo.fx_to_usd == fx and memo.notionals_usd == notionals:
        if (side.dirty > memo.limit_key and (memo.total_quote + side.grown)
                * (1.0 + _THIN_MARGIN) < memo.unfilled_quote):
            return memo.prices
        # levels before the first changed one are as walked: their sums hold
        reuse = min(bisect_left(side.keys, side.dirty), len(memo.sums))
        memo = _walk(side, is_bid, notionals, fx, memo.sums, memo.quantities, reuse)
    else:
        if not all(0.0 < n < _INF for n in notionals):
            raise ValueError(f"notionals must be finite and > 0, got {notionals!r}")
        memo = _walk(side, is_bid, notionals, fx, [], [], 0)
    side.memo = memo
    side.dirty = _INF
    side.grown = 0.0
    return memo.prices


def _walk(side: BookSide, is_bid: bool, notionals: tuple[float, ...], fx: float,
          old_sums: list[float], old_quantities: list[float], reuse: int) -> _Memo:
    """VWAP in USD for each notional, one walk over one side down to the largest target,
    the first ``reuse`` levels' running sums taken from the last walk.

    Keys are prices (asks) or negated prices (bids): ``key * size`` is the level's quote
    notional with the key's sign, summed in C until it reaches the largest target.
    """
    keys, sizes = side.keys, side.sizes
    n_keys = len(keys)
    targets = [n / fx for n in notionals]  # in quote currency
    top = max(targets)
    if n_keys and not reuse:
        key = keys[0]
        price = -key if is_bid else key
        level = price * sizes[key]
        if level >= top:  # the common case: the best level fills them all
            return _Memo(notionals, fx, [price * fx] * len(notionals), key, _INF, 0.0, [], [])
        if n_keys == 1:  # a top-of-book-only side: what it fills, at its price
            short = [t for t in targets if t > level]
            return _Memo(notionals, fx, [None if t > level else price * fx for t in targets],
                         key if len(short) < len(targets) else -_INF, min(short), level,
                         [], [])
    sums = old_sums[:reuse]
    quantities = old_quantities[:reuse]
    base_sum = sums[-1] if reuse else 0.0
    base_qty = quantities[-1] if reuse else 0.0
    rest = islice(keys, reuse, None)
    more = islice(accumulate(map(mul, rest, map(sizes.__getitem__, islice(keys, reuse, None))),
                             initial=base_sum), 1, None)
    # while under the largest target (bids: negative sums, falling)
    sums += takewhile((-top).__lt__ if is_bid else top.__gt__, more)
    walked = len(sums)
    quantities += islice(accumulate(map(sizes.__getitem__, islice(keys, reuse, walked)),
                                    initial=base_qty), 1, None)
    prices: list[float | None] = []
    limit_key = -_INF
    unfilled = _INF
    for target_usd, target in zip(notionals, targets, strict=True):
        # whole levels strictly under the target
        j = bisect_left(sums, target, key=neg) if is_bid else bisect_left(sums, target)
        if j == n_keys:
            prices.append(None)  # the kept side holds less
            unfilled = min(unfilled, target)
            continue
        key = keys[j]
        price = -key if is_bid else key
        if j == 0:
            # inside the first level the price is exactly that level's (no rounding)
            prices.append(price * fx)
        else:
            filled = -sums[j - 1] if is_bid else sums[j - 1]
            prices.append(target_usd / (quantities[j - 1] + (target - filled) / price))
        limit_key = max(limit_key, key)
    total = abs(sums[-1]) if walked == n_keys and sums else 0.0
    return _Memo(notionals, fx, prices, limit_key, unfilled, total, sums, quantities)
