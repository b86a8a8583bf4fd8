"""Coinbase Exchange WebSocket feed: ``ticker`` for the best bid/ask, ``matches`` for trades.

One recorded frame (coinbase_exchange_2021.jsonl, SKL-USD)::

    {"type":"ticker","sequence":201390042,"product_id":"SKL-USD","price":"0.7904",
     "open_24h":"0.7055","volume_24h":"34220028.50000000","low_24h":"0.6915",
     "high_24h":"0.8098","volume_30d":"948647381.20000000","best_bid":"0.7901",
     "best_ask":"0.7911","side":"buy","time":"2021-04-17T16:43:37.056746Z",
     "trade_id":1568267,"last_size":"1338.3"}

- ``best_bid``/``best_ask``: top of book after the last match, decimal strings in the quote
  currency (USD here). The 2021 feed has no sizes; today's feed adds ``best_bid_size`` and
  ``best_ask_size``, read when present.
- ``price``/``last_size``/``side``/``trade_id``: the match that triggered this ticker. Trades come
  from ``match`` frames instead, so these are ignored here.
- ``time``: the venue's time of the match (RFC 3339, microseconds) -> ``exchange_ts_ms``.
- ``sequence``: per-product sequence number, shared with the level2 and matches channels.

Quirks: a ticker is sent on every match, not on every book change, so it is not a tick-by-tick
BBO. In ``match``/``last_match`` frames ``side`` is the **maker's** side (a "sell" prints at the
ask), so the taker's side is the opposite. ``last_match`` is the latest trade, sent once right
after subscribing; it is parsed like a match (downstream readers may dedup by ``trade_id``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.common.exceptions import RecordError
from services.common.messages import Quote, Trade, validate_quote, validate_trade
from services.producer.connector import (
    USD,
    PriceRecord,
    Venue,
    canonical,
    decode,
    price,
    required,
    rfc3339_to_ms,
    size,
)

NAME = "coinbase"
WS_URL = "wss://ws-feed.exchange.coinbase.com"
#: heartbeat: one frame per product per second, so a quiet market still proves the link is live
CHANNELS = ("heartbeat", "ticker", "matches")
SYMBOLS: dict[str, str] = {"BTC-USD": "BTC-USD", "ETH-USD": "ETH-USD"}
QUOTE_CCY = USD

#: Frames that carry nothing for crypto-prices but still prove the connection is alive.
CONTROL_KINDS = frozenset({"subscriptions", "heartbeat", "status", "snapshot", "l2update"})
#: The maker's side -> the taker's side.
_TAKER_SIDE = {"buy": "sell", "sell": "buy"}


def connect_url(base_url: str, venue_symbols: Sequence[str]) -> str:
    """Coinbase takes its subscriptions as messages, so the URL is the base URL."""
    del venue_symbols
    return base_url


def subscribe_messages(venue_symbols: Sequence[str]) -> list[str]:
    """One subscribe message per channel, as the recorder sent them."""
    return [
        json.dumps({"type": "subscribe", "product_ids": list(venue_symbols), "channels": [ch]})
        for ch in CHANNELS
    ]


def parse_ticker(
    msg: Mapping[str, Any], recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: float,
) -> list[PriceRecord]:
    """A ticker frame -> one quote at the receive time."""
    venue_symbol = required(msg, "product_id")
    symbol = canonical(symbol_map, venue_symbol)
    quote = Quote(
        exchange=NAME,
        symbol=symbol,
        venue_symbol=venue_symbol,
        bid=price(msg, "best_bid") * fx_to_usd,
        bid_size=size(msg, "best_bid_size", optional=True),
        ask=price(msg, "best_ask") * fx_to_usd,
        ask_size=size(msg, "best_ask_size", optional=True),
        quote_ccy=QUOTE_CCY,
        fx_to_usd=fx_to_usd,
        ts_ms=recv_ts_ms,
        recv_ts_ms=recv_ts_ms,
        exchange_ts_ms=rfc3339_to_ms(required(msg, "time")),
    )
    return [validate_quote(quote)]


def parse_match(
    msg: Mapping[str, Any], recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: float,
) -> list[PriceRecord]:
    """A match (or last_match) frame -> one trade with the taker's side."""
    venue_symbol = required(msg, "product_id")
    symbol = canonical(symbol_map, venue_symbol)
    maker_side = required(msg, "side")
    if maker_side not in _TAKER_SIDE:
        raise RecordError("bad_field", f"side={maker_side!r}")
    trade = Trade(
        exchange=NAME,
        symbol=symbol,
        venue_symbol=venue_symbol,
        price=price(msg, "price") * fx_to_usd,
        size=size(msg, "size"),
        side=_TAKER_SIDE[maker_side],
        trade_id=str(required(msg, "trade_id")),
        quote_ccy=QUOTE_CCY,
        fx_to_usd=fx_to_usd,
        ts_ms=recv_ts_ms,
        recv_ts_ms=recv_ts_ms,
        exchange_ts_ms=rfc3339_to_ms(required(msg, "time")),
    )
    return [validate_trade(trade)]


_Parser = Callable[[Mapping[str, Any], int, Mapping[str, str], float], list[PriceRecord]]
PARSERS: dict[str, _Parser] = {
    "ticker": parse_ticker,
    "match": parse_match,
    "last_match": parse_match,
}


def parse_frame(
    raw: str | bytes,
    recv_ts_ms: int,
    *,
    symbol_map: Mapping[str, str] | None = None,
    fx_to_usd: float = 1.0,
) -> tuple[str, list[PriceRecord]]:
    """One text frame -> (its ``type``, records); control frames give no records."""
    msg = decode(raw)
    if not isinstance(msg, dict):
        raise RecordError("unknown_type", type(msg).__name__)
    kind = msg.get("type")
    if kind == "error":
        raise RecordError("venue_error", f"{msg.get('message')}: {msg.get('reason')}")
    if kind in CONTROL_KINDS:
        return kind, []
    parser = PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise RecordError("unknown_type", repr(kind))
    symbols = VENUE.symbol_map() if symbol_map is None else symbol_map
    return kind, parser(msg, recv_ts_ms, symbols, fx_to_usd)


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
