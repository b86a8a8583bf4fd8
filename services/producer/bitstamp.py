"""Bitstamp WebSocket API v2: ``order_book`` (or ``diff_order_book``) for the best bid/ask,
``live_trades`` for trades.

One recorded frame (bitstamp.jsonl, ETH/USD)::

    {"data":{"timestamp":"1641343702","microtimestamp":"1641343702384349",
     "bids":[["3802.90","0.00000000"],["3802.52","0.56060000"]],"asks":[]},
     "channel":"diff_order_book_ethusd","event":"data"}

- ``channel``: ``<channel>_<pair>``, the pair lower-case without separator (``btcusd``);
  ``event``: ``data`` for book frames, ``trade`` for trades, ``bts:*`` for control frames.
- ``bids``/``asks``: ``[price, amount]`` decimal strings in the quote currency (USD here).
  In a diff the amount is the level's new absolute amount, zero removes the level.
- ``microtimestamp``: the venue's time of the update, epoch **microseconds** as a string
  (-> ``exchange_ts_ms`` and the quote's update id); ``timestamp`` the same in seconds.

Trade frames (``live_trades_<pair>``, event ``trade``): ``data`` = ``id``, ``amount_str`` and
``price_str`` (strings; the plain ``amount``/``price`` are JSON numbers, not used),
``type`` (0 = buy, 1 = sell, the **taker's** side), ``microtimestamp``, ``buy_order_id``,
``sell_order_id``.

Which book channel: live, the connector subscribes ``order_book_<pair>``: every frame is the
full top 100 levels, best first, so its first bid and ask are the best quote and a reconnect
needs no resynchronisation. ``diff_order_book_<pair>`` needs a REST snapshot to start from
(``GET /api/v2/order_book/<pair>``), which a connector without I/O cannot fetch; but it is all
the recording holds. So :class:`BookParser` also keeps a small book per pair for recordings:
a REST snapshot (as a frame, see :func:`snapshot_frame`) or an ``order_book`` frame starts it,
diffs with a ``microtimestamp`` after the book's are applied, older ones dropped (buffered
before the snapshot), and best = max bid / min ask; a quote is published when the top changes.
The book is the one piece of state in a connector: each :class:`BookParser` owns its books, and
``VENUE.new_parser`` gives every frame processor (a connection, a replay stream) its own, reset
when the connection is forgotten.

Quirks: trade ``id`` s are numbered across all of Bitstamp's markets, so per pair they only
increase (holes are other pairs' trades) and cannot show a lost trade; this connector gives no
trade sequence (the frame processor treats trade ids as dense). ``bts:request_reconnect``: the
venue asks the client to reconnect (maintenance) before it closes the connection; it parses to
the kind :data:`RECONNECT_KIND`, listed in ``VENUE.reconnect_kinds``: the feed then opens a
replacement connection and switches over without a gap, as before an age limit.
``bts:subscription_succeeded`` and ``bts:heartbeat`` answers are control frames; ``bts:error``
is ``venue_error``. Bitstamp lists ``usdtusd`` and ``usdcusd``, subscribed (book only) when
another venue needs a live rate.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from services.common.exceptions import RecordError
from services.common.messages import PriceRecord, Quote, Trade
from services.producer.books import bitstamp as books
from services.producer.connector import (
    USD,
    DepthSupport,
    FxToUsd,
    Parsed,
    SeqSpan,
    Venue,
    canonical,
    check_book,
    positive,
    rate_for,
    seq_number,
    suffix_ccy,
)
from services.producer.decoding import decode

NAME = "bitstamp"
WS_URL = "wss://ws.bitstamp.net"
#: what the live connector subscribes to, per pair
CHANNELS = ("order_book", "live_trades")
SYMBOLS: dict[str, str] = {"BTC-USD": "btcusd", "ETH-USD": "ethusd"}
FX_SYMBOLS: dict[str, str] = {"USDT-USD": "usdtusd", "USDC-USD": "usdcusd"}
QUOTE_CCY = USD
#: the REST endpoint a diff book starts from (the recorder fetched it; see snapshot_frame)
REST_ORDER_BOOK_URL = "https://www.bitstamp.net/api/v2/order_book/"
REST_BASE_URL = "https://www.bitstamp.net"
REST_ORDER_BOOK_PATH = "/api/v2/order_book"

#: The kind of a ``bts:request_reconnect`` frame: the venue wants a new connection.
RECONNECT_KIND = "bts:request_reconnect"
#: Kinds after which the feed should open a new connection (see the module docstring).
RECONNECT_KINDS = frozenset({RECONNECT_KIND})
#: Events that carry no prices but prove the connection is alive.
CONTROL_EVENTS = frozenset({"bts:subscription_succeeded", "bts:unsubscription_succeeded",
                            "bts:heartbeat"})
#: Channels of the venue this producer does not read (a recorder may subscribe to them).
OTHER_CHANNELS = ("detail_order_book_", "full_order_book_", "live_orders_")
_TAKER_SIDE = {0: "buy", 1: "sell", "0": "buy", "1": "sell"}
#: quote currencies a pair may end in, longest first
_QUOTE_ASSETS = ("USDT", "USDC", "PAX", "USD", "EUR", "GBP", "BTC", "ETH")
_CCY: dict[str, str] = {}
_INF = float("inf")
_TRADES = "live_trades_"
_BOOK = "order_book_"
_DIFF = "diff_order_book_"

_Records = tuple[list[PriceRecord], list[SeqSpan | None]]
#: (bid, bid amount, ask, ask amount) in the quote currency
_Top = tuple[float, float, float, float]


def quote_ccy_of(venue_symbol: str) -> str:
    """``btcusd`` -> USD, ``ethbtc`` -> BTC, ``usdtusd`` -> USD ('' when not recognised)."""
    ccy = _CCY.get(venue_symbol)
    if ccy is None:
        ccy = _CCY[venue_symbol] = suffix_ccy(venue_symbol.upper(), _QUOTE_ASSETS)
    return ccy


def connect_url(base_url: str, venue_symbols: Sequence[str],
                quote_only: Sequence[str] = ()) -> str:
    """Bitstamp takes its subscriptions as messages, so the URL is the base URL."""
    del venue_symbols, quote_only
    return base_url


def subscribe_messages(venue_symbols: Sequence[str], quote_only: Sequence[str] = ()) -> list[str]:
    """One ``bts:subscribe`` per channel and pair (as recorded); rate markets get the book."""
    channels = [f"{ch}_{s}" for ch in CHANNELS for s in venue_symbols]
    channels += [f"order_book_{s}" for s in quote_only]
    return [json.dumps({"event": "bts:subscribe", "data": {"channel": ch}}) for ch in channels]


def snapshot_frame(url: str, body: str) -> str | None:
    """A recorded REST order book (``.../order_book/<pair>``) as the ``order_book_<pair>``
    frame it matches field for field, so a replay can start a diff book from it; the body is
    kept verbatim. None for any other URL."""
    if not url.startswith(REST_ORDER_BOOK_URL):
        return None
    pair = url[len(REST_ORDER_BOOK_URL):].partition("?")[0].strip("/")
    if not (pair.isascii() and pair.isalnum()):
        return None
    return f'{{"data":{body},"channel":"order_book_{pair}","event":"data"}}'


# --- pure parsing -------------------------------------------------------------------------

def micro_ts(data: Mapping[str, Any]) -> int:
    """``microtimestamp`` (epoch µs, digit string) as an int: the update's time and id."""
    value = data.get("microtimestamp")
    number = seq_number(value)
    if number is None or number <= 0:
        if value is None:
            raise RecordError("missing_field", "microtimestamp")
        raise RecordError("bad_time", f"microtimestamp={value!r}"[:80])
    return number


