"""Bitstamp ``diff_order_book_<pair>`` plus a REST snapshot: one :class:`BitstampBook` per pair.

Recorded diff (bitstamp.jsonl, ethusd)::

    {"data":{"timestamp":"1641343702","microtimestamp":"1641343702384349",
     "bids":[["3802.90","0.00000000"],["3802.52","0.56060000"]],"asks":[]},
     "channel":"diff_order_book_ethusd","event":"data"}

and the REST snapshot it starts from (``GET https://www.bitstamp.net/api/v2/order_book/<pair>``,
the whole book, best first; recorded as ``source:"rest"`` lines)::

    {"timestamp": "1641343695", "microtimestamp": "1641343695681418",
     "bids": [["3802.90", "0.60000000"], ...], "asks": [...]}

- ``bids``/``asks``: ``[price, amount]`` with the level's new absolute amount; zero removes it.
- ``microtimestamp``: the venue's time of the change (or of the snapshot), epoch µs as text.
  It is the only ordering Bitstamp gives (no sequence number), and per pair it strictly rises.

Sync (Bitstamp's documented procedure): diffs are buffered (at most :data:`MAX_BUFFERED`)
until a snapshot comes, and the first asks for one (``need="snapshot"``, once until it comes).
Diffs not newer than the snapshot are dropped, later ones applied in order. A snapshot older
than every buffered diff, or older than a diff the full buffer had to let go, cannot be bridged
(``stale_snapshot``: another is asked for). Once synced, a diff repeating the last one's time is
dropped (``out_of_order``); one older than the last (but newer than the snapshot) may have
been overtaken by a later change to the same level, so the book resyncs (``out_of_order``).

Why the book has a horizon: Bitstamp diffs cover the whole book (thousands of levels), but the
kept book is the best ``max_levels``. Once a level falls off the kept end, the book no longer
knows what lies beyond it; a diff there is ignored, so the kept levels stay exactly the venue's
best levels (never a hole that would make a ladder look better or worse than it is). Deletes
can thin it out that way: once a side holds less than half of ``max_levels`` while the venue
has more beyond the horizon, the book asks for a fresh snapshot (``need="snapshot"``, problem
None) and goes on serving; the diffs meanwhile are kept and applied again on top of the new
snapshot when they are newer than it.

The connector keeps a diff book of its own (``services/producer/bitstamp.py``, ``DiffBook``):
it serves Bitstamp's quotes when a recording holds only ``diff_order_book`` (live quotes come
from ``order_book`` frames) and keeps every level, so it never thins out. Same reading rules
(absolute amounts, zero removes, older diffs dropped); the tests use it as the unbounded
reference for this bounded one.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from services.common.exceptions import RecordError
from services.producer.books.base import (
    CHANGED,
    UNCHANGED,
    BookStatus,
    read_best,
    read_levels,
)
from services.producer.books.book import Level, OrderBook

NAME = "bitstamp"
REST_ORDER_BOOK_URL = "https://www.bitstamp.net/api/v2/order_book/"
CHANNEL_PREFIX = "diff_order_book_"
#: diffs kept while waiting for a snapshot (the busiest recorded pair sends ~5 a second)
MAX_BUFFERED = 1000
_INF = float("inf")


class _Diff(NamedTuple):
    ts_us: int
    bids: list[Level]
    asks: list[Level]


def channels(venue_symbols: Sequence[str]) -> list[str]:
    """``diff_order_book_<pair>`` for each pair."""
    return [f"{CHANNEL_PREFIX}{s}" for s in venue_symbols]


def subscribe_messages(venue_symbols: Sequence[str], max_levels: int = 0) -> list[str]:
    """One ``bts:subscribe`` per pair (as recorded); the channel has no depth setting."""
    del max_levels
    return [json.dumps({"event": "bts:subscribe", "data": {"channel": ch}})
            for ch in channels(venue_symbols)]


def snapshot_url(venue_symbol: str, base_url: str = REST_ORDER_BOOK_URL) -> str:
    """The REST order book a pair's diffs start from."""
    return f"{base_url.rstrip('/')}/{venue_symbol}"


