"""Binance spot book: the ``depth@100ms`` diff stream synced to a REST snapshot.

One recorded diff (binance.jsonl, BTCUSDT, shortened)::

    {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,
     "s":"BTCUSDT","U":50093239203,"u":50093239207,"b":[["55653.87000000","0.00000000"]],
     "a":[["61838.04000000","0.32332000"],["61862.51000000","0.00000000"]]}}

- ``U``/``u``: first and last book update id in this diff; ``b``/``a``: bid/ask levels
  ``[price, quantity]`` with the absolute quantity, "0.00000000" removing the level.
- The REST snapshot ``GET /api/v3/depth?symbol=BTCUSDT&limit=1000`` answers
  ``{"lastUpdateId": 50093239218, "bids": [...], "asks": [...]}``.

Binance's documented sync: buffer the diffs; fetch a snapshot; drop the buffered diffs with
``u`` <= ``lastUpdateId``; the first one applied must have ``U`` <= ``lastUpdateId`` + 1 <=
``u``; after it each diff must continue the last: ``U`` = previous ``u`` + 1 (a diff that
overlaps the last one, ``U`` <= previous ``u`` < ``u``, is applied too, as the docs' current
wording allows; it holds absolute sizes). A diff with ``u`` <= the last applied id is an old or
repeated one: dropped (``out_of_order``). A hole (``U`` > previous ``u`` + 1) is a ``gap``: the
book is emptied and a new snapshot needed. A snapshot older than every buffered diff cannot be
bridged (``stale_snapshot``): the buffer is kept and another snapshot asked for.

The diffs cover the whole book while the kept book is the best ``max_levels``: it keeps a
trusted edge (see :mod:`services.producer.books.book`; a snapshot side exactly as long as a
REST limit counts as cut short), so the kept levels are always the venue's best ones, with no
hole. Once deletes thin a side below half of ``max_levels`` with more beyond the edge, the book
asks for a fresh snapshot (``need="snapshot"``, problem None) and goes on serving; the diffs
meanwhile are kept (at most :data:`MAX_BUFFERED`) and applied again on top of the snapshot
where newer than it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple

from services.common.exceptions import RecordError
from services.producer.books.base import (
    CHANGED,
    UNCHANGED,
    BookStatus,
    apply_levels,
    read_best,
    read_levels,
)
from services.producer.books.book import Level, OrderBook

NAME = "binance"
REST_URL = "https://api.binance.com"
#: depth limits the REST endpoint accepts (weight grows with the limit)
SNAPSHOT_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)
#: diffs kept while waiting for a snapshot: 100 s of the 100 ms stream
MAX_BUFFERED = 1000

_NEED_SNAPSHOT = BookStatus(False, None, "snapshot")


class _Diff(NamedTuple):
    first_id: int  # U
    last_id: int   # u
    bids: list[Level]
    asks: list[Level]


def depth_parts(decoded: Any) -> list[tuple[str, Mapping[str, Any]]] | None:
    """A decoded frame -> [(venue symbol, depthUpdate payload)], or None for any other frame.

    Takes the combined-stream form ``{"stream": ..., "data": {...}}`` and a bare payload.
    """
    if decoded.__class__ is not dict:
        return None
    payload = decoded.get("data") if "stream" in decoded else decoded
    if payload.__class__ is not dict or payload.get("e") != "depthUpdate":
        return None
    symbol = payload.get("s")
    if symbol.__class__ is not str:
        return None
    return [(symbol, payload)]


def snapshot_url(venue_symbol: str, limit: int = 1000, base_url: str = REST_URL) -> str:
    """The REST depth snapshot to sync ``venue_symbol``'s diff stream with."""
    if limit not in SNAPSHOT_LIMITS:
        raise ValueError(f"Binance depth limit must be one of {SNAPSHOT_LIMITS}, got {limit}")
    return f"{base_url.rstrip('/')}/api/v3/depth?symbol={venue_symbol}&limit={limit}"