def _side(data: Mapping[str, Any], key: str) -> list[Any]:
    levels = data.get(key)
    if levels.__class__ is not list:
        if levels is None:
            raise RecordError("missing_field", key)
        raise RecordError("bad_field", f"{key}={levels!r}"[:80])
    return levels


def _level(level: Any, key: str) -> tuple[Any, Any]:
    if level.__class__ is not list or len(level) < 2:
        raise RecordError("bad_field", f"{key} level={level!r}"[:80])
    return level[0], level[1]


def amount(value: Any, key: str) -> float:
    """A diff's level amount: finite and >= 0 (zero removes the level), else ``bad_size``."""
    if value.__class__ is str:
        try:
            number = float(value)
        except ValueError:
            raise RecordError("bad_size", f"{key}={value!r}"[:80]) from None
        if 0.0 <= number < _INF:
            return number
        raise RecordError("bad_size", f"{key}={value!r}"[:80])
    if value is None:
        raise RecordError("missing_field", key)
    if value.__class__ in (int, float) and value == 0:
        return 0.0
    return positive(value, key, "bad_size")


def diff_levels(levels: list[Any], key: str) -> list[tuple[float, float]]:
    """A diff's side -> ``(price, amount)`` pairs, all checked before any is applied."""
    out = []
    append = out.append
    for level in levels:
        # the common case inline: two decimal strings, a finite price > 0 and an amount >= 0
        if level.__class__ is list and len(level) == 2:
            price_text, qty_text = level
            if price_text.__class__ is str and qty_text.__class__ is str:
                try:
                    price, qty = float(price_text), float(qty_text)
                except ValueError:
                    pass
                else:
                    if 0.0 < price < _INF and 0.0 <= qty < _INF:
                        append((price, qty))
                        continue
        price, qty = _level(level, key)
        append((positive(price, key, "bad_price"), amount(qty, key)))
    return out


