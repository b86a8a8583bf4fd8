"""One side-by-side price ladder of a venue's order book, bounded to ``max_levels`` per side.

Prices and sizes are floats in the venue's quote currency and base asset. Each side is a dict
(price -> size) for the size lookups plus a sorted list of keys for the order: bids are kept as
negated prices so that both lists run best first and ``bisect`` works on plain floats (faster
than ``bisect(key=...)`` or a tree for a hundred levels).

When a side would grow past ``max_levels`` the worst level is dropped, and a new level worse
than the worst kept one of a full side is ignored. Every kept level therefore carries the
venue's current size (updates are absolute), but a level once dropped is unknown until the venue
sends it again.

The trusted edge (``trusted_edge=True``, for venues whose diffs cover the whole book: Binance,
Coinbase): once a level is dropped or ignored, a later level at or beyond it could sit behind
a hole (the dropped one, still on the venue), so each side keeps the nearest price ever
dropped or ignored since the last snapshot and ignores updates at or beyond it; a snapshot the
venue cut short (``complete=False``) puts the edge just past its last level. Every kept level
is then exact and contiguous from the top, and a ladder that needs more stops at the edge
(None: too thin, never wrong). Venues that only report changes inside the window they were
subscribed at (Kraken, OKX, Bybit) keep that whole window, re-send the levels that move into
it, and use ``trusted_edge=False``.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterable

Level = tuple[float, float]


class OrderBook:
    """Bids and asks of one (venue, market), best first, at most ``max_levels`` per side."""

    __slots__ = ("_ask_edge", "_ask_keys", "_asks", "_bid_edge", "_bid_keys", "_bids",
                 "max_levels", "trusted_edge")

    def __init__(self, max_levels: int, trusted_edge: bool = False) -> None:
        if max_levels < 1:
            raise ValueError(f"max_levels must be >= 1, got {max_levels}")
        self.max_levels = max_levels
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        #: -price of every bid, ascending (so the best bid first)
        self._bid_keys: list[float] = []
        #: price of every ask, ascending
        self._ask_keys: list[float] = []
        self.trusted_edge = trusted_edge
        #: bids at or below this price are unknown (-inf: none); asks at or above ``_ask_edge``
        self._bid_edge = -math.inf
        self._ask_edge = math.inf

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._bid_keys.clear()
        self._ask_keys.clear()
        self._bid_edge = -math.inf
        self._ask_edge = math.inf

    def load(self, bids: Iterable[Level], asks: Iterable[Level], complete: bool = True) -> None:
        """Replace everything with a snapshot; zero sizes are skipped, the best levels kept.
        ``complete=False``: the venue cut the snapshot short (a REST depth limit), so with a
        trusted edge nothing beyond its last level is known."""
        n = self.max_levels
        # a price given twice keeps its last size, as an update would
        bid_sizes = {p: s for p, s in dict(bids).items() if s > 0.0}
        ask_sizes = {p: s for p, s in dict(asks).items() if s > 0.0}
        bid_keys = sorted(-p for p in bid_sizes)
        ask_keys = sorted(ask_sizes)
        for p in bid_keys[n:]:
            del bid_sizes[-p]
        for p in ask_keys[n:]:
            del ask_sizes[p]
        self._bids = bid_sizes
        self._asks = ask_sizes
        self._bid_edge = -math.inf
        self._ask_edge = math.inf
        if self.trusted_edge:
            if len(bid_keys) > n:
                self._bid_edge = -bid_keys[n]
            elif not complete and bid_keys:
                self._bid_edge = math.nextafter(-bid_keys[-1], -math.inf)
            if len(ask_keys) > n:
                self._ask_edge = ask_keys[n]
            elif not complete and ask_keys:
                self._ask_edge = math.nextafter(ask_keys[-1], math.inf)
        self._bid_keys = bid_keys[:n]
        self._ask_keys = ask_keys[:n]

    def set_bid(self, price: float, size: float) -> bool:
        """Absolute size at a bid price (0 removes it); True when the kept book changed."""
        sizes = self._bids
        keys = self._bid_keys
        if size <= 0.0:
            if sizes.pop(price, None) is None:
                return False
            del keys[bisect_left(keys, -price)]
            return True
        if price in sizes:
            if sizes[price] == size:
                return False
            sizes[price] = size
            return True
        if price <= self._bid_edge:
            return False  # beyond the trusted edge: it may sit behind a dropped level
        key = -price
        if len(keys) >= self.max_levels:
            if key >= keys[-1]:
                if self.trusted_edge:
                    self._bid_edge = price
                return False  # no better than the worst kept bid of a full side
            dropped = -keys.pop()
            del sizes[dropped]
            if self.trusted_edge:
                self._bid_edge = dropped
        insort(keys, key)
        sizes[price] = size
        return True

    def set_ask(self, price: float, size: float) -> bool:
        """Absolute size at an ask price (0 removes it); True when the kept book changed."""
        sizes = self._asks
        keys = self._ask_keys
        if size <= 0.0:
            if sizes.pop(price, None) is None:
                return False
            del keys[bisect_left(keys, price)]
            return True
        if price in sizes:
            if sizes[price] == size:
                return False
            sizes[price] = size
            return True
        if price >= self._ask_edge:
            return False
        if len(keys) >= self.max_levels:
            if price >= keys[-1]:
                if self.trusted_edge:
                    self._ask_edge = price
                return False
            dropped = keys.pop()
            del sizes[dropped]
            if self.trusted_edge:
                self._ask_edge = dropped
        insort(keys, price)
        sizes[price] = size
        return True

    def best_bid(self) -> Level | None:
        keys = self._bid_keys
        if not keys:
            return None
        price = -keys[0]
        return price, self._bids[price]

    def best_ask(self) -> Level | None:
        keys = self._ask_keys
        if not keys:
            return None
        price = keys[0]
        return price, self._asks[price]

    def worst_bid(self) -> Level | None:
        keys = self._bid_keys
        if not keys:
            return None
        price = -keys[-1]
        return price, self._bids[price]

    def worst_ask(self) -> Level | None:
        keys = self._ask_keys
        if not keys:
            return None
        price = keys[-1]
        return price, self._asks[price]

    def has_bid(self, price: float) -> bool:
        """Is this bid price kept (O(1))."""
        return price in self._bids

    def has_ask(self, price: float) -> bool:
        return price in self._asks

    def edges(self) -> tuple[float, float]:
        """(bid edge, ask edge): prices at or beyond them are unknown (-inf / inf: none)."""
        return self._bid_edge, self._ask_edge

    def bids(self, n: int | None = None) -> list[Level]:
        """The best ``n`` bids (all when None), best (highest) first."""
        sizes = self._bids
        keys = self._bid_keys if n is None else self._bid_keys[:n]
        return [(-k, sizes[-k]) for k in keys]

    def asks(self, n: int | None = None) -> list[Level]:
        """The best ``n`` asks (all when None), best (lowest) first."""
        sizes = self._asks
        keys = self._ask_keys if n is None else self._ask_keys[:n]
        return [(k, sizes[k]) for k in keys]

    def sides(self) -> tuple[list[float], dict[float, float], list[float], dict[float, float]]:
        """The live internals, for a walk that stops early (the ladder): bid keys (negated
        prices, best first), bid sizes, ask keys (best first), ask sizes. Read only."""
        return self._bid_keys, self._bids, self._ask_keys, self._asks

    def crossed(self) -> bool:
        """Best bid >= best ask: impossible on a venue, so the book is wrong."""
        return bool(self._bid_keys and self._ask_keys
                    and -self._bid_keys[0] >= self._ask_keys[0])

    def depth(self) -> tuple[int, int]:
        """(bid levels, ask levels) kept."""
        return len(self._bid_keys), len(self._ask_keys)

    def __repr__(self) -> str:
        return (f"OrderBook(max_levels={self.max_levels}, best_bid={self.best_bid()}, "
                f"best_ask={self.best_ask()}, depth={self.depth()})")
