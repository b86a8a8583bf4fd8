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


def _number(value: Any) -> float:
    """A decimal string, int or float as a float; anything else (bool, None, ...) is bad."""
    cls = value.__class__
    if cls is str or cls is float or cls is int:
        return float(value)  # an int beyond a double raises OverflowError
    raise ValueError(value)


def apply_levels(book: OrderBook, bids: Iterable[Level], asks: Iterable[Level]) -> bool:
    """Absolute sizes onto the book; True when anything kept changed."""
    changed = False
    set_bid = book.set_bid
    for price, size in bids:
        if set_bid(price, size):
            changed = True
    set_ask = book.set_ask
    for price, size in asks:
        if set_ask(price, size):
            changed = True
    return changed