def top_of(data: Mapping[str, Any]) -> _Top | None:
    """An ``order_book`` frame's (or REST snapshot's) best levels: the first of each side,
    or None when a side is empty."""
    bids, asks = _side(data, "bids"), _side(data, "asks")
    if not bids or not asks:
        return None
    bid_px, bid_qty = _level(bids[0], "bids")
    ask_px, ask_qty = _level(asks[0], "asks")
    return (positive(bid_px, "bids", "bad_price"), positive(bid_qty, "bids", "bad_size"),
            positive(ask_px, "asks", "bad_price"), positive(ask_qty, "asks", "bad_size"))


def make_quote(
    pair: str, symbol: str, top: _Top, ts_us: int, recv_ts_ms: int, fx_to_usd: FxToUsd,
) -> Quote:
    """The quote for a pair's top of book at venue time ``ts_us``."""
    ccy = quote_ccy_of(pair)
    fx = rate_for(fx_to_usd, ccy)
    bid, bid_size, ask, ask_size = top
    check_book(bid, ask)
    return Quote(
        exchange=NAME,
        symbol=symbol,
        venue_symbol=pair,
        bid=bid * fx,
        bid_size=bid_size,
        ask=ask * fx,
        ask_size=ask_size,
        quote_ccy=ccy,
        fx_to_usd=fx,
        ts_ms=recv_ts_ms,
        recv_ts_ms=recv_ts_ms,
        exchange_ts_ms=ts_us // 1000,
    )


def parse_trade(
    data: Any, pair: str, recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: FxToUsd,
) -> _Records:
    """A ``live_trades`` payload -> one trade; no sequence (ids are venue-wide)."""
    symbol = canonical(symbol_map, pair, "channel")
    if data.__class__ is not dict:
        raise RecordError("bad_field", "trade data")
    kind = data.get("type")
    side = _TAKER_SIDE.get(kind) if kind.__class__ in (int, str) else None
    if side is None:
        if kind is None:
            raise RecordError("missing_field", "type")
        raise RecordError("bad_field", f"type={kind!r}"[:80])
    trade_id = data.get("id")
    if trade_id is None:
        raise RecordError("missing_field", "id")
    ccy = quote_ccy_of(pair)
    fx = rate_for(fx_to_usd, ccy)
    trade = Trade(
        exchange=NAME,
        symbol=symbol,
        venue_symbol=pair,
        price=positive(data.get("price_str"), "price_str", "bad_price") * fx,
        size=positive(data.get("amount_str"), "amount_str", "bad_size"),
        side=side,
        trade_id=str(trade_id),
        quote_ccy=ccy,
        fx_to_usd=fx,
        ts_ms=recv_ts_ms,
        recv_ts_ms=recv_ts_ms,
        exchange_ts_ms=micro_ts(data) // 1000,
    )
    return [trade], [None]


# --- the diff book (recordings only) ------------------------------------------------------

