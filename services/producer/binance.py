"""Binance spot combined streams: ``bookTicker`` for the best bid/ask, ``trade`` for trades.

One recorded frame (binance.jsonl, BTCUSDT)::

    {"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT",
     "b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}

- ``stream``: which subscription this frame belongs to (combined-stream envelope).
- ``u``: order-book update id, increasing per symbol but with holes (the channel shows only top
  of book changes): an older one is dropped as out of order. ``s``: symbol.
- ``b``/``B``: best bid price / quantity; ``a``/``A``: best ask price / quantity. Decimal
  strings in the quote currency, USDT, which is converted to USD at the live or fallback rate.

Trade frames: ``e`` "trade", ``E`` event time (ms), ``t`` trade id (consecutive per symbol: a
jump is a lost trade), ``p`` price, ``q`` quantity, ``T`` trade time (ms, -> ``exchange_ts_ms``),
``m`` true when the buyer was the maker, so the taker sold.

Depth: ``<sym>@depth@100ms`` diffs (``depthUpdate``, a control kind here) keep the market's
order book (``books/binance.py``) from a REST snapshot (:data:`DEPTH`).

Quirks: spot bookTicker has no event time at all, so its quotes carry ``exchange_ts_ms`` null.
No subscribe message is needed: the streams are named in the URL path, symbols lower-case.
Binance closes every connection after 24 h (``max_connection_s``): the feed opens a replacement
before that and overlaps the two, so the handover loses nothing. Binance pings every 20 s at
the WebSocket level and drops a client that does not pong within a minute; the WebSocket
library answers those pings while the feed reads. An error answer, nested
(``{"error":{"code":2,"msg":"Invalid request"},"id":1}``) or flat (``{"code":..,"msg":..}``),
is ``venue_error``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.common.exceptions import RecordError
from services.common.messages import PriceRecord, Quote, Trade
from services.producer.books import binance as books
from services.producer.connector import (
    USDT,
    DepthSupport,
    FxToUsd,
    Parsed,
    SeqSpan,
    Venue,
    canonical,
    check_book,
    epoch_ms,
    positive,
    rate_for,
    records_only,
    seq_number,
    suffix_ccy,
)
from services.producer.decoding import decode

NAME = "binance"
WS_URL = "wss://stream.binance.com:9443"
CHANNELS = ("bookTicker", "trade", "depth@100ms")
SYMBOLS: dict[str, str] = {"BTC-USD": "BTCUSDT", "ETH-USD": "ETHUSDT"}
QUOTE_CCY = USDT
#: Binance closes a connection 24 h after it opened
MAX_CONNECTION_S = 24 * 3600.0

#: Event types that carry nothing for crypto-prices but still prove the connection is alive.
CONTROL_KINDS = frozenset({"depthUpdate", "aggTrade", "kline", "subscription_reply"})
#: Quote assets, longest first so FDUSD is not read as USD.
_QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USD", "EUR", "TRY", "BTC", "ETH",
                 "BNB")
_CCY: dict[str, str] = {}

_Records = tuple[list[PriceRecord], list[SeqSpan | None]]


def quote_ccy_of(venue_symbol: str) -> str:
    """``BTCUSDT`` -> USDT, ``BTCUSDC`` -> USDC ('' when not recognised)."""
    ccy = _CCY.get(venue_symbol)
    if ccy is None:
        ccy = _CCY[venue_symbol] = suffix_ccy(venue_symbol, _QUOTE_ASSETS)
    return ccy


def connect_url(base_url: str, venue_symbols: Sequence[str],
                quote_only: Sequence[str] = ()) -> str:
    """Combined-stream URL, e.g. ``.../stream?streams=btcusdt@bookTicker/btcusdt@trade``."""
    streams = [f"{s.lower()}@{ch}" for s in venue_symbols for ch in CHANNELS]
    streams += [f"{s.lower()}@bookTicker" for s in quote_only]
    return f"{base_url.rstrip('/')}/stream?streams={'/'.join(streams)}"


def subscribe_messages(venue_symbols: Sequence[str], quote_only: Sequence[str] = ()) -> list[str]:
    """Nothing to send: the URL path already names the streams."""
    del venue_symbols, quote_only
    return []


def parse_book_ticker(
    msg: Mapping[str, Any], recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: FxToUsd,
) -> _Records:
    """A bookTicker payload -> one quote; the venue sends no time for it."""
    venue_symbol = msg.get("s")
    symbol = canonical(symbol_map, venue_symbol, "s")
    ccy = quote_ccy_of(venue_symbol)
    fx = rate_for(fx_to_usd, ccy)
    bid = positive(msg.get("b"), "b", "bad_price") * fx
    ask = positive(msg.get("a"), "a", "bad_price") * fx
    check_book(bid, ask)
    quote = Quote(
        exchange=NAME,
        symbol=symbol,
        venue_symbol=venue_symbol,
        bid=bid,
        bid_size=positive(msg.get("B"), "B", "bad_size"),
        ask=ask,
        ask_size=positive(msg.get("A"), "A", "bad_size"),
        quote_ccy=ccy,
        fx_to_usd=fx,
        ts_ms=recv_ts_ms,
        recv_ts_ms=recv_ts_ms,
        exchange_ts_ms=None,
    )
    seq = seq_number(msg.get("u"))
    return [quote], [None if seq is None else (seq, seq)]


def parse_trade(
    msg: Mapping[str, Any], recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: FxToUsd,
) -> _Records:
    """A trade payload -> one trade; ``m`` (buyer is maker) means the taker sold."""
    venue_symbol = msg.get("s")
    symbol = canonical(symbol_map, venue_symbol, "s")
    buyer_is_maker = msg.get("m")
    if buyer_is_maker.__class__ is not bool:
        if buyer_is_maker is None:
            raise RecordError("missing_field", "m")
        raise RecordError("bad_field", f"m={buyer_is_maker!r}")
    trade_id = msg.get("t")
    if trade_id is None:
        raise RecordError("missing_field", "t")
    ccy = quote_ccy_of(venue_symbol)
    fx = rate_for(fx_to_usd, ccy)
    trade = Trade(
        exchange=NAME,
        symbol=symbol,
        venue_symbol=venue_symbol,
        price=positive(msg.get("p"), "p", "bad_price") * fx,
        size=positive(msg.get("q"), "q", "bad_size"),
        side="sell" if buyer_is_maker else "buy",
        trade_id=str(trade_id),
        quote_ccy=ccy,
        fx_to_usd=fx,
        ts_ms=recv_ts_ms,
        recv_ts_ms=recv_ts_ms,
        exchange_ts_ms=epoch_ms(msg, "T"),
    )
    seq = seq_number(trade_id)
    return [trade], [None if seq is None else (seq, seq)]


_Parser = Callable[[Mapping[str, Any], int, Mapping[str, str], FxToUsd], _Records]
PARSERS: dict[str, _Parser] = {
    "bookTicker": parse_book_ticker,
    "trade": parse_trade,
}


def _kind(payload: Mapping[str, Any]) -> str | None:
    """Event type: ``e`` when present; bookTicker has none but is recognisable by its keys."""
    if "e" in payload:
        kind = payload["e"]
        return kind if kind.__class__ is str else None
    if "u" in payload and "b" in payload and "a" in payload and "s" in payload:
        return "bookTicker"
    if "result" in payload and "id" in payload:
        return "subscription_reply"
    return None


def parse_frame(
    raw: str | bytes,
    recv_ts_ms: int,
    *,
    symbol_map: Mapping[str, str] | None = None,
    fx_to_usd: FxToUsd = 1.0,
) -> Parsed:
    """One text frame (combined ``{"stream","data"}`` or a raw stream) -> Parsed."""
    msg = decode(raw)
    if msg.__class__ is not dict:
        raise RecordError("unknown_type", type(msg).__name__)
    payload = msg.get("data", msg) if "stream" in msg else msg
    if payload.__class__ is not dict:
        raise RecordError("unknown_type", type(payload).__name__)
    kind = _kind(payload)
    parser = PARSERS.get(kind) if kind is not None else None
    if parser is None:
        if kind in CONTROL_KINDS:
            return Parsed(kind, [])
        error = msg.get("error", msg)  # {"error":{"code":2,"msg":..},"id":1} or flat
        if error.__class__ is dict and "code" in error and "msg" in error:
            raise RecordError("venue_error", f"{error['code']}: {error['msg']}"[:200])
        raise RecordError("unknown_type",
                          repr(kind if kind is not None else msg.get("stream"))[:80])
    symbols = _DEFAULT_MAP if symbol_map is None else symbol_map
    records, seqs = parser(payload, recv_ts_ms, symbols, fx_to_usd)
    return Parsed(kind, records, seqs)


#: One text frame -> quote/trade records ([] for control frames), or RecordError.
parse_message = records_only(parse_frame)


def _snapshot_url(venue_symbol: str, max_levels: int, base_url: str) -> str:
    """The smallest REST depth limit that holds ``max_levels`` (1000 at most: weight)."""
    limit = next((n for n in books.SNAPSHOT_LIMITS if n >= max_levels), 1000)
    return books.snapshot_url(venue_symbol, min(limit, 1000), base_url)


def _no_frames(venue_symbols: Sequence[str], max_levels: int) -> list[str]:
    """The URL names the depth streams: nothing to send."""
    del venue_symbols, max_levels
    return []


#: ``<sym>@depth@100ms`` diffs synced to the REST snapshot; no way to ask the socket for a
#: fresh book, so a resync is a new REST snapshot (never a resubscribe).
DEPTH = DepthSupport(
    channel="depth@100ms",
    depth_parts=books.depth_parts,
    new_sync=books.new_sync,
    subscribe=_no_frames,
    snapshot_url=_snapshot_url,
    rest_url=books.REST_URL,
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
    max_connection_s=MAX_CONNECTION_S,
    depth=DEPTH,
)
_DEFAULT_MAP = VENUE.symbol_map()