def pair_of_url(url: str) -> str | None:
    """The pair of a REST order-book URL (a recording's ``url``), None for any other URL."""
    if not url.startswith(REST_ORDER_BOOK_URL):
        return None
    pair = url[len(REST_ORDER_BOOK_URL):].partition("?")[0].strip("/")
    return pair or None


def depth_parts(frame: Any) -> list[tuple[str, Mapping[str, Any]]] | None:
    """A decoded frame -> ``[(pair, data)]`` for a ``diff_order_book`` data frame, else None."""
    if frame.__class__ is not dict or frame.get("event") != "data":
        return None
    channel = frame.get("channel")
    if channel.__class__ is not str or not channel.startswith(CHANNEL_PREFIX):
        return None
    data = frame.get("data")
    if data.__class__ is not dict or len(channel) == len(CHANNEL_PREFIX):
        raise RecordError("bad_field", f"diff_order_book frame {channel!r}"[:80])
    return [(channel[len(CHANNEL_PREFIX):], data)]


class BitstampBook:
    """One pair's book: a REST snapshot, then the diffs newer than it (a :class:`DepthSync`)."""

    def __init__(self, venue_symbol: str, max_levels: int) -> None:
        self.venue_symbol = venue_symbol
        self.max_levels = max_levels
        #: the trusted edge is the horizon (see the module docstring)
        self.book = OrderBook(max_levels, trusted_edge=True)
        #: µs time of the snapshot, and of the last diff applied; None while unsynced
        self._snapshot_us: int | None = None
        self._last_us = 0
        self._buffer: deque[_Diff] = deque()
        #: time of the newest diff the full buffer let go (a snapshot must not be older)
        self._lost_us = -1
        #: a snapshot was asked for and has not come yet
        self._requested = False
        #: a synced book grew thin and asked for a fresh snapshot: diffs are kept meanwhile
        self._refresh = False
        self._refresh_us = 0

    @property
    def synced(self) -> bool:
        return self._snapshot_us is not None

    def reset(self) -> None:
        """Connection lost (or a snapshot fetch failed): empty, unsynced, the next diff asks
        for a snapshot again."""
        self._clear()
        self._buffer.clear()
        self._lost_us = -1
        self._requested = False
        self._refresh = False

    def _clear(self) -> None:
        self.book.clear()
        self._snapshot_us = None
        self._last_us = 0

    def on_update(self, message: Mapping[str, Any]) -> BookStatus:
        """One diff's ``data`` (see :func:`depth_parts`)."""
        try:
            diff = _read(message)
        except RecordError:
            if self._snapshot_us is None:
                self._buffer.clear()  # the buffer now has a hole: start it again
                self._lost_us = -1
                return BookStatus(False, "bad_level", self._need())
            return self._resync("bad_level")
        if self._snapshot_us is None:
            return self._buffer_diff(diff)
        if diff.ts_us <= self._snapshot_us:
            return UNCHANGED  # sent before the snapshot was taken: already in it
        if diff.ts_us == self._last_us:
            return BookStatus(False, "out_of_order")  # the last diff again
        if diff.ts_us < self._last_us:
            return self._resync("out_of_order")
        return self._apply(diff)

    def on_snapshot(self, snapshot: Mapping[str, Any]) -> BookStatus:
        """The REST order book; bridged to the buffered diffs, or another one asked for."""
        refresh = self._refresh
        if self._snapshot_us is not None and not refresh:
            return UNCHANGED  # a late answer to an earlier request: the book is in sync
        self._requested = False
        try:
            snap = _read(snapshot, self.max_levels + 1)
        except (RecordError, AttributeError):
            return BookStatus(False, "bad_level", "snapshot" if refresh else self._need())
        buffer = self._buffer
        # the diff that asked for it: every later one is buffered, so the snapshot bridges
        asked_us = self._refresh_us if refresh else (buffer[0].ts_us if buffer else -1)
        if snap.ts_us < self._lost_us or snap.ts_us < asked_us:
            # changes between the snapshot and the buffered diffs may be missing
            return BookStatus(False, "stale_snapshot", "snapshot" if refresh else self._need())
        self._refresh = False
        self._load(snap)
        pending = [d for d in buffer if d.ts_us > snap.ts_us]
        buffer.clear()
        self._lost_us = -1
        for diff in pending:
            status = self._apply(diff)
            if status.problem is not None:
                return status
        if self.book.crossed():
            return self._resync("crossed")
        return BookStatus(True, None, "snapshot") if self._refresh else CHANGED

    def _load(self, snap: _Diff) -> None:
        """The best ``max_levels`` of each side; the first left out sets the horizon."""
        self.book.load(snap.bids, snap.asks)
        self._snapshot_us = self._last_us = snap.ts_us

    def _apply(self, diff: _Diff) -> BookStatus:
        self._last_us = diff.ts_us
        book = self.book
        changed = book.apply(diff.bids, diff.asks)
        if changed and book.crossed():
            return self._resync("crossed")
        if self._refresh:
            self._keep(diff)
        elif self._thin():
            self._refresh = True
            self._refresh_us = diff.ts_us
            return BookStatus(changed, None, "snapshot")
        return CHANGED if changed else UNCHANGED

    def _thin(self) -> bool:
        """A side holds under half its levels while the venue has more beyond the horizon."""
        return self.book.thin((self.max_levels + 1) // 2)

    def _keep(self, diff: _Diff) -> None:
        """Buffer a diff (bounded): it is applied again on top of a snapshot older than it."""
        buffer = self._buffer
        if len(buffer) >= MAX_BUFFERED:
            self._lost_us = buffer.popleft().ts_us
        buffer.append(diff)

    def _buffer_diff(self, diff: _Diff) -> BookStatus:
        buffer = self._buffer
        if buffer and diff.ts_us <= buffer[-1].ts_us:
            return BookStatus(False, "out_of_order")  # repeated or older: not buffered
        self._keep(diff)
        need = self._need()
        return BookStatus(False, None, need) if need else UNCHANGED

    def _need(self) -> str | None:
        """Ask for a snapshot unless one is already on its way."""
        if self._requested:
            return None
        self._requested = True
        return "snapshot"

    def _resync(self, problem: str) -> BookStatus:
        """The book can no longer be vouched for: empty it and ask for a snapshot."""
        self.reset()
        self._requested = True
        return BookStatus(True, problem, "snapshot")


def _read(message: Mapping[str, Any], keep: int | None = None) -> _Diff:
    """A diff's (or, with ``keep``, a snapshot's best ``keep``) time and levels, all checked
    before any is used."""
    if message.__class__ is not dict:
        raise RecordError("bad_level", f"message {type(message).__name__}")
    ts_text = message.get("microtimestamp")
    if (ts_text.__class__ is not str or not ts_text.isascii() or not ts_text.isdigit()
            or len(ts_text) > 19):
        raise RecordError("bad_level", f"microtimestamp={ts_text!r}"[:80])
    if keep is None:
        return _Diff(int(ts_text), read_levels(message.get("bids")),
                     read_levels(message.get("asks")))
    # the REST book is the whole book, best first: only what the book keeps is read
    return _Diff(int(ts_text), read_best(message.get("bids"), keep, descending=True)[0],
                 read_best(message.get("asks"), keep, descending=False)[0])


def new_sync(venue_symbol: str, max_levels: int) -> BitstampBook:
    """The book of one pair, its best ``max_levels`` levels per side."""
    return BitstampBook(venue_symbol, max_levels)