class DiffBook:
    """One pair's levels from a snapshot plus diffs; prices and amounts as floats.

    Each side is a dict (price -> amount) and a heap of its prices (bids negated) from which
    removed levels are popped lazily, so the best price costs O(log n) however deep the book.
    """

    __slots__ = ("ask_heap", "asks", "bid_heap", "bids", "ts_us")

    def __init__(self, ts_us: int, bids: dict[float, float], asks: dict[float, float]) -> None:
        self.ts_us = ts_us
        self.bids = bids
        self.asks = asks
        self.bid_heap = [-p for p in bids]
        self.ask_heap = list(asks)
        heapq.heapify(self.bid_heap)
        heapq.heapify(self.ask_heap)

    @classmethod
    def from_snapshot(cls, ts_us: int, bids: list[Any], asks: list[Any]) -> DiffBook:
        """Every level of a snapshot (zero amounts, never sent, are left out)."""
        return cls(ts_us,
                   {p: q for p, q in diff_levels(bids, "bids") if q},
                   {p: q for p, q in diff_levels(asks, "asks") if q})

    def apply(self, ts_us: int, bids: list[tuple[float, float]],
              asks: list[tuple[float, float]]) -> None:
        """Set (or, at amount zero, remove) each level."""
        self.ts_us = ts_us
        book, heap = self.bids, self.bid_heap
        for price, qty in bids:
            if qty:
                if price not in book:
                    heapq.heappush(heap, -price)
                book[price] = qty
            else:
                book.pop(price, None)
        book, heap = self.asks, self.ask_heap
        for price, qty in asks:
            if qty:
                if price not in book:
                    heapq.heappush(heap, price)
                book[price] = qty
            else:
                book.pop(price, None)

    @property
    def best_bid(self) -> float | None:
        heap, book = self.bid_heap, self.bids
        while heap and -heap[0] not in book:
            heapq.heappop(heap)
        return -heap[0] if heap else None

    @property
    def best_ask(self) -> float | None:
        heap, book = self.ask_heap, self.asks
        while heap and heap[0] not in book:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def top(self) -> _Top | None:
        """(best bid, its amount, best ask, its amount), or None while a side is empty."""
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return None
        return bid, self.bids[bid], ask, self.asks[ask]


class BookParser:
    """A Bitstamp frame parser (:class:`~services.producer.connector.FrameParser`) with the
    diff books of the pairs it has seen: state, but no I/O and no clock."""

    def __init__(self) -> None:
        #: pair -> (µs, bids, asks) of its last full snapshot, levels not yet read
        self._snapshots: dict[str, tuple[int, list[Any], list[Any]]] = {}
        self._books: dict[str, DiffBook] = {}
        #: pair -> the top of book last quoted from a snapshot or the diff book
        self._tops: dict[str, _Top] = {}

    def reset(self) -> None:
        """Forget every book (a new connection, a new replay pass)."""
        self._snapshots.clear()
        self._books.clear()
        self._tops.clear()

    def book(self, pair: str) -> DiffBook | None:
        return self._books.get(pair)

    def __call__(
        self,
        raw: str | bytes,
        recv_ts_ms: int,
        *,
        symbol_map: Mapping[str, str] | None = None,
        fx_to_usd: FxToUsd = 1.0,
    ) -> Parsed:
        """One text frame -> Parsed: the channel family (or event) and records."""
        msg = decode(raw)
        if msg.__class__ is not dict:
            raise RecordError("unknown_type", type(msg).__name__)
        event, channel = msg.get("event"), msg.get("channel")
        if event == "data" and channel.__class__ is str:
            data = msg.get("data")
            if channel.startswith(_DIFF):
                return self._diff(channel[len(_DIFF):], data, recv_ts_ms,
                                  _symbols(symbol_map), fx_to_usd)
            if channel.startswith(_BOOK):
                return self._snapshot(channel[len(_BOOK):], data, recv_ts_ms,
                                      _symbols(symbol_map), fx_to_usd)
            for other in OTHER_CHANNELS:
                if channel.startswith(other):
                    return Parsed(other.rstrip("_"), [])
            raise RecordError("unknown_type", repr(channel)[:80])
        if event == "trade" and channel.__class__ is str and channel.startswith(_TRADES):
            records, seqs = parse_trade(msg.get("data"), channel[len(_TRADES):], recv_ts_ms,
                                        _symbols(symbol_map), fx_to_usd)
            return Parsed("live_trades", records, seqs)
        if event.__class__ is str:
            if event in CONTROL_EVENTS:
                return Parsed(event, [])
            if event == RECONNECT_KIND:
                return Parsed(RECONNECT_KIND, [])
            if event == "bts:error":
                data = msg.get("data")
                detail = data.get("message") if data.__class__ is dict else data
                raise RecordError("venue_error", str(detail)[:200])
        raise RecordError("unknown_type", repr(event if event is not None else channel)[:80])

    def _snapshot(self, pair: str, data: Any, recv_ts_ms: int, symbol_map: Mapping[str, str],
                  fx_to_usd: FxToUsd) -> Parsed:
        """``order_book``: its first levels are the best; kept to start a diff book from."""
        symbol = canonical(symbol_map, pair, "channel")
        if data.__class__ is not dict:
            raise RecordError("bad_field", "order_book data")
        ts_us = micro_ts(data)
        top = top_of(data)
        if top is None:
            return Parsed("order_book", [])
        quote = make_quote(pair, symbol, top, ts_us, recv_ts_ms, fx_to_usd)
        self._snapshots[pair] = (ts_us, data["bids"], data["asks"])
        self._books.pop(pair, None)
        self._tops[pair] = top
        return Parsed("order_book", [quote], [(ts_us, ts_us)])

    def _diff(self, pair: str, data: Any, recv_ts_ms: int, symbol_map: Mapping[str, str],
              fx_to_usd: FxToUsd) -> Parsed:
        """``diff_order_book``: applied to the pair's book; a quote when the top changed."""
        symbol = canonical(symbol_map, pair, "channel")
        if data.__class__ is not dict:
            raise RecordError("bad_field", "diff_order_book data")
        ts_us = micro_ts(data)
        bids = diff_levels(_side(data, "bids"), "bids")
        asks = diff_levels(_side(data, "asks"), "asks")
        book = self._books.get(pair)
        if book is None:
            snapshot = self._snapshots.pop(pair, None)
            if snapshot is None:
                return Parsed("diff_order_book", [])  # no snapshot yet: nothing to apply to
            book = self._books[pair] = DiffBook.from_snapshot(*snapshot)
        if ts_us <= book.ts_us:
            return Parsed("diff_order_book", [])  # sent before the snapshot was taken
        book.apply(ts_us, bids, asks)
        top = book.top()
        if top is None or top == self._tops.get(pair):
            return Parsed("diff_order_book", [])
        quote = make_quote(pair, symbol, top, ts_us, recv_ts_ms, fx_to_usd)
        self._tops[pair] = top
        return Parsed("diff_order_book", [quote], [(ts_us, ts_us)])


