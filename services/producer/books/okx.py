"""OKX v5 public ``books`` channel (400 levels): one :class:`OkxBook` per instrument.

Recorded frames (okx.jsonl, BTC-USD-220527; levels ``[price, size, "0", orders]``)::

    {"arg":{"channel":"books","instId":"BTC-USD-220527"},"action":"snapshot","data":[{
     "asks":[["30238.8","2","0","1"],...],"bids":[...],"ts":"1652459225393",
     "checksum":1054815633}]}
    {"arg":{"channel":"books","instId":"BTC-USD-220527"},"action":"update","data":[{
     "asks":[["30249.4","0","0","0"],["30261","4","0","1"]],"bids":[["30182.6","452","0","1"]],
     "ts":"1652459225464","checksum":-914047754}]}

- ``action``: ``snapshot`` (the whole window, sent after subscribing) then ``update`` (new
  absolute sizes; size "0" removes the level). The third item of a level is deprecated, the
  fourth the number of orders; neither is used.
- ``seqId``/``prevSeqId`` (newer frames; the 2022 recording has none): an update must name the
  last ``seqId`` as its ``prevSeqId``, else a message was lost (``gap``: the book is dropped and
  a new subscription asked for). ``seqId == prevSeqId`` is a keep-alive without change. After a
  venue maintenance ``seqId`` may restart lower; ``prevSeqId`` still chains, so only the chain
  is checked, never the direction. A message repeating the last ``seqId`` is dropped
  (``out_of_order``).
- ``checksum``: signed CRC32 of ``bid1px:bid1sz:ask1px:ask1sz:...`` over the top 25 levels of
  each side (a side that runs out leaves its part out), **from the original strings**; each
  level keeps its ``px:sz`` text for it. OKX now sends 0 on every frame, so 0 means "no
  checksum" and any other value is checked (a mismatch drops the book, ``checksum``).

Quirk: the window is fixed at 400 levels and the venue only reports changes inside it, so the
kept book is the whole window whatever ``max_levels`` asks for (a shallower book would mistake
the level that moves into the window after a delete for the one right behind its last).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping, Sequence
from itertools import chain, zip_longest
from operator import itemgetter
from typing import Any

from services.common.exceptions import RecordError
from services.producer.books.base import CHANGED, UNCHANGED, BookStatus
from services.producer.books.book import Level, OrderBook

NAME = "okx"
CHANNEL = "books"
#: levels per side the ``books`` channel keeps
WINDOW = 400
#: levels per side in the checksum
CHECKSUM_LEVELS = 25
#: texts kept beyond twice the window before the dropped levels' texts are pruned
_SLACK = 64
_INF = math.inf

_PX_SZ = itemgetter(0, 1)


def subscribe_messages(venue_symbols: Sequence[str], max_levels: int = WINDOW) -> list[str]:
    """One subscribe for the ``books`` channel of every instrument (the depth is fixed)."""
    del max_levels
    args = [{"channel": CHANNEL, "instId": s} for s in venue_symbols]
    return [json.dumps({"op": "subscribe", "args": args})]


def read_levels(levels: Any, key: str,
                negate: bool = False) -> tuple[list[Level], list[tuple[float, list[str]]]]:
    """``[[px, sz, ...], ...]`` -> (checked levels, (sort key, the level itself) for the
    checksum), all read before any is applied. Both must be decimal strings (the checksum uses
    them), the price finite and > 0, the size finite and >= 0; anything else is ``bad_level``.
    ``negate``: the sort key is -price (bids)."""
    if levels.__class__ is not list:
        if levels is None:
            return [], []
        raise RecordError("bad_level", f"{key}={levels!r}"[:80])
    out: list[Level] = []
    texts: list[tuple[float, list[str]]] = []
    append, text_append = out.append, texts.append
    for level in levels:
        if level.__class__ is not list or not 2 <= len(level) <= 4:
            raise RecordError("bad_level", f"{key} level={level!r}"[:80])
        px, sz = level[0], level[1]
        if px.__class__ is not str or sz.__class__ is not str:
            raise RecordError("bad_level", f"{key} level={level!r}"[:80])
        try:
            price, size = float(px), float(sz)
        except ValueError:
            raise RecordError("bad_level", f"{key} level={level!r}"[:80]) from None
        if not (0.0 < price < _INF and 0.0 <= size < _INF):
            raise RecordError("bad_level", f"{key} level={level!r}"[:80])
        append((price, size))
        text_append((-price if negate else price, level))
    return out, texts


def checksum(book: OrderBook, bid_texts: Mapping[float, list[str]],
             ask_texts: Mapping[float, list[str]]) -> int:
    """OKX's signed CRC32 over the top 25 levels, bid and ask interleaved, ``px:sz`` each.

    The texts are the levels as received, keyed like the book's sides (bids by -price); the
    text is assembled in C (no per-level formatting).
    """
    bids = map(bid_texts.__getitem__, book.bid_side.keys[:CHECKSUM_LEVELS])
    asks = map(ask_texts.__getitem__, book.ask_side.keys[:CHECKSUM_LEVELS])
    # bid1, ask1, bid2, ...; a side that runs out leaves its part out (the None fill)
    levels = filter(None, chain.from_iterable(zip_longest(bids, asks)))
    crc = zlib.crc32(":".join(chain.from_iterable(map(_PX_SZ, levels))).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def depth_parts(frame: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """A decoded frame -> ``[(instId, message)]``, one per ``data`` item with ``action`` added,
    or None when it is not a ``books`` data frame; a books frame of the wrong shape is
    RecordError."""
    if frame.__class__ is not dict:
        return None
    arg = frame.get("arg")
    if arg.__class__ is not dict or arg.get("channel") != CHANNEL or "data" not in frame:
        return None
    inst_id, action, data = arg.get("instId"), frame.get("action"), frame["data"]
    if inst_id.__class__ is not str or action not in ("snapshot", "update"):
        raise RecordError("bad_field", f"books frame {inst_id!r} {action!r}"[:80])
    if data.__class__ is not list or any(item.__class__ is not dict for item in data):
        raise RecordError("bad_field", "books data")
    return [(inst_id, {**item, "action": action}) for item in data]


class OkxBook:
    """One instrument's book from the ``books`` channel (a :class:`DepthSync`)."""

    def __init__(self, venue_symbol: str, max_levels: int) -> None:
        del max_levels  # the window is the venue's (see the module docstring)
        self.venue_symbol = venue_symbol
        self.book = OrderBook(WINDOW)
        #: sort key (bids: -price) -> the level as received, for the checksum; a superset of
        #: the kept levels (see Kraken's book)
        self._bid_texts: dict[float, list[str]] = {}
        self._ask_texts: dict[float, list[str]] = {}
        #: the last seqId applied; None before a snapshot or on frames that carry none
        self._seq: int | None = None
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
        self._bid_texts.clear()
        self._ask_texts.clear()
        self._seq = None
        self._synced = False

    def on_snapshot(self, snapshot: Mapping[str, Any]) -> BookStatus:
        """A ``snapshot`` data item (OKX sends it on the socket after subscribing)."""
        if snapshot.__class__ is not dict:
            raise RecordError("bad_field", f"books message {type(snapshot).__name__}")
        return self._load(snapshot)

    def on_update(self, message: Mapping[str, Any]) -> BookStatus:
        """One data item of a ``books`` frame, with its ``action`` (see :func:`depth_parts`)."""
        if message.__class__ is not dict:
            raise RecordError("bad_field", f"books message {type(message).__name__}")
        if message.get("action") == "snapshot":
            return self._load(message)
        if not self._synced:
            if self._requested:
                return UNCHANGED  # still waiting for the resubscription's snapshot
            self._requested = True
            return BookStatus(False, "unsynced", "resubscribe")
        try:
            seq, prev = _seq_ids(message, self._seq is not None)
            expected = _checksum_field(message.get("checksum"))
        except RecordError:
            # an update the book cannot read is one it misses: it is no longer right
            return self._resync("bad_level")
        if seq is not None and self._seq is not None and prev != self._seq:
            if seq == self._seq:
                return BookStatus(False, "out_of_order")  # the last message again
            return self._resync("gap")
        try:
            # read and applied in one pass; the texts are a superset (pruned by size)
            changed = self.book.apply_raw(message.get("bids"), message.get("asks"),
                                          self._bid_texts, self._ask_texts, max_items=4)
        except RecordError:
            return self._resync("bad_level")
        bound = 2 * WINDOW + _SLACK
        if len(self._bid_texts) > bound or len(self._ask_texts) > bound:
            self._prune()
        if seq is not None:
            self._seq = seq
        if expected and checksum(self.book, self._bid_texts, self._ask_texts) != expected:
            return self._resync("checksum")
        if changed and self.book.crossed():
            return self._resync("crossed")
        return CHANGED if changed else UNCHANGED

    def _load(self, message: Mapping[str, Any]) -> BookStatus:
        self._requested = False  # this is the snapshot a resubscribe waits for
        try:
            seq, _ = _seq_ids(message, False)
            expected = _checksum_field(message.get("checksum"))
            bids, bid_texts = read_levels(message.get("bids"), "bids", negate=True)
            asks, ask_texts = read_levels(message.get("asks"), "asks")
        except RecordError:
            return self._resync("bad_level")
        self._clear()
        self.book.load(bids, asks)
        self._bid_texts.update(bid_texts)
        self._ask_texts.update(ask_texts)
        if expected and checksum(self.book, self._bid_texts, self._ask_texts) != expected:
            return self._resync("checksum")
        if self.book.crossed():
            return self._resync("crossed")
        self._seq = seq
        self._synced = True
        return CHANGED

    def _prune(self) -> None:
        """Forget the texts of levels no longer kept (bounded memory)."""
        bids, asks = self._bid_texts, self._ask_texts
        self._bid_texts = {k: bids[k] for k in self.book.bid_side.keys}
        self._ask_texts = {k: asks[k] for k in self.book.ask_side.keys}

    def _resync(self, problem: str) -> BookStatus:
        """Empty the book and ask for a new subscription (once until its snapshot comes)."""
        was_requested = self._requested
        self._clear()
        self._requested = True
        return BookStatus(True, problem, None if was_requested else "resubscribe")


def _seq_ids(message: Mapping[str, Any], required: bool) -> tuple[int | None, int | None]:
    """(seqId, prevSeqId) as ints, (None, None) when absent and not ``required`` (a book
    started with sequence ids must keep them)."""
    seq, prev = message.get("seqId"), message.get("prevSeqId")
    if seq is None and prev is None and not required:
        return None, None
    if seq.__class__ is not int or prev.__class__ is not int:
        raise RecordError("bad_level", f"seqId={seq!r} prevSeqId={prev!r}"[:80])
    return seq, prev


def _checksum_field(value: Any) -> int:
    """``checksum`` as a signed 32-bit int; 0 (or absent) means none was sent."""
    if value is None:
        return 0
    if value.__class__ is not int or not -(1 << 31) <= value < 1 << 31:
        raise RecordError("bad_level", f"checksum={value!r}"[:80])
    return value


def new_sync(venue_symbol: str, max_levels: int) -> OkxBook:
    """The book of one instrument (kept at the channel's 400 levels)."""
    return OkxBook(venue_symbol, max_levels)
