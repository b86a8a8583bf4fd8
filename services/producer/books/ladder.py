"""Depth ladder: the volume-weighted price, in USD, of buying and selling a given USD notional.

For each notional the asks are walked best first (a buy), and the bids (a sell), taking whole
levels while their quote notional stays under the target and the last one partly; the VWAP is
the notional over the base quantity it took. Where the kept book holds less than the notional
the price is None: a thin book gives no number rather than a wrong one.

Cost: a side is walked only as deep as the largest notional needs, in C (``accumulate`` over
``map``), and not at all while the changes since its last walk stayed beyond the levels that
walk used (the side's ``dirty`` key) and cannot have filled a notional it could not
(``grown``): the result is then the cached one. A walk that must run again starts at the
first changed level, the running sums before it kept; and while neither side's prices moved
the ladder (the record's tuple) is the cached one too.

The quote's own top of book (``top``) comes first: a venue's ticker and its depth channel are
separate streams (Binance's ``bookTicker`` is real time, its ``depth@100ms`` a tenth of a
second behind), so the book can still hold levels the ticker already says are gone. Levels
better than the quote's best bid or ask are left out and the quote's best level, at its size,
leads the walk, so a ladder is never better than the quote it rides: a VWAP at a size the top
level holds is the quote's price, and an executable size is never priced off a level that has
already been taken. Where the book's best level is the quote's, at the same size, it is the
plain cached walk.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate, islice, takewhile
from operator import mul, neg

from services.common.exceptions import RecordError
from services.common.messages import DepthLevel, Ladder
from services.producer.books.book import BookSide, OrderBook

_INF = float("inf")
#: a side whose walk ran out stays too thin while (its notional + what was added since) is
#: below the target by this much (float sums drift far less over any realistic run)
_THIN_MARGIN = 1e-6
#: a book price within this fraction of the quote's is the quote's level (the quote's price
#: went through the fx rate and back: an ulp or two, far below any venue's tick)
_SAME_LEVEL = 1e-9

#: The quote's best bid, its size, best ask, its size, in the book's units (before fx); a
#: size None: the venue sent none.
Top = tuple[float, float | None, float, float | None]


class _Walk:
    """A side's last walk: valid while nothing changed at or before ``limit_key`` and the
    notional added cannot fill a target it ran out on; else its sums before the first
    changed level are kept and the walk goes on from there. Updated in place."""

    __slots__ = ("fx_to_usd", "limit_key", "notionals_usd", "prices", "quantities", "sums",
                 "targets", "top", "total_quote", "unfilled_quote")

    def __init__(self, notionals_usd: tuple[float, ...], fx_to_usd: float) -> None:
        if not all(0.0 < n < _INF for n in notionals_usd):
            raise ValueError(f"notionals must be finite and > 0, got {notionals_usd!r}")
        self.notionals_usd = notionals_usd
        self.fx_to_usd = fx_to_usd
        self.targets = [n / fx_to_usd for n in notionals_usd]  # in quote currency
        self.top = max(self.targets)
        self.prices: list[float | None] = []
        self.limit_key = -_INF       # key of the deepest level a filled target used
        self.unfilled_quote = _INF   # smallest target (quote units) it ran out on
        self.total_quote = 0.0       # the side's whole notional when it ran out (quote units)
        self.sums: list[float] = []  # running quote notional of the levels walked (bids: < 0)
        self.quantities: list[float] = []  # running base quantity of the same levels


def ladder(book: OrderBook, notionals_usd: Sequence[float], fx_to_usd: float,
           top: Top | None = None) -> Ladder:
    """One :class:`~services.common.messages.DepthLevel` (the record's own) per notional, in
    the order given (the contract's order is increasing); ``top``: the quote's own best levels,
    which lead the walk (see the module docstring)."""
    if not notionals_usd:
        return ()
    if not 0.0 < fx_to_usd < _INF:
        raise RecordError("bad_fx", f"fx_to_usd={fx_to_usd!r}")
    notionals = notionals_usd if notionals_usd.__class__ is tuple else tuple(notionals_usd)
    if top is None:
        bid_px = _side_prices(book.bid_side, True, notionals, fx_to_usd)
        ask_px = _side_prices(book.ask_side, False, notionals, fx_to_usd)
    else:
        bid_px = _prices_from_top(book.bid_side, True, notionals, fx_to_usd, top[0], top[1])
        ask_px = _prices_from_top(book.ask_side, False, notionals, fx_to_usd, top[2], top[3])
    last = book.memo
    if (last is not None and last[0] == bid_px and last[1] == ask_px
            and last[2] == notionals):
        return last[3]
    levels = tuple(map(DepthLevel, notionals, bid_px, ask_px))
    book.memo = (bid_px, ask_px, notionals, levels)
    return levels


def _side_prices(side: BookSide, is_bid: bool, notionals: tuple[float, ...],
                 fx: float) -> list[float | None]:
    """One side's VWAPs: the cached ones when the changes since cannot alter them."""
    walk = side.memo
    if walk is None or walk.fx_to_usd != fx or walk.notionals_usd != notionals:
        walk = side.memo = _Walk(notionals, fx)
        reuse = 0
    elif (side.dirty > walk.limit_key
          and (walk.total_quote + side.grown) * (1.0 + _THIN_MARGIN) < walk.unfilled_quote):
        return walk.prices  # dirty/grown stay: they are relative to this walk's sums
    else:
        # levels before the first changed one are as walked: their sums hold
        reuse = min(bisect_left(side.keys, side.dirty), len(walk.sums))
    _walk(side.keys, side.sizes.__getitem__, is_bid, walk, reuse)
    side.dirty = _INF
    side.grown = 0.0
    return walk.prices


def _prices_from_top(side: BookSide, is_bid: bool, notionals: tuple[float, ...], fx: float,
                     price: float, size: float | None) -> list[float | None]:
    """One side's VWAPs with the quote's best level (``price``, ``size``) first and the
    book's levels better than it left out; the cached walk where the book agrees."""
    keys = side.keys
    top_key = -price if is_bid else price
    tolerance = abs(top_key) * _SAME_LEVEL
    first = bisect_left(keys, top_key - tolerance)  # levels before it: better than the quote
    same = first < len(keys) and keys[first] <= top_key + tolerance
    if size is not None and not 0.0 < size < _INF:
        size = None
    if first == 0 and same and (size is None or side.sizes[keys[0]] == size):
        return _side_prices(side, is_bid, notionals, fx)
    walk = _Walk(notionals, fx)  # a one-off: the side's cached walk stays the book's own
    sizes = side.sizes
    if size is None:
        # no size from the venue: the book's own level there, if it has one, leads
        _walk(keys[first:], sizes.__getitem__, is_bid, walk, 0)
        return walk.prices
    top_size = size
    rest = keys[first + 1:] if same else keys[first:]

    def size_of(key: float) -> float:
        return top_size if key == top_key else sizes[key]

    _walk([top_key, *rest], size_of, is_bid, walk, 0)
    return walk.prices


def _walk(keys: list[float], size_of: Callable[[float], float], is_bid: bool, walk: _Walk,
          reuse: int) -> None:
    """VWAP in USD for each notional, one walk over one side's ``keys`` (best first) down to
    the largest target, the first ``reuse`` levels' running sums taken from the last walk.

    Keys are prices (asks) or negated prices (bids): ``key * size`` is the level's quote
    notional with the key's sign, summed in C until it reaches the largest target.
    """
    n_keys = len(keys)
    fx = walk.fx_to_usd
    top = walk.top
    if n_keys and not reuse:
        key = keys[0]
        price = -key if is_bid else key
        level = price * size_of(key)
        if level >= top:  # the common case: the best level fills them all
            walk.prices = [price * fx] * len(walk.targets)
            walk.limit_key = key
            walk.unfilled_quote = _INF
            walk.total_quote = 0.0
            walk.sums = []
            walk.quantities = []
            return
    sums = walk.sums
    quantities = walk.quantities
    if reuse < len(sums):
        del sums[reuse:]
        del quantities[reuse:]
    more: Iterator[float]
    if reuse:
        base_sum = sums[-1]
        base_qty = quantities[-1]
        more = islice(accumulate(map(mul, islice(keys, reuse, None),
                                     map(size_of, islice(keys, reuse, None))),
                                 initial=base_sum), 1, None)
    else:
        base_qty = 0.0
        more = accumulate(map(mul, keys, map(size_of, keys)))
    # while under the largest target (bids: negative sums, falling)
    sums += takewhile((-top).__lt__ if is_bid else top.__gt__, more)
    walked = len(sums)
    quantities += islice(accumulate(map(size_of, islice(keys, reuse, walked)),
                                    initial=base_qty), 1, None)
    prices: list[float | None] = []
    append = prices.append
    limit_key = -_INF
    unfilled = _INF
    for target_usd, target in zip(walk.notionals_usd, walk.targets, strict=True):
        # whole levels strictly under the target
        j = bisect_left(sums, target, key=neg) if is_bid else bisect_left(sums, target)
        if j == n_keys:
            append(None)  # the kept side holds less
            if target < unfilled:
                unfilled = target
            continue
        key = keys[j]
        if key > limit_key:
            limit_key = key
        if j == 0:
            # inside the first level the price is exactly that level's (no rounding)
            append((-key if is_bid else key) * fx)
        else:
            filled = -sums[j - 1] if is_bid else sums[j - 1]
            append(target_usd / (quantities[j - 1] + (target - filled) / (-key if is_bid
                                                                           else key)))
    walk.prices = prices
    walk.limit_key = limit_key
    walk.unfilled_quote = unfilled
    walk.total_quote = abs(sums[-1]) if walked == n_keys and sums else 0.0