def _symbols(symbol_map: Mapping[str, str] | None) -> Mapping[str, str]:
    return _DEFAULT_MAP if symbol_map is None else symbol_map


#: The parser of :data:`VENUE` for direct callers (its books are shared by them); frame
#: processors take their own from ``VENUE.new_parser``.
parse_frame = BookParser()


def parse_message(
    raw: str | bytes,
    recv_ts_ms: int,
    *,
    symbol_map: Mapping[str, str] | None = None,
    fx_to_usd: FxToUsd = 1.0,
) -> list[PriceRecord]:
    """One text frame -> quote/trade records ([] for control frames), or RecordError."""
    return parse_frame(raw, recv_ts_ms, symbol_map=symbol_map, fx_to_usd=fx_to_usd).records


def _snapshot_url(venue_symbol: str, max_levels: int, base_url: str) -> str:
    """The REST order book (the whole book; the depth sync keeps ``max_levels``)."""
    del max_levels
    return books.snapshot_url(venue_symbol, f"{base_url.rstrip('/')}{REST_ORDER_BOOK_PATH}")


#: ``diff_order_book_<pair>`` from the REST order book (``books/bitstamp.py``); the venue has
#: no socket snapshot, so a resync is a new REST snapshot.
DEPTH = DepthSupport(
    channel="diff_order_book",
    depth_parts=books.depth_parts,
    new_sync=books.new_sync,
    subscribe=books.subscribe_messages,
    snapshot_url=_snapshot_url,
    rest_url=REST_BASE_URL,
    pair_of_url=books.pair_of_url,
)

VENUE = Venue(
    name=NAME,
    ws_url=WS_URL,
    channels=CHANNELS,
    symbols=SYMBOLS,
    quote_ccy=QUOTE_CCY,
    connect_url=connect_url,
    subscribe_messages=subscribe_messages,
    parse_frame=parse_frame,
    quote_ccy_of=quote_ccy_of,
    fx_symbols=FX_SYMBOLS,
    new_parser=BookParser,
    reconnect_kinds=RECONNECT_KINDS,
    snapshot_frame=snapshot_frame,
    depth=DEPTH,
)
_DEFAULT_MAP = VENUE.symbol_map()


def new_venue(symbols: Mapping[str, str] | None = None) -> Venue:
    """VENUE with a parser (and diff books) of its own; ``symbols`` replace the defaults.
    (A frame processor takes a fresh parser from ``new_parser`` anyway.)"""
    venue = replace(VENUE, parse_frame=BookParser())
    return venue if symbols is None else replace(venue, symbols=dict(symbols))

