"""One side-by-side price ladder of a venue's order book, bounded to ``max_levels`` per side.

Prices and sizes are floats in the venue's quote currency and base asset. Each side is a
:class:`BookSide` in *sort-key* space: asks keyed by price, bids by the negated price, so that
both run best first as plain ascending floats (``bisect`` on a list of floats is faster than
``bisect(key=...)`` or a tree for a few hundred levels) and one piece of code serves both.

When a side would grow past ``max_levels`` the worst level is dropped, and a new level worse
than the worst kept one of a full side is ignored. Every kept level therefore carries the
venue's current size (updates are absolute), but a level once dropped is unknown until the venue
sends it again.

The trusted edge (``trusted_edge=True``, for venues whose diffs cover the whole book: Binance,
Coinbase, Bitstamp): once a level is dropped or ignored, a later level at or beyond it could sit
behind a hole (the dropped one, still on the venue), so each side keeps the nearest price ever
dropped or ignored since the last snapshot and ignores updates at or beyond it; a snapshot the
venue cut short (``complete=False``) puts the edge just past its last level. Every kept level
is then exact and contiguous from the top, and a ladder that needs more stops at the edge
(None: too thin, never wrong); :meth:`OrderBook.thin` says when a side fell so far that a fresh
snapshot is due. Venues that only report changes inside the window they were subscribed at
(Kraken, OKX, Bybit) keep that whole window, re-send the levels that move into it, and use
``trusted_edge=False``.

For the ladder (:mod:`services.producer.books.ladder`), each side also notes what changed since
the ladder last walked it: the best key changed (``dirty``) and the quote notional added
(``grown``), so a ladder is only walked again when a change reaches the levels it used.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterable
from typing import Any

from services.common.exceptions import RecordError

Level = tuple[float, float]

_INF = math.inf

#: decimal text -> float, for the texts venues repeat (the same prices update after update,
#: "0" sizes): a dict hit is several times cheaper than ``float``. Bounded: emptied when full,
#: and only short texts (a hostile megabyte of digits is parsed, never kept).
_FLOATS: dict[str, float] = {}
_FLOATS_MAX = 8192
_FLOAT_TEXT_MAX = 32


def clear_text_cache() -> None:
    """Empty the decimal-text cache (shared by every book of the process)."""
    _FLOATS.clear()


def _number(text: str) -> float:
    """``float(text)``, remembered (ValueError for text that is not a number)."""
    value = float(text)
    if len(text) <= _FLOAT_TEXT_MAX:
        if len(_FLOATS) >= _FLOATS_MAX:
            _FLOATS.clear()
        _FLOATS[text] = value
    return value


class BookSide:
    """One side: sort keys ascending (best first) and key -> size. ``edge``: keys at or beyond
    it are unknown (inf: none). ``dirty``/``grown``/``memo`` belong to the ladder: the best key
    changed and the quote notional added since it last walked this side (-inf: everything
    changed), and its cached result."""

    __slots__ = ("dirty", "edge", "grown", "keys", "memo", "sizes")

    def __init__(self) -> None:
        self.keys: list[float] = []
        self.sizes: dict[float, float] = {}
        self.edge = _INF
        self.dirty = -_INF
        self.grown = 0.0
        self.memo: Any = None

    def reset(self, keys: list[float], sizes: dict[float, float], edge: float) -> None:
        self.keys = keys
        self.sizes = sizes
        self.edge = edge
        self.dirty = -_INF  # the ladder's memo stays, for its notionals: no level is reused
        self.grown = 0.0


def _apply(side: BookSide, levels: Iterable[Level], negate: bool, max_levels: int,
           trusted: bool) -> bool:
    """Absolute sizes onto one side (0 removes); True when the kept side changed.

    The hot loop of every book: one pass, locals only, the ladder's notes kept on the way.
    """
    keys = side.keys
    sizes = side.sizes
    get = sizes.get
    edge = side.edge
    dirty = side.dirty
    grown = 0.0
    changed = False
    for price, size in levels:
        key = -price if negate else price
        old = get(key)
        if old is None:
            if size <= 0.0 or key >= edge:
                continue  # nothing to remove, or beyond the trusted edge
            if len(keys) >= max_levels:
                if key >= keys[-1]:
                    if trusted:
                        edge = key  # no better than the worst kept level of a full side
                    continue
                dropped = keys.pop()
                del sizes[dropped]
                if trusted:
                    edge = dropped
            insort(keys, key)
            sizes[key] = size
            grown += price * size
        elif size <= 0.0:
            del sizes[key]
            del keys[bisect_left(keys, key)]
        elif size != old:
            sizes[key] = size
            if size > old:
                grown += price * (size - old)
        else:
            continue
        changed = True
        if key < dirty:
            dirty = key
    if changed:
        side.dirty = dirty
        side.grown += grown
    side.edge = edge
    return changed


def _apply_raw(side: BookSide, entries: Any, negate: bool, max_levels: int, trusted: bool,
               texts: dict[float, Any] | None, max_items: int) -> bool:
    """:func:`_apply` fused with the strict reading of venue levels ``[price_text, size_text,
    ...]`` (at most ``max_items`` items): one pass, no intermediate lists. Raises
    RecordError("bad_level") at the first bad level, the ones before it applied: the caller
    drops the book. ``texts`` (when given) gets key -> the level as received, for a checksum.
    """
    if entries.__class__ is not list:
        if entries is None:
            return False
        raise RecordError("bad_level", f"levels={entries!r}"[:80])
    keys = side.keys
    sizes = side.sizes
    get = sizes.get
    edge = side.edge
    dirty = side.dirty
    grown = 0.0
    changed = False
    entry: Any = None
    cached = _FLOATS.get
    try:
        for entry in entries:
            if entry.__class__ is not list or not 2 <= len(entry) <= max_items:
                raise ValueError
            text = entry[0]
            size_text = entry[1]
            if text.__class__ is not str or size_text.__class__ is not str:
                raise ValueError
            price = cached(text)
            if price is None:
                price = _number(text)
            size = cached(size_text)
            if size is None:
                size = _number(size_text)
            if not (0.0 < price < _INF and 0.0 <= size < _INF):  # NaN fails too
                raise ValueError
            key = -price if negate else price
            if texts is not None:
                texts[key] = entry  # a removed level's text lingers: the caller prunes
            old = get(key)
            if old is None:
                if size <= 0.0 or key >= edge:
                    continue
                if len(keys) >= max_levels:
                    if key >= keys[-1]:
                        if trusted:
                            edge = key
                        continue
                    dropped = keys.pop()
                    del sizes[dropped]
                    if trusted:
                        edge = dropped
                insort(keys, key)
                sizes[key] = size
                grown += price * size
            elif size <= 0.0:
                del sizes[key]
                del keys[bisect_left(keys, key)]
            elif size != old:
                sizes[key] = size
                if size > old:
                    grown += price * (size - old)
            else:
                continue
            changed = True
            if key < dirty:
                dirty = key
    except ValueError:
        raise RecordError("bad_level", repr(entry)[:80]) from None
    finally:
        if changed:
            side.dirty = dirty
            side.grown += grown
        side.edge = edge
    return changed


class OrderBook:
    """Bids and asks of one (venue, market), best first, at most ``max_levels`` per side."""

    __slots__ = ("ask_side", "bid_side", "max_levels", "memo", "trusted_edge")

    def __init__(self, max_levels: int, trusted_edge: bool = False) -> None:
        if max_levels < 1:
            raise ValueError(f"max_levels must be >= 1, got {max_levels}")
        self.max_levels = max_levels
        self.trusted_edge = trusted_edge
        #: bids keyed by -price; read only outside this module and the ladder
        self.bid_side = BookSide()
        self.ask_side = BookSide()
        #: the ladder's last result, with the side prices it was made of
        self.memo: Any = None

    def clear(self) -> None:
        self.bid_side.reset([], {}, _INF)
        self.ask_side.reset([], {}, _INF)

    def load(self, bids: Iterable[Level], asks: Iterable[Level], complete: bool = True) -> None:
        """Replace everything with a snapshot; zero sizes are skipped, the best levels kept.
        ``complete=False``: the venue cut the snapshot short (a REST depth limit), so with a
        trusted edge nothing beyond its last level is known."""
        self._load_side(self.bid_side, {-p: s for p, s in bids}, complete)
        self._load_side(self.ask_side, dict(asks), complete)

    def _load_side(self, side: BookSide, sizes: dict[float, float], complete: bool) -> None:
        # a price given twice keeps its last size (the dict), as an update would
        n = self.max_levels
        keys = sorted(k for k, s in sizes.items() if s > 0.0)
        edge = _INF
        if self.trusted_edge:
            if len(keys) > n:
                edge = keys[n]
            elif not complete and keys:
                edge = math.nextafter(keys[-1], _INF)
        if len(keys) > n:
            del keys[n:]
        if len(keys) != len(sizes):
            sizes = {k: sizes[k] for k in keys}
        side.reset(keys, sizes, edge)

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> bool:
        """Absolute sizes onto both sides (0 removes a level); True when the kept book changed."""
        n, trusted = self.max_levels, self.trusted_edge
        changed = _apply(self.bid_side, bids, True, n, trusted)
        return _apply(self.ask_side, asks, False, n, trusted) or changed

    def apply_raw(self, bids: Any, asks: Any, bid_texts: dict[float, Any] | None = None,
                  ask_texts: dict[float, Any] | None = None,
                  max_items: int = 1 << 30) -> bool:
        """:meth:`apply` straight from the venue's levels ``[[price_text, size_text, ...],
        ...]`` (None: no levels), read as strictly as ``read_levels``. A bad level raises
        RecordError("bad_level") with the book part-changed: the caller must drop it (every
        venue does on a bad update)."""
        n, trusted = self.max_levels, self.trusted_edge
        changed = _apply_raw(self.bid_side, bids, True, n, trusted, bid_texts, max_items)
        return _apply_raw(self.ask_side, asks, False, n, trusted, ask_texts,
                          max_items) or changed

    def set_bid(self, price: float, size: float) -> bool:
        """Absolute size at a bid price (0 removes it); True when the kept book changed."""
        return _apply(self.bid_side, ((price, size),), True, self.max_levels, self.trusted_edge)

    def set_ask(self, price: float, size: float) -> bool:
        """Absolute size at an ask price (0 removes it); True when the kept book changed."""
        return _apply(self.ask_side, ((price, size),), False, self.max_levels,
                      self.trusted_edge)

    def best_bid(self) -> Level | None:
        side = self.bid_side
        if not side.keys:
            return None
        key = side.keys[0]
        return -key, side.sizes[key]

    def best_ask(self) -> Level | None:
        side = self.ask_side
        if not side.keys:
            return None
        key = side.keys[0]
        return key, side.sizes[key]

    def worst_bid(self) -> Level | None:
        side = self.bid_side
        if not side.keys:
            return None
        key = side.keys[-1]
        return -key, side.sizes[key]

    def worst_ask(self) -> Level | None:
        side = self.ask_side
        if not side.keys:
            return None
        key = side.keys[-1]
        return key, side.sizes[key]

    def has_bid(self, price: float) -> bool:
        """Is this bid price kept (O(1))."""
        return -price in self.bid_side.sizes

    def has_ask(self, price: float) -> bool:
        return price in self.ask_side.sizes

    def edges(self) -> tuple[float, float]:
        """(bid edge, ask edge): prices at or beyond them are unknown (-inf / inf: none)."""
        return -self.bid_side.edge, self.ask_side.edge

    def thin(self, levels: int) -> bool:
        """A side keeps fewer than ``levels`` levels while the venue has more beyond its
        trusted edge: a ladder may now run out where the venue's book would not, so a fresh
        snapshot is due."""
        return any(len(side.keys) < levels and side.edge < _INF
                   for side in (self.bid_side, self.ask_side))

    def bids(self, n: int | None = None) -> list[Level]:
        """The best ``n`` bids (all when None), best (highest) first."""
        side = self.bid_side
        sizes = side.sizes
        keys = side.keys if n is None else side.keys[:n]
        return [(-k, sizes[k]) for k in keys]

    def asks(self, n: int | None = None) -> list[Level]:
        """The best ``n`` asks (all when None), best (lowest) first."""
        side = self.ask_side
        sizes = side.sizes
        keys = side.keys if n is None else side.keys[:n]
        return [(k, sizes[k]) for k in keys]

    def crossed(self) -> bool:
        """Best bid >= best ask: impossible on a venue, so the book is wrong."""
        bid_keys, ask_keys = self.bid_side.keys, self.ask_side.keys
        return bool(bid_keys and ask_keys and -bid_keys[0] >= ask_keys[0])

    def depth(self) -> tuple[int, int]:
        """(bid levels, ask levels) kept."""
        return len(self.bid_side.keys), len(self.ask_side.keys)

    def __repr__(self) -> str:
        return (f"OrderBook(max_levels={self.max_levels}, best_bid={self.best_bid()}, "
                f"best_ask={self.best_ask()}, depth={self.depth()})")