def pair_of_url(url: str) -> str | None:
    """The symbol of a REST depth URL (a recording's ``url``), None for any other URL."""
    path, _, query = url.partition("?")
    if not path.endswith("/api/v3/depth"):
        return None
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if key == "symbol" and value:
            return value
    return None


def new_sync(venue_symbol: str, max_levels: int) -> BinanceDepthSync:
    return BinanceDepthSync(venue_symbol, max_levels)


class BinanceDepthSync:
    """One Binance market's book, kept in update-id order."""

    def __init__(self, venue_symbol: str, max_levels: int) -> None:
        self.venue_symbol = venue_symbol
        self.book = OrderBook(max_levels, trusted_edge=True)
        #: a side below this many levels with more beyond the edge asks for a snapshot: half
        #: of what the last snapshot gave (a REST limit below max_levels: no endless asking)
        self.thin_levels = (max_levels + 1) // 2
        #: while a thin book waits for its fresh snapshot: the messages applied since it asked
        #: (None: not waiting), and whether the full buffer had to let one go
        self._refresh: deque[Mapping[str, Any]] | None = None
        self._refresh_lost = False
        #: id of the last diff applied (or the snapshot's lastUpdateId); None while unsynced
        self._last_id: int | None = None
        self._buffer: deque[_Diff] = deque(maxlen=MAX_BUFFERED)
        #: a snapshot was asked for and has not come yet
        self._requested = False

    @property
    def synced(self) -> bool:
        return self._last_id is not None

    @property
    def last_update_id(self) -> int | None:
        return self._last_id

    def reset(self) -> None:
        """Connection lost (or a snapshot fetch failed): empty, unsynced, the next diff asks
        for a snapshot again."""
        self.book.clear()
        self._last_id = None
        self._buffer.clear()
        self._requested = False
        self._refresh = None

    def on_update(self, message: Mapping[str, Any]) -> BookStatus:
        """One depthUpdate payload (the ``data`` of a combined-stream frame)."""
        last_id = self._last_id
        try:
            if last_id is not None:
                return self._apply_message(message, last_id)
            diff = _read_diff(message)
        except RecordError:
            if self._last_id is None:
                self._buffer.clear()  # the buffer now has a hole: start it again
                return BookStatus(False, "bad_level", self._need())
            return self._resync("bad_level")
        self._buffer_diff(diff)
        return self._ask_snapshot()

    def _apply_message(self, message: Mapping[str, Any], last_id: int) -> BookStatus:
        """:meth:`_apply` for a synced book, read and applied in one pass (a bad level raises
        with the book part-changed; the caller resyncs it)."""
        first_id = _update_id(message.get("U"), "U")
        diff_last = _update_id(message.get("u"), "u")
        if first_id > diff_last:
            raise RecordError("bad_level", f"U={first_id} > u={diff_last}")
        if diff_last <= last_id:
            return BookStatus(False, "out_of_order")
        if first_id > last_id + 1:
            return self._resync("gap")
        self._last_id = diff_last
        book = self.book
        changed = book.apply_raw(message.get("b"), message.get("a"))
        if changed and book.crossed():
            return self._resync("crossed")
        refresh = self._refresh
        if refresh is not None:
            if len(refresh) == MAX_BUFFERED:
                self._refresh_lost = True
            refresh.append(message)
        elif changed and book.thin(self.thin_levels):
            self._refresh = deque([message], maxlen=MAX_BUFFERED)
            self._refresh_lost = False
            self._requested = True
            return BookStatus(True, None, "snapshot")
        return CHANGED if changed else UNCHANGED

    def on_snapshot(self, snapshot: Mapping[str, Any]) -> BookStatus:
        """The REST snapshot body; bridges it to the buffered diffs or asks for another."""
        if self._last_id is not None and self._refresh is None:
            return UNCHANGED  # a late answer to an earlier request: the book is already in sync
        self._requested = False
        try:
            snap_id = _update_id(snapshot.get("lastUpdateId"), "lastUpdateId")
            # the book keeps max_levels: the rest of the (up to 5000) levels stay unread
            keep = self.book.max_levels + 1
            raw_bids, raw_asks = snapshot.get("bids"), snapshot.get("asks")
            bids, _ = read_best(raw_bids, keep, descending=True)
            asks, _ = read_best(raw_asks, keep, descending=False)
        except (RecordError, AttributeError):
            return BookStatus(False, "bad_level", self._need())
        # a side as long as a REST limit may have been cut there
        complete = not any(side.__class__ is list and len(side) in SNAPSHOT_LIMITS
                           for side in (raw_bids, raw_asks))
        if self._refresh is not None:
            return self._refreshed(snap_id, bids, asks, complete)
        buffer = self._buffer
        while buffer and buffer[0].last_id <= snap_id:
            buffer.popleft()
        # the first diff kept must bridge it: U <= lastUpdateId + 1 <= u (the rest continue)
        if buffer and buffer[0].first_id > snap_id + 1:
            # updates between the snapshot and the oldest buffered diff are lost
            return BookStatus(False, "stale_snapshot", self._need())
        self._load(bids, asks, complete)
        self._last_id = snap_id
        pending = list(buffer)
        buffer.clear()
        for diff in pending:
            status = self._apply(diff, self._last_id)
            if status.need is not None:
                return status
        if self.book.crossed():
            return self._resync("crossed")
        return CHANGED

    def _load(self, bids: list[Level], asks: list[Level], complete: bool) -> None:
        book = self.book
        book.load(bids, asks, complete)
        self.thin_levels = (min(book.max_levels, *book.depth()) + 1) // 2

    def _refreshed(self, snap_id: int, bids: list[Level], asks: list[Level],
                   complete: bool) -> BookStatus:
        """The fresh snapshot a thin (still synced) book asked for, bridged to the messages
        applied since; one older than those, or after the buffer let one go, is stale."""
        refresh = self._refresh
        assert refresh is not None  # noqa: S101 - the caller checked
        if self._refresh_lost or (refresh and _update_id(refresh[0].get("U"), "U") > snap_id + 1):
            self._refresh = deque(maxlen=MAX_BUFFERED)  # start keeping again, from now
            self._refresh_lost = False
            self._requested = True
            return BookStatus(False, "stale_snapshot", "snapshot")
        self._refresh = None
        self._load(bids, asks, complete)
        self._last_id = snap_id
        for message in refresh:
            if _update_id(message.get("u"), "u") <= snap_id:
                continue  # already in the snapshot
            status = self._apply_message(message, self._last_id)
            if status.problem is not None or not self.synced:
                return status
        if self.book.crossed():
            return self._resync("crossed")
        return CHANGED

    def _apply(self, diff: _Diff, last_id: int) -> BookStatus:
        """The general rule: old -> dropped, a hole -> gap, else applied (overlap included)."""
        if diff.last_id <= last_id:
            return BookStatus(False, "out_of_order")
        if diff.first_id > last_id + 1:
            return self._resync("gap")
        self._last_id = diff.last_id
        changed = apply_levels(self.book, diff.bids, diff.asks)
        if changed and self.book.crossed():
            return self._resync("crossed")
        return CHANGED if changed else UNCHANGED

    def _buffer_diff(self, diff: _Diff) -> None:
        buffer = self._buffer
        if buffer:
            newest = buffer[-1].last_id
            if diff.last_id <= newest:
                return  # repeated or old
            if diff.first_id > newest + 1:
                buffer.clear()  # a hole in the buffer: only what follows it can be bridged
        buffer.append(diff)

    def _ask_snapshot(self) -> BookStatus:
        return _NEED_SNAPSHOT if self._need() else UNCHANGED

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


def _read_diff(message: Mapping[str, Any]) -> _Diff:
    first_id = _update_id(message.get("U"), "U")
    last_id = _update_id(message.get("u"), "u")
    if first_id > last_id:
        raise RecordError("bad_level", f"U={first_id} > u={last_id}")
    return _Diff(first_id, last_id, read_levels(message.get("b")), read_levels(message.get("a")))


def _update_id(value: Any, key: str) -> int:
    if value.__class__ is not int:
        raise RecordError("bad_level", f"{key}={value!r}"[:80])
    return value
