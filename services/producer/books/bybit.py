"""Bybit v5 public spot ``orderbook.{depth}.{symbol}``: one :class:`BybitBook` per symbol.

Recorded frame (bybit_orderbook1_2025.jsonl, KCSUSDT on the spot endpoint)::

    {"topic":"orderbook.1.KCSUSDT","ts":1749833477570,"type":"snapshot","data":{"s":"KCSUSDT",
     "b":[["11.258","4.8"]],"a":[["11.259","0.78"]],"u":462749,"seq":105958369448},
     "cts":1749833477565}

- ``type``: ``snapshot`` (the whole window: after subscribing, and whenever Bybit restarts the
  book) or ``delta`` (new absolute sizes, "0" removes the level). Only ``orderbook.1`` is
  recorded, where every message is a snapshot; deeper topics send deltas in the same layout.
- ``u``: the book's update id, +1 per message. A delta whose ``u`` is not the last + 1 means a
  lost message (``gap``: the book is dropped and a new subscription asked for); a repeated or
  older one is dropped (``out_of_order``). A snapshot replaces the book whatever its ``u``
  (``u`` = 1 is Bybit restarting the book after a service restart), except an older one than
  the book's (a late duplicate), which is dropped. ``orderbook.1`` re-sends an unchanged book
  as a snapshot with the same ``u``.
- ``seq`` (cross sequence) and ``cts`` are not needed for the book.

Depths are 1, 50, 200 and 1000; the book subscribes the smallest of 50, 200, 1000 that holds
``max_levels`` and keeps exactly that window, because the venue only reports changes inside it
(a shallower book would take the level moving into the window for the one behind its last).
Spot and linear send identical topics: which endpoint a frame came from is the caller's to
know (this module is meant for the spot endpoint).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from services.common.exceptions import RecordError
from services.producer.books.base import (
    CHANGED,
    UNCHANGED,
    BookStatus,
    apply_levels,
    read_levels,
)
from services.producer.books.book import OrderBook

NAME = "bybit"
#: the depths of ``orderbook.{depth}.{symbol}`` (1 is the best bid/offer)
DEPTHS = (1, 50, 200, 1000)
#: Bybit takes at most 10 topics per subscribe message
MAX_ARGS_PER_SUBSCRIBE = 10
_TOPIC = "orderbook."
_KINDS = frozenset({"snapshot", "delta"})


def book_depth(max_levels: int) -> int:
    """50, or the smallest depth that holds ``max_levels`` (1000 at most)."""
    for depth in DEPTHS[1:]:
        if depth >= max_levels:
            return depth
    return DEPTHS[-1]


def topics(venue_symbols: Sequence[str], max_levels: int) -> list[str]:
    """``orderbook.<depth>.<symbol>`` for each symbol."""
    depth = book_depth(max_levels)
    return [f"{_TOPIC}{depth}.{s}" for s in venue_symbols]


def subscribe_messages(venue_symbols: Sequence[str], max_levels: int) -> list[str]:
    """The subscribe messages for the depth topics, at most 10 topics each."""
    args = topics(venue_symbols, max_levels)
    return [json.dumps({"op": "subscribe", "args": args[i:i + MAX_ARGS_PER_SUBSCRIBE]})
            for i in range(0, len(args), MAX_ARGS_PER_SUBSCRIBE)]


def depth_parts(frame: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """A decoded frame -> ``[(symbol, message)]``, the message being ``data`` with ``type`` and
    ``depth`` (from the topic) added; None when it is not an orderbook frame. An orderbook frame
    of the wrong shape is RecordError."""
    if frame.__class__ is not dict:
        return None
    topic = frame.get("topic")
    if topic.__class__ is not str or not topic.startswith(_TOPIC):
        return None
    depth_text, _, symbol = topic[len(_TOPIC):].partition(".")
    data, kind = frame.get("data"), frame.get("type")
    if (not depth_text.isascii() or not depth_text.isdigit() or len(depth_text) > 5
            or not symbol or kind not in _KINDS or data.__class__ is not dict):
        raise RecordError("bad_field", f"orderbook frame {topic!r} {kind!r}"[:80])
    if data.get("s", symbol) != symbol:
        raise RecordError("bad_field", f"orderbook s={data.get('s')!r} on {topic!r}"[:80])
    return [(symbol, {**data, "type": kind, "depth": int(depth_text)})]


class BybitBook:
    """One symbol's book from an ``orderbook`` topic (a :class:`DepthSync`)."""

    def __init__(self, venue_symbol: str, max_levels: int) -> None:
        self.venue_symbol = venue_symbol
        #: the subscribed window, which is what the book keeps
        self.depth = book_depth(max_levels)
        self.book = OrderBook(self.depth)
        #: ``u`` of the last message applied; None while unsynced
        self._last_u: int | None = None
        #: a resubscribe was asked for and its snapshot has not come yet
        self._requested = False

    @property
    def synced(self) -> bool:
        return self._last_u is not None

    @property
    def last_update_id(self) -> int | None:
        return self._last_u

    def reset(self) -> None:
        """Connection lost: empty and unsynced; the new subscription brings the snapshot."""
        self.book.clear()
        self._last_u = None
        self._requested = False

    def on_snapshot(self, snapshot: Mapping[str, Any]) -> BookStatus:
        """A snapshot message (Bybit sends it on the socket, so this is :meth:`on_update`)."""
        if snapshot.__class__ is not dict:
            raise RecordError("bad_field", f"orderbook message {type(snapshot).__name__}")
        return self._load(snapshot)

    def on_update(self, message: Mapping[str, Any]) -> BookStatus:
        """One orderbook message (see :func:`depth_parts`)."""
        if message.__class__ is not dict:
            raise RecordError("bad_field", f"orderbook message {type(message).__name__}")
        if message.get("type") == "snapshot":
            return self._load(message)
        last_u = self._last_u
        if last_u is None:
            if self._requested:
                return UNCHANGED  # still waiting for the resubscription's snapshot
            self._requested = True
            return BookStatus(False, "unsynced", "resubscribe")
        try:
            update_id = _update_id(message.get("u"))
            bids = read_levels(message.get("b"))
            asks = read_levels(message.get("a"))
        except RecordError:
            # a delta the book cannot read is one it misses: it is no longer right
            return self._resync("bad_level")
        if update_id <= last_u:
            return BookStatus(False, "out_of_order")
        if update_id != last_u + 1:
            return self._resync("gap")
        self._last_u = update_id
        changed = apply_levels(self.book, bids, asks)
        if changed and self.book.crossed():
            return self._resync("crossed")
        return CHANGED if changed else UNCHANGED

    def _load(self, message: Mapping[str, Any]) -> BookStatus:
        self._requested = False  # this is the snapshot a resubscribe waits for
        try:
            update_id = _update_id(message.get("u"))
            bids = read_levels(message.get("b"))
            asks = read_levels(message.get("a"))
        except RecordError:
            return self._resync("bad_level")
        last_u = self._last_u
        if last_u is not None and update_id < last_u and update_id != 1:
            return BookStatus(False, "out_of_order")  # a late copy of an older book
        depth = message.get("depth")
        if depth.__class__ is int and self.depth < depth <= DEPTHS[-1]:
            self.depth = depth  # a recording subscribed deeper: keep its whole window
            self.book = OrderBook(depth)
        book = self.book
        before = (book.bids(), book.asks()) if update_id == last_u else None
        book.load(bids, asks)
        if book.crossed():
            return self._resync("crossed")
        self._last_u = update_id
        if before is not None and before == (book.bids(), book.asks()):
            return UNCHANGED  # the unchanged book pushed again
        return CHANGED

    def _resync(self, problem: str) -> BookStatus:
        """Empty the book and ask for a new subscription (once until its snapshot comes)."""
        was_requested = self._requested
        self.book.clear()
        self._last_u = None
        self._requested = True
        return BookStatus(True, problem, None if was_requested else "resubscribe")


def _update_id(value: Any) -> int:
    if value.__class__ is not int or value < 1:
        raise RecordError("bad_level", f"u={value!r}"[:80])
    return value


def new_sync(venue_symbol: str, max_levels: int) -> BybitBook:
    """The book of one spot symbol, kept at the depth subscribed for ``max_levels``."""
    return BybitBook(venue_symbol, max_levels)
