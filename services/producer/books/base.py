"""What every venue's book sync follows, and the strict reading of a venue's price level.

A venue module in this package exposes ``depth_parts(decoded_frame)`` (which frames are depth,
for which market) and ``new_sync(venue_symbol, max_levels)`` returning a :class:`DepthSync`.
The sync owns one :class:`OrderBook` and applies the venue's ordering rules to it; it answers
every message with a :class:`BookStatus` and never raises for a message it can judge: a bad
message is rejected whole (a problem the caller counts), a book it can no longer vouch for is
emptied and marked unsynced, with ``need`` saying how to get a fresh one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import islice
from operator import gt as _gt
from operator import itemgetter
from operator import lt as _lt
from typing import Any, NamedTuple, Protocol

from services.common.exceptions import RecordError
from services.producer.books.book import Level, OrderBook

#: ``BookStatus.problem`` values (metric ``reason`` labels).
PROBLEMS = frozenset({
    "gap", "checksum", "crossed", "stale_snapshot", "out_of_order", "bad_level", "unsynced",
})
#: ``BookStatus.need`` values: fetch the venue's REST snapshot, or ask its WS for a fresh one.
NEEDS = frozenset({"snapshot", "resubscribe"})

_INF = float("inf")
_first = itemgetter(0)
_LIST_ONLY = {list}


class BookStatus(NamedTuple):
    """The outcome of one message for the book."""

    changed: bool                 # the levels changed: a new ladder may be due
    problem: str | None = None    # None or one of PROBLEMS
    need: str | None = None       # None, "snapshot" or "resubscribe"


#: Shared instances for the common answers (NamedTuples are immutable).
UNCHANGED = BookStatus(False)
CHANGED = BookStatus(True)


class DepthSync(Protocol):
    """One (venue, market): its book and the venue's rules for keeping it in order."""

    venue_symbol: str
    book: OrderBook

    @property
    def synced(self) -> bool: ...

    def on_update(self, message: Mapping[str, Any]) -> BookStatus: ...  # a WS depth message

    def on_snapshot(self, snapshot: Mapping[str, Any]) -> BookStatus: ...  # REST snapshot body

    def reset(self) -> None: ...  # connection lost: empty, unsynced


def read_level(entry: Any) -> Level:
    """``[price, size, ...]`` (decimal strings or JSON numbers) -> (price, size) as floats.

    Strict: a finite price > 0 and a finite size >= 0 (0 removes the level), else
    RecordError("bad_level"). Extra items (a venue's timestamp or flags) are ignored.
    """
    cls = entry.__class__
    if cls is not list and cls is not tuple:
        raise RecordError("bad_level", repr(entry)[:80])
    try:
        price = _number(entry[0])
        size = _number(entry[1])
    except (TypeError, IndexError, KeyError, ValueError, OverflowError):
        raise RecordError("bad_level", repr(entry)[:80]) from None
    if 0.0 < price < _INF and 0.0 <= size < _INF:  # False for NaN too
        return price, size
    raise RecordError("bad_level", repr(entry)[:80])


def read_levels(entries: Any) -> list[Level]:
    """A list of levels, all good or RecordError("bad_level") for the whole list.

    The same rules as :func:`read_level`, inlined for the common case (lists of decimal
    strings, hundreds per snapshot): anything else takes the per-level path.
    """
    if entries.__class__ is not list:
        if entries is None:
            return []
        raise RecordError("bad_level", f"levels={entries!r}"[:80])
    out: list[Level] = []
    append = out.append
    try:
        for entry in entries:
            if entry.__class__ is not list:
                break
            price = entry[0]
            size = entry[1]
            if price.__class__ is not str or size.__class__ is not str:
                break
            p = float(price)
            q = float(size)
            if 0.0 < p < _INF and 0.0 <= q < _INF:
                append((p, q))
            else:
                break
        else:
            return out
    except (IndexError, ValueError):
        pass
    return [read_level(entry) for entry in entries]  # raises for the first bad one


def read_best(entries: Any, n: int, descending: bool) -> tuple[list[Level], bool]:
    """A snapshot side the venue sends best first -> (levels up to its ``n``-th with a size,
    read strictly, and whether that was every level).

    A REST snapshot holds hundreds or thousands of levels of which a book keeps ``n``; the
    sizes past the ``n``-th are not read (a bad one there could never reach the book). Every
    price is read (in C) and must run strictly best first: a side out of order, or with any
    unreadable price, is read whole by :func:`read_levels`, so a level that would cross the
    book or a bad price is found wherever it sits.
    """
    if entries.__class__ is not list or len(entries) <= n:
        return read_levels(entries), True
    if set(map(type, entries)) != _LIST_ONLY:
        return read_levels(entries), True  # raises for the first bad level
    try:
        prices = list(map(float, map(_first, entries)))
    except (TypeError, ValueError, IndexError, KeyError):
        return read_levels(entries), True  # raises for the first bad level
    ordered = all(map(_gt if descending else _lt, prices, islice(prices, 1, None)))
    low, high = (prices[-1], prices[0]) if descending else (prices[0], prices[-1])
    if not (ordered and low > 0.0 and high < _INF):  # NaN fails the order
        return read_levels(entries), True
    out: list[Level] = []
    append = out.append
    count = 0
    for i, entry in enumerate(entries):
        size_text = entry[1] if len(entry) > 1 else None
        if size_text.__class__ is not str or entry[0].__class__ is not str:
            return read_levels(entries), True  # JSON numbers or worse: the general reader
        try:
            size = float(size_text)
        except ValueError:
            raise RecordError("bad_level", repr(entry)[:80]) from None
        if not 0.0 <= size < _INF:
            raise RecordError("bad_level", repr(entry)[:80])
        append((prices[i], size))
        if size > 0.0:
            count += 1
            if count == n:
                return out, i + 1 == len(entries)
    return out, True


def _number(value: Any) -> float:
    """A decimal string, int or float as a float; anything else (bool, None, ...) is bad."""
    cls = value.__class__
    if cls is str or cls is float or cls is int:
        return float(value)  # an int beyond a double raises OverflowError
    raise ValueError(value)


def apply_levels(book: OrderBook, bids: Iterable[Level], asks: Iterable[Level]) -> bool:
    """Absolute sizes onto the book; True when anything kept changed."""
    return book.apply(bids, asks)
