"""Coinbase Exchange book: the ``level2_batch`` channel's ``snapshot`` and ``l2update`` messages.

Coinbase now requires authentication for ``level2``; ``level2_batch`` is its public twin: the
same messages, with updates batched every 50 ms. One recorded update (coinbase_exchange_2021
.jsonl, recorded on ``level2`` when it was still public, the same format)::

    {"type":"l2update","product_id":"SKL-BTC","changes":[["sell","0.00001306","660.5"]],
     "time":"2021-04-17T16:43:37.075687Z"}

- ``changes``: ``[side, price, size]`` with ``side`` "buy" (a bid) or "sell" (an ask) and the
  absolute size at that price, "0" (or "0.0") removing the level.
- ``snapshot``: ``{"type":"snapshot","product_id":...,"bids":[[price, size], ...],"asks":[...]}``,
  the whole book, sent once after subscribing.

No sequence numbers on these messages, so a lost update cannot be seen: the book is trusted
from the snapshot on, and checked only for being crossed.

The changes cover the whole book while the kept book is the best ``max_levels``: it keeps a
trusted edge (see :mod:`services.producer.books.book`), so a level once dropped is never
mistaken for a gap-free book behind it; once deletes thin a side below half of
``max_levels`` with more beyond the edge, it asks for a fresh snapshot (``resubscribe``,
problem None) and goes on serving meanwhile. A crossed book, or an update with no
snapshot before it, needs a fresh snapshot, which only a new subscription brings
(``resubscribe``: :func:`unsubscribe_depth` then :func:`subscribe_depth`).
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
    read_best,
    read_level,
)
from services.producer.books.book import Level, OrderBook

NAME = "coinbase"
DEPTH_CHANNEL = "level2_batch"
DEPTH_KINDS = frozenset({"snapshot", "l2update"})


def depth_parts(decoded: Any) -> list[tuple[str, Mapping[str, Any]]] | None:
    """A decoded frame -> [(product id, message)] for snapshot/l2update, None for others."""
    if decoded.__class__ is not dict or decoded.get("type") not in DEPTH_KINDS:
        return None
    product = decoded.get("product_id")
    if product.__class__ is not str:
        return None
    return [(product, decoded)]


def subscribe_depth(venue_symbols: Sequence[str]) -> str:
    """The subscribe message for the public depth channel."""
    return json.dumps({"type": "subscribe", "product_ids": list(venue_symbols),
                       "channels": [DEPTH_CHANNEL]})


def unsubscribe_depth(venue_symbols: Sequence[str]) -> str:
    """Half of a resubscribe: Coinbase sends a fresh snapshot only on a new subscription."""
    return json.dumps({"type": "unsubscribe", "product_ids": list(venue_symbols),
                       "channels": [DEPTH_CHANNEL]})


def new_sync(venue_symbol: str, max_levels: int) -> CoinbaseDepthSync:
    return CoinbaseDepthSync(venue_symbol, max_levels)


class CoinbaseDepthSync:
    """One Coinbase product's book: a WS snapshot, then absolute-size updates."""

    def __init__(self, venue_symbol: str, max_levels: int) -> None:
        self.venue_symbol = venue_symbol
        self.book = OrderBook(max_levels, trusted_edge=True)
        #: a side below this many levels with more beyond the edge asks for a snapshot
        self.thin_levels = (max_levels + 1) // 2
        self._synced = False
        #: a resubscribe was asked for and its snapshot has not come yet
        self._requested = False

    @property
    def synced(self) -> bool:
        return self._synced

    def reset(self) -> None:
        """Connection lost: empty and unsynced; the new subscription brings the snapshot."""
        self.book.clear()
        self._synced = False
        self._requested = False

    def on_update(self, message: Mapping[str, Any]) -> BookStatus:
        """A ``snapshot`` or ``l2update`` message."""
        kind = message.get("type")
        if kind == "snapshot":
            return self.on_snapshot(message)
        if kind != "l2update":
            return BookStatus(False, "bad_level", None)
        if not self._synced:
            if self._requested:
                return UNCHANGED  # still waiting for the resubscription's snapshot
            self._requested = True
            return BookStatus(False, "unsynced", "resubscribe")
        try:
            bids, asks = _read_changes(message.get("changes"))
        except RecordError:
            # a change we cannot read is a change the book misses: it is no longer right
            return self._resync("bad_level")
        book = self.book
        changed = apply_levels(book, bids, asks)
        if changed and book.crossed():
            return self._resync("crossed")
        if changed and not self._requested and book.thin(self.thin_levels):
            self._requested = True  # until the new subscription's snapshot
            return BookStatus(True, None, "resubscribe")
        return CHANGED if changed else UNCHANGED

    def on_snapshot(self, snapshot: Mapping[str, Any]) -> BookStatus:
        """The WS ``snapshot`` message (Coinbase has no REST snapshot for this channel)."""
        self._requested = False  # this is the snapshot a resubscribe waits for
        try:
            # the whole book, best first: only what the book keeps is read
            keep = self.book.max_levels + 1
            bids, _ = read_best(snapshot.get("bids"), keep, descending=True)
            asks, _ = read_best(snapshot.get("asks"), keep, descending=False)
        except RecordError:
            return self._resync("bad_level")
        self.book.load(bids, asks)
        if self.book.crossed():
            return self._resync("crossed")
        self._synced = True
        return CHANGED

    def _resync(self, problem: str) -> BookStatus:
        """Empty the book and ask for a new subscription (once until its snapshot comes)."""
        was_requested = self._requested
        self.book.clear()
        self._synced = False
        self._requested = True
        return BookStatus(True, problem, None if was_requested else "resubscribe")


_SIDES = {"buy": True, "sell": False}


def _read_changes(changes: Any) -> tuple[list[Level], list[Level]]:
    """``[[side, price, size], ...]`` -> (bids, asks); one bad entry rejects them all."""
    if changes.__class__ is not list:
        raise RecordError("bad_level", f"changes={changes!r}"[:80])
    bids: list[Level] = []
    asks: list[Level] = []
    for change in changes:
        if change.__class__ is not list or len(change) != 3:
            raise RecordError("bad_level", repr(change)[:80])
        is_bid = _SIDES.get(change[0]) if change[0].__class__ is str else None
        if is_bid is None:
            raise RecordError("bad_level", f"side={change[0]!r}"[:80])
        (bids if is_bid else asks).append(read_level(change[1:]))
    return bids, asks
