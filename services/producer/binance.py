"""Binance spot combined streams: ``bookTicker`` for the best bid/ask, ``trade`` for trades.

One recorded frame (binance.jsonl, BTCUSDT)::

    {"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT",
     "b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}

- ``stream``: which subscription this frame belongs to (combined-stream envelope).
- ``u``: order-book update id; ``s``: symbol.
- ``b``/``B``: best bid price / quantity; ``a``/``A``: best ask price / quantity. Decimal
  strings in the quote currency, USDT, which is converted to USD with a caller-given rate.

Trade frames: ``e`` "trade", ``E`` event time (ms), ``t`` trade id, ``p`` price, ``q``
quantity, ``T`` trade time (ms, -> ``exchange_ts_ms``), ``m`` true when the buyer was the
maker, so the taker sold.

Quirks: spot bookTicker has no event time at all, so its quotes carry ``exchange_ts_ms`` null.
No subscribe message is needed: the streams are named in the URL path, symbols lower-case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.common.exceptions import RecordError
from services.common.messages import Quote, Trade, validate_quote, validate_trade
from services.producer.connector import (
    USDT,
    PriceRecord,
    Venue,
    canonical,
    decode,
    epoch_ms,
    price,
    required,
    size,
)

NAME = "binance"
WS_URL = "wss://stream.binance.com:9443"
CHANNELS = ("bookTicker", "trade")
SYMBOLS: dict[str, str] = {"BTC-USD": "BTCUSDT", "ETH-USD": "ETHUSDT"}
QUOTE_CCY = USDT

#: Event types that carry nothing for crypto-prices but still prove the connection is alive.
CONTROL_KINDS = frozenset({"depthUpdate", "aggTrade", "kline", "subscription_reply"})


def connect_url(base_url: str, venue_symbols: Sequence[str]) -> str:
    """Combined-stream URL, e.g. ``.../stream?streams=btcusdt@bookTicker/btcusdt@trade``."""
    streams = "/".join(f"{s.lower()}@{ch}" for s in venue_symbols for ch in CHANNELS)
    return f"{base_url.rstrip('/')}/stream?streams={streams}"


def subscribe_messages(venue_symbols: Sequence[str]) -> list[str]:
    """Nothing to send: the URL path already names the streams."""
    del venue_symbols
    return []


def parse_book_ticker(
    msg: Mapping[str, Any], recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: float,
) -> list[PriceRecord]:
    """A bookTicker payload -> one quote; the venue sends no time for it."""
    venue_symbol = required(msg, "s")
    symbol = canonical(symbol_map, venue_symbol)
    quote = Quote(
        exchange=NAME,
        symbol=symbol,
        venue_symbol=venue_symbol,
        bid=price(msg, "b") * fx_to_usd,
        bid_size=size(msg, "B"),
        ask=price(msg, "a") * fx_to_usd,
        ask_size=size(msg, "A"),
        quote_ccy=QUOTE_CCY,
        fx_to_usd=fx_to_usd,
        ts_ms=recv_ts_ms,
        recv_ts_ms=recv_ts_ms,
        exchange_ts_ms=None,
    )
    return [validate_quote(quote)]


def parse_trade(
    msg: Mapping[str, Any], recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: float,
) -> list[PriceRecord]:
    """A trade payload -> one trade; ``m`` (buyer is maker) means the taker sold."""
    venue_symbol = required(msg, "s")
    symbol = canonical(symbol_map, venue_symbol)
    buyer_is_maker = required(msg, "m")
    if not isinstance(buyer_is_maker, bool):
        raise RecordError("bad_field", f"m={buyer_is_maker!r}")
    trade = Trade(
        exchange=NAME,
        symbol=symbol,
        venue_symbol=venue_symbol,
        price=price(msg, "p") * fx_to_usd,
        size=size(msg, "q"),
        side="sell" if buyer_is_maker else "buy",
        trade_id=str(required(msg, "t")),
        quote_ccy=QUOTE_CCY,
        fx_to_usd=fx_to_usd,
        ts_ms=recv_ts_ms,
        recv_ts_ms=recv_ts_ms,
        exchange_ts_ms=epoch_ms(msg, "T"),
    )
    return [validate_trade(trade)]


_Parser = Callable[[Mapping[str, Any], int, Mapping[str, str], float], list[PriceRecord]]
PARSERS: dict[str, _Parser] = {
    "bookTicker": parse_book_ticker,
    "trade": parse_trade,
}


def _kind(payload: Mapping[str, Any]) -> str | None:
    """Event type: ``e`` when present; bookTicker has none but is recognisable by its keys."""
    if "e" in payload:
        return payload["e"] if isinstance(payload["e"], str) else None
    if {"u", "s", "b", "a"} <= payload.keys():
        return "bookTicker"
    if "result" in payload and "id" in payload:
        return "subscription_reply"
    return None


def parse_frame(
    raw: str | bytes,
    recv_ts_ms: int,
    *,
    symbol_map: Mapping[str, str] | None = None,
    fx_to_usd: float = 1.0,
) -> tuple[str, list[PriceRecord]]:
    """One text frame (combined ``{"stream","data"}`` or a raw stream) -> (kind, records)."""
    msg = decode(raw)
    if not isinstance(msg, dict):
        raise RecordError("unknown_type", type(msg).__name__)
    if "code" in msg and "msg" in msg:
        raise RecordError("venue_error", f"{msg['code']}: {msg['msg']}")
    payload = msg.get("data", msg) if "stream" in msg else msg
    if not isinstance(payload, dict):
        raise RecordError("unknown_type", type(payload).__name__)
    kind = _kind(payload)
    if kind in CONTROL_KINDS:
        return kind, []
    parser = PARSERS.get(kind) if kind is not None else None
    if parser is None:
        raise RecordError("unknown_type", repr(kind if kind is not None else msg.get("stream")))
    symbols = VENUE.symbol_map() if symbol_map is None else symbol_map
    return kind, parser(payload, recv_ts_ms, symbols, fx_to_usd)


def parse_message(
    raw: str | bytes,
    recv_ts_ms: int,
    *,
    symbol_map: Mapping[str, str] | None = None,
    fx_to_usd: float = 1.0,
) -> list[PriceRecord]:
    """One text frame -> quote/trade records ([] for control frames), or RecordError."""
    return parse_frame(raw, recv_ts_ms, symbol_map=symbol_map, fx_to_usd=fx_to_usd)[1]


VENUE = Venue(
    name=NAME,
    ws_url=WS_URL,
    channels=CHANNELS,
    symbols=SYMBOLS,
    quote_ccy=QUOTE_CCY,
    connect_url=connect_url,
    subscribe_messages=subscribe_messages,
    parse_frame=parse_frame,
)
