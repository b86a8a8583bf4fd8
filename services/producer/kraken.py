"""Kraken spot WebSocket API **v1**: ``ticker`` for the best bid/ask, ``trade`` for trades.

Why v1: Kraken recommends v2 (``wss://ws.kraken.com/v2``, JSON objects, ``BTC/USD`` symbols) for
new code, but the only recorded Kraken messages (kraken.jsonl) are v1, and this connector is
tested against recorded real messages. v1 is frozen, not switched off. Point
``ARB_KRAKEN_WS_URL`` elsewhere only if it speaks v1.

One recorded frame (kraken.jsonl, XMR/USD)::

    [996,{"a":["355.24000000",27,"27.19106411"],"b":["354.32000000",6,"6.87748868"],
     "c":["355.23000000","1.20454360"],"v":["17858.85261084","33470.74135600"],
     "p":["355.33503706","349.16721624"],"t":[6481,10283],"l":["340.88000000","333.87000000"],
     "h":["368.00000000","368.00000000"],"o":["340.88000000","335.21000000"]},"ticker","XMR/USD"]

- Data frames are arrays ``[channelID, payload, channelName, pair]``; ``channelID`` is per
  connection and ignored, the pair names the market.
- ``a``/``b``: best ask/bid as ``[price, wholeLotVolume, lotVolume]``; the size used is
  ``lotVolume`` (a decimal string; ``wholeLotVolume`` is the same rounded down to an integer).
- ``c`` last trade ``[price, lotVolume]``; ``v``, ``p``, ``t``, ``l``, ``h``, ``o``:
  ``[today, last 24 h]`` statistics. None of them is used.
- There is **no timestamp** on a ticker: its quotes carry ``exchange_ts_ms`` null.

Trade frames: ``[channelID, [[price, volume, time, side, orderType, misc], ...], "trade", pair]``
with ``time`` as ``"seconds.micro"`` text (-> ``exchange_ts_ms``) and ``side`` "b"/"s", the
**taker's** side. One frame can carry several trades.

Quirks: v1 trades have **no trade id**: the id is made from the trade's time, price and volume
(unique in practice, stable across a replay), and there is no sequence number anywhere in the
ticker or trade channels, so gaps cannot be detected on this venue. Bitcoin is ``XBT``
(``XBT/USD``). Control messages are objects: ``systemStatus``, ``subscriptionStatus`` (an
``error`` status is counted as ``venue_error``), ``heartbeat`` (once a second when nothing else
is sent, which keeps a quiet market visibly live) and ``pong``. Kraken lists ``USDT/USD`` and
``USDC/USD``, subscribed (quotes only) when another venue needs a live stablecoin rate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.common.exceptions import RecordError
from services.common.messages import PriceRecord, Quote, Trade
from services.producer.books import kraken as books
from services.producer.connector import (
    USD,
    DepthSupport,
    FxToUsd,
    Parsed,
    Venue,
    canonical,
    check_book,
    positive,
    rate_for,
    records_only,
    seconds_text_to_ms,
)
from services.producer.decoding import decode

NAME = "kraken"
WS_URL = "wss://ws.kraken.com"
CHANNELS = ("ticker", "trade")
SYMBOLS: dict[str, str] = {"BTC-USD": "XBT/USD", "ETH-USD": "ETH/USD"}
FX_SYMBOLS: dict[str, str] = {"USDT-USD": "USDT/USD", "USDC-USD": "USDC/USD"}
QUOTE_CCY = USD

#: Object messages that carry no prices but prove the connection is alive.
CONTROL_EVENTS = frozenset({"systemStatus", "subscriptionStatus", "heartbeat", "pong"})
_TAKER_SIDE = {"b": "buy", "s": "sell"}

_Records = list[PriceRecord]


def quote_ccy_of(venue_symbol: str) -> str:
    """``XBT/USD`` -> USD, ``XBT/USDT`` -> USDT."""
    return venue_symbol.rpartition("/")[2]


def connect_url(base_url: str, venue_symbols: Sequence[str],
                quote_only: Sequence[str] = ()) -> str:
    """Kraken takes its subscriptions as messages, so the URL is the base URL."""
    del venue_symbols, quote_only
    return base_url


def subscribe_messages(venue_symbols: Sequence[str], quote_only: Sequence[str] = ()) -> list[str]:
    """One subscribe per channel (as recorded); rate markets get the ticker only."""
    return [
        json.dumps({"event": "subscribe", "pair": [*venue_symbols, *quote_only],
                    "subscription": {"name": "ticker"}}),
        json.dumps({"event": "subscribe", "pair": list(venue_symbols),
                    "subscription": {"name": "trade"}}),
    ]


def _level(payload: Mapping[str, Any], key: str) -> tuple[Any, Any]:
    """(price, lotVolume) of the ``a`` or ``b`` array."""
    level = payload.get(key)
    if level.__class__ is not list or len(level) < 3:
        if level is None:
            raise RecordError("missing_field", key)
        raise RecordError("bad_field", f"{key}={level!r}"[:80])
    return level[0], level[2]


def parse_ticker(
    payload: Any, pair: str, recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: FxToUsd,
) -> _Records:
    """A ticker payload -> one quote at the receive time (the venue sends no time)."""
    symbol = canonical(symbol_map, pair, "pair")
    if payload.__class__ is not dict:
        raise RecordError("bad_field", "ticker payload")
    ccy = quote_ccy_of(pair)
    fx = rate_for(fx_to_usd, ccy)
    bid_px, bid_qty = _level(payload, "b")
    ask_px, ask_qty = _level(payload, "a")
    bid = positive(bid_px, "b", "bad_price") * fx
    ask = positive(ask_px, "a", "bad_price") * fx
    check_book(bid, ask)
    return [Quote(
        exchange=NAME,
        symbol=symbol,
        venue_symbol=pair,
        bid=bid,
        bid_size=positive(bid_qty, "b", "bad_size"),
        ask=ask,
        ask_size=positive(ask_qty, "a", "bad_size"),
        quote_ccy=ccy,
        fx_to_usd=fx,
        ts_ms=recv_ts_ms,
        recv_ts_ms=recv_ts_ms,
        exchange_ts_ms=None,
    )]


def parse_trades(
    payload: Any, pair: str, recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: FxToUsd,
) -> _Records:
    """A trade payload (a list of trades) -> one trade record each."""
    symbol = canonical(symbol_map, pair, "pair")
    if payload.__class__ is not list or not payload:
        raise RecordError("bad_field", "trade payload")
    ccy = quote_ccy_of(pair)
    fx = rate_for(fx_to_usd, ccy)
    trades: _Records = []
    for item in payload:
        if item.__class__ is not list or len(item) < 4:
            raise RecordError("bad_field", f"trade={item!r}"[:80])
        px, qty, time_text, side = item[0], item[1], item[2], item[3]
        taker_side = _TAKER_SIDE.get(side) if side.__class__ is str else None
        if taker_side is None:
            raise RecordError("bad_field", f"side={side!r}")
        trades.append(Trade(
            exchange=NAME,
            symbol=symbol,
            venue_symbol=pair,
            price=positive(px, "price", "bad_price") * fx,
            size=positive(qty, "volume", "bad_size"),
            side=taker_side,
            trade_id=f"{time_text}-{px}-{qty}",
            quote_ccy=ccy,
            fx_to_usd=fx,
            ts_ms=recv_ts_ms,
            recv_ts_ms=recv_ts_ms,
            exchange_ts_ms=seconds_text_to_ms(time_text),
        ))
    return trades


_Parser = Callable[[Any, str, int, Mapping[str, str], FxToUsd], _Records]
PARSERS: dict[str, _Parser] = {
    "ticker": parse_ticker,
    "trade": parse_trades,
}


def _event(msg: dict[str, Any]) -> Parsed:
    event = msg.get("event")
    if event.__class__ is not str or event not in CONTROL_EVENTS:
        raise RecordError("unknown_type", repr(event)[:80])
    if event == "subscriptionStatus" and msg.get("status") == "error":
        raise RecordError("venue_error", str(msg.get("errorMessage"))[:200])
    return Parsed(event, [])


def parse_frame(
    raw: str | bytes,
    recv_ts_ms: int,
    *,
    symbol_map: Mapping[str, str] | None = None,
    fx_to_usd: FxToUsd = 1.0,
) -> Parsed:
    """One text frame -> Parsed: channel name (``book-*`` as ``book``) and records."""
    msg = decode(raw)
    if msg.__class__ is dict:
        return _event(msg)
    if msg.__class__ is not list or len(msg) < 4:
        raise RecordError("unknown_type", type(msg).__name__)
    channel, pair = msg[-2], msg[-1]
    if channel.__class__ is not str:
        raise RecordError("unknown_type", repr(channel)[:80])
    parser = PARSERS.get(channel)
    if parser is None:
        if channel.startswith("book"):  # what the recorder subscribed to, not this producer
            return Parsed("book", [])
        raise RecordError("unknown_type", repr(channel)[:80])
    symbols = _DEFAULT_MAP if symbol_map is None else symbol_map
    return Parsed(channel, parser(msg[1], pair, recv_ts_ms, symbols, fx_to_usd))


#: One text frame -> quote/trade records ([] for control frames), or RecordError.
parse_message = records_only(parse_frame)


def _resubscribe_depth(venue_symbol: str, max_levels: int) -> list[str]:
    """Unsubscribe and subscribe the pair's ``book`` again: a new subscription starts with a
    snapshot."""
    depth = books.book_depth(max_levels)
    book = {"name": "book", "depth": depth}
    return [json.dumps({"event": "unsubscribe", "pair": [venue_symbol], "subscription": book}),
            json.dumps({"event": "subscribe", "pair": [venue_symbol], "subscription": book})]


#: ``book`` at the smallest depth >= ARB_BOOK_LEVELS, CRC32-checked (``books/kraken.py``).
DEPTH = DepthSupport(
    channel="book",
    depth_parts=books.depth_parts,
    new_sync=books.new_sync,
    subscribe=books.subscribe_messages,
    resubscribe=_resubscribe_depth,
    # its v1 ``ticker`` moves on trades: 4 in the 18 s of kraken.jsonl against 492 book updates
    book_leads=True,
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
    depth=DEPTH,
)
_DEFAULT_MAP = VENUE.symbol_map()
