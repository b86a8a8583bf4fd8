"""Kraken spot WebSocket **v1** ``book`` channel: one :class:`KrakenBook` per pair.

Recorded frames (kraken.jsonl, SC/EUR; levels are ``[price, volume, timestamp]``)::

    [1920,{"as":[["0.042990","364630.28272081","1618678145.920470"],...],"bs":[...]},
     "book-1000","SC/EUR"]
    [1920,{"a":[["0.042990","364630.28272081","1618678145.920470"]]},
     {"b":[["0.042990","0.00000000","1618678145.920708"]],"c":"4105471083"},"book-1000","SC/EUR"]

- ``as``/``bs``: the snapshot sent after subscribing (asks low to high, bids high to low), at
  most the subscribed depth per side.
- ``a``/``b``: updates with the level's new absolute volume; volume zero removes the level. A
  frame touching both sides carries two payload objects (merged here, then applied asks first:
  the frame above is only uncrossed once both halves are in). A level may carry a 4th element
  ``"r"`` (a republish of a level re-entering the window), applied like any update.
- ``c``: CRC32 (decimal text) over the top 10 asks (low to high) then the top 10 bids (high to
  low), each level as its price then its volume with ``.`` removed and leading zeros stripped,
  **from the original strings**. So each level keeps its checksum fragment, computed when the
  level is set, and the check costs one join and one CRC per update.
- Kraken sends no sequence number: a lost, repeated or reordered update shows up as a checksum
  mismatch, which drops the book and asks for a fresh subscription (``resubscribe``).

Quirk: the venue only reports changes inside the subscribed depth, and expects the client to
drop the levels an insert pushes out of it. So the kept book must be exactly the subscribed
window (:func:`book_depth`), trimmed after every update: a shallower book would take the level
that moves into the window after a delete as if it sat right behind the last kept one. A frame
names its depth (``book-1000``); a recording made deeper than this producer subscribes is kept
at the recorded depth (the book is re-made at the snapshot).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from services.common.exceptions import RecordError
from services.producer.books.base import CHANGED, UNCHANGED, BookStatus
from services.producer.books.book import Level, OrderBook

NAME = "kraken"
#: the depths Kraken's v1 ``book`` subscription accepts
DEPTHS = (10, 25, 100, 500, 1000)
#: levels per side in the checksum
CHECKSUM_LEVELS = 10
_CHANNEL_PREFIX = "book-"
_INF = math.inf

#: texts kept beyond twice the window before the dropped levels' texts are pruned
_SLACK = 64


def book_depth(max_levels: int) -> int:
    """The smallest subscribable depth that holds ``max_levels`` levels (1000 at most)."""
    for depth in DEPTHS:
        if depth >= max_levels:
            return depth
    return DEPTHS[-1]


def subscribe_messages(venue_symbols: Sequence[str], max_levels: int) -> list[str]:
    """One ``book`` subscribe for all pairs, at the depth that holds ``max_levels``."""
    return [json.dumps({"event": "subscribe", "pair": list(venue_symbols),
                        "subscription": {"name": "book", "depth": book_depth(max_levels)}})]


def fragment(price_text: str, volume_text: str) -> str:
    """A level's part of Kraken's checksum text: ``.`` removed, leading zeros stripped."""
    return price_text.replace(".", "").lstrip("0") + volume_text.replace(".", "").lstrip("0")


def checksum(book: OrderBook, ask_texts: dict[float, Any],
             bid_texts: dict[float, Any]) -> int:
    """Kraken's CRC32 over the top 10 asks then the top 10 bids, from the kept fragments
    (texts are keyed like the book's sides: asks by price, bids by the negated price)."""
    return zlib.crc32((_joined(ask_texts, book.ask_side.keys[:CHECKSUM_LEVELS])
                       + _joined(bid_texts, book.bid_side.keys[:CHECKSUM_LEVELS])).encode())


def _joined(texts: dict[float, Any], keys: list[float]) -> str:
    """The fragments of ``keys`` as one text. A snapshot's level keeps its raw ``[price,
    volume, ...]`` until it first reaches the top 10 (most of a 1000-level window never does),
    which the join finds by failing on it."""
    parts = list(map(texts.__getitem__, keys))
    try:
        return "".join(parts)
    except TypeError:
        for i, part in enumerate(parts):
            if part.__class__ is not str:
                parts[i] = texts[keys[i]] = fragment(part[0], part[1])
        return "".join(parts)


def read_levels(levels: Any, key: str, negate: bool = False,
                snapshot: bool = False) -> tuple[list[Level], list[tuple[float, Any]]]:
    """``[[price, volume, timestamp(, "r")], ...]`` -> (checked levels, (sort key, checksum
    text) per level), all read before any is applied; a non-positive or non-finite price, a
    negative or non-finite volume, or a field that is not a decimal string is ``bad_level``.
    ``negate``: the sort key is -price (bids). ``snapshot``: the text is the raw level, made a
    fragment only if it reaches the checksum (:func:`_joined`)."""
    if levels.__class__ is not list:
        raise RecordError("bad_level", f"{key}={levels!r}"[:80])
    out: list[Level] = []
    texts: list[tuple[float, Any]] = []
    append, text_append = out.append, texts.append
    for level in levels:
        if level.__class__ is not list or not 3 <= len(level) <= 4:
            raise RecordError("bad_level", f"{key} level={level!r}"[:80])
        price_text, volume_text = level[0], level[1]
        if price_text.__class__ is not str or volume_text.__class__ is not str:
            raise RecordError("bad_level", f"{key} level={level!r}"[:80])
        try:
            price, volume = float(price_text), float(volume_text)
        except ValueError:
            raise RecordError("bad_level", f"{key} level={level!r}"[:80]) from None
        if not (0.0 < price < _INF and 0.0 <= volume < _INF):
            raise RecordError("bad_level", f"{key} level={level!r}"[:80])
        append((price, volume))
        text_append((-price if negate else price,
                     level if snapshot else fragment(price_text, volume_text)))
    return out, texts


def depth_parts(frame: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """A decoded frame -> ``[(pair, message)]`` for :meth:`KrakenBook.on_update`, or None when
    it is not a book frame. The payload objects are merged into one message, and ``depth``
    (from ``book-<depth>``) is added; a book frame of the wrong shape is RecordError."""
    if frame.__class__ is not list or len(frame) < 4:
        return None
    channel, pair = frame[-2], frame[-1]
    if channel.__class__ is not str or not channel.startswith(_CHANNEL_PREFIX):
        return None
    depth_text = channel[len(_CHANNEL_PREFIX):]
    if (pair.__class__ is not str or not depth_text.isascii() or not depth_text.isdigit()
            or len(depth_text) > 5):
        raise RecordError("bad_field", f"book frame {channel!r} {pair!r}"[:80])
    message: dict[str, Any] = {"depth": int(depth_text)}
    for payload in frame[1:-2]:
        if payload.__class__ is not dict:
            raise RecordError("bad_field", f"book payload={payload!r}"[:80])
        for key, value in payload.items():
            if key in message:
                raise RecordError("bad_field", f"book key {key!r} twice")
            message[key] = value
    return [(pair, message)]


class KrakenBook:
    """One pair's book from a v1 ``book`` subscription (a :class:`DepthSync`)."""

    def __init__(self, venue_symbol: str, max_levels: int) -> None:
        self.venue_symbol = venue_symbol
        #: the subscribed window, which is what the book keeps (see the module docstring)
        self.depth = book_depth(max_levels)
        self.book = OrderBook(self.depth)
        #: sort key (asks: price, bids: -price) -> checksum fragment (or a snapshot's raw
        #: level), per side; a superset of the kept levels (levels removed or dropped linger
        #: until :meth:`_prune`), so each top level finds its text
        self._ask_texts: dict[float, Any] = {}
        self._bid_texts: dict[float, Any] = {}
        self._synced = False
        #: a resubscribe was asked for and its snapshot has not come yet
        self._requested = False

    @property
    def synced(self) -> bool:
        return self._synced

    def reset(self) -> None:
        """Connection lost: empty and unsynced; the new subscription brings the snapshot."""
        self._clear()
        self._requested = False

    def _clear(self) -> None:
        self.book.clear()
        self._ask_texts.clear()
        self._bid_texts.clear()
        self._synced = False

    def on_snapshot(self, snapshot: Mapping[str, Any]) -> BookStatus:
        """A snapshot payload (``as``/``bs``): Kraken sends it on the socket, not over REST."""
        return self.on_update(snapshot)

    def on_update(self, message: Mapping[str, Any]) -> BookStatus:
        """A merged book message (see :func:`depth_parts`): a snapshot or an update."""
        if message.__class__ is not dict:
            raise RecordError("bad_field", f"book message {type(message).__name__}")
        if "as" in message or "bs" in message:
            return self._load(message)
        if not self._synced:
            if self._requested:
                return UNCHANGED  # still waiting for the resubscription's snapshot
            self._requested = True
            return BookStatus(False, "unsynced", "resubscribe")
        try:
            asks, ask_texts = read_levels(message.get("a", []), "a")
            bids, bid_texts = read_levels(message.get("b", []), "b", negate=True)
            expected = _crc(message.get("c"))
        except RecordError:
            # an update the book cannot read is one it misses: it is no longer right
            return self._resync("bad_level")
        # a removed level's text may linger (the texts are a superset): pruned by size
        self._ask_texts.update(ask_texts)
        self._bid_texts.update(bid_texts)
        changed = self.book.apply(bids, asks)
        bound = 2 * self.depth + _SLACK
        if len(self._ask_texts) > bound or len(self._bid_texts) > bound:
            self._prune()
        if expected is not None and checksum(self.book, self._ask_texts,
                                             self._bid_texts) != expected:
            return self._resync("checksum")
        if changed and self.book.crossed():
            return self._resync("crossed")
        return CHANGED if changed else UNCHANGED

    def _load(self, message: Mapping[str, Any]) -> BookStatus:
        self._requested = False  # this is the snapshot a resubscribe waits for
        try:
            asks, ask_texts = read_levels(message.get("as", []), "as", snapshot=True)
            bids, bid_texts = read_levels(message.get("bs", []), "bs", negate=True,
                                          snapshot=True)
        except RecordError:
            return self._resync("bad_level")
        self._clear()
        depth = message.get("depth")
        if depth.__class__ is int and self.depth < depth <= DEPTHS[-1]:
            self.depth = depth  # a recording subscribed deeper: keep its whole window
            self.book = OrderBook(depth)
        self.book.load(bids, asks)
        self._ask_texts.update(ask_texts)
        self._bid_texts.update(bid_texts)
        if self.book.crossed():
            return self._resync("crossed")
        self._synced = True
        return CHANGED

    def _prune(self) -> None:
        """Forget the texts of levels the window has dropped (bounded memory)."""
        asks, bids = self._ask_texts, self._bid_texts
        self._ask_texts = {k: asks[k] for k in self.book.ask_side.keys}
        self._bid_texts = {k: bids[k] for k in self.book.bid_side.keys}

    def _resync(self, problem: str) -> BookStatus:
        """Empty the book and ask for a new subscription (once until its snapshot comes)."""
        was_requested = self._requested
        self._clear()
        self._requested = True
        return BookStatus(True, problem, None if was_requested else "resubscribe")


def _crc(value: Any) -> int | None:
    """The ``c`` field: a CRC32 as decimal text, or None when the update carries none."""
    if value is None:
        return None
    if value.__class__ is not str or not (value.isascii() and value.isdigit()) or len(value) > 10:
        raise RecordError("bad_level", f"c={value!r}"[:80])
    return int(value)


def new_sync(venue_symbol: str, max_levels: int) -> KrakenBook:
    """The book of one pair, kept at the depth subscribed for ``max_levels``."""
    return KrakenBook(venue_symbol, max_levels)
