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
- ``sequence``: per-product sequence number shared with the level2 and full channels, so on the
  ticker channel it only increases (with holes): an older one is dropped as out of order.

Match frames (``match``, and ``last_match`` once right after subscribing) carry ``trade_id``,
consecutive per product: a jump is a lost trade (``sequence_gap``).

Quirks: a ticker is sent on every match, not on every book change, so it is not a tick-by-tick
BBO. In ``match``/``last_match`` frames ``side`` is the **maker's** side (a "sell" prints at the
ask), so the taker's side is the opposite. The ``heartbeat`` channel sends one frame per product
per second, which keeps a quiet market visibly live. ``USDT-USD`` is Coinbase's USDT market:
its ticker is subscribed (quotes only) when another venue needs a live USDT rate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.common.exceptions import RecordError
from services.common.messages import PriceRecord, Quote, Trade
from services.producer.books import coinbase as books
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
    records_only,
    rfc3339_to_ms,
    seq_number,
)
from services.producer.decoding import decode

NAME = "coinbase"
WS_URL = "wss://ws-feed.exchange.coinbase.com"
#: heartbeat: one frame per product per second, so a quiet market still proves the link is live
CHANNELS = ("heartbeat", "ticker", "matches")
SYMBOLS: dict[str, str] = {"BTC-USD": "BTC-USD", "ETH-USD": "ETH-USD"}
FX_SYMBOLS: dict[str, str] = {"USDT-USD": "USDT-USD"}
QUOTE_CCY = USD

#: Frames that carry nothing for crypto-prices but still prove the connection is alive.
CONTROL_KINDS = frozenset({"subscriptions", "heartbeat", "status", "snapshot", "l2update"})
#: The maker's side -> the taker's side.
_TAKER_SIDE = {"buy": "sell", "sell": "buy"}

_Records = tuple[list[PriceRecord], list[SeqSpan | None]]


def quote_ccy_of(venue_symbol: str) -> str:
    """``BTC-USD`` -> USD, ``BTC-USDT`` -> USDT."""
    return venue_symbol.rpartition("-")[2]


def connect_url(base_url: str, venue_symbols: Sequence[str],
                quote_only: Sequence[str] = ()) -> str:
    """Coinbase takes its subscriptions as messages, so the URL is the base URL."""
    del venue_symbols, quote_only
    return base_url


def subscribe_messages(venue_symbols: Sequence[str], quote_only: Sequence[str] = ()) -> list[str]:
    """One subscribe message per channel, as the recorder sent them; no trades for rate markets."""
    messages = []
    for channel in CHANNELS:
        products = list(venue_symbols) if channel == "matches" else [*venue_symbols, *quote_only]
        messages.append(json.dumps(
            {"type": "subscribe", "product_ids": products, "channels": [channel]}))
    return messages


def parse_ticker(
    msg: Mapping[str, Any], recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: FxToUsd,
) -> _Records:
    """A ticker frame -> one quote at the receive time."""
    venue_symbol = msg.get("product_id")
    symbol = canonical(symbol_map, venue_symbol, "product_id")
    ccy = quote_ccy_of(venue_symbol)
    fx = rate_for(fx_to_usd, ccy)
    bid = positive(msg.get("best_bid"), "best_bid", "bad_price") * fx
    ask = positive(msg.get("best_ask"), "best_ask", "bad_price") * fx
    check_book(bid, ask)
    bid_size = msg.get("best_bid_size")
    ask_size = msg.get("best_ask_size")
    quote = Quote(
        exchange=NAME,
        symbol=symbol,
        venue_symbol=venue_symbol,
        bid=bid,
        bid_size=None if bid_size is None else positive(bid_size, "best_bid_size", "bad_size"),
        ask=ask,
        ask_size=None if ask_size is None else positive(ask_size, "best_ask_size", "bad_size"),
        quote_ccy=ccy,
        fx_to_usd=fx,
        ts_ms=recv_ts_ms,
        recv_ts_ms=recv_ts_ms,
        exchange_ts_ms=rfc3339_to_ms(msg.get("time")),
    )
    seq = seq_number(msg.get("sequence"))
    return [quote], [None if seq is None else (seq, seq)]


def parse_match(
    msg: Mapping[str, Any], recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: FxToUsd,
) -> _Records:
    """A match (or last_match) frame -> one trade with the taker's side."""
    venue_symbol = msg.get("product_id")
    symbol = canonical(symbol_map, venue_symbol, "product_id")
    maker_side = msg.get("side")
    taker_side = _TAKER_SIDE.get(maker_side) if maker_side.__class__ is str else None
    if taker_side is None:
        if maker_side is None:
            raise RecordError("missing_field", "side")
        raise RecordError("bad_field", f"side={maker_side!r}")
    trade_id = msg.get("trade_id")
    if trade_id is None:
        raise RecordError("missing_field", "trade_id")
    ccy = quote_ccy_of(venue_symbol)
    fx = rate_for(fx_to_usd, ccy)
    trade = Trade(
        exchange=NAME,
        symbol=symbol,
        venue_symbol=venue_symbol,
        price=positive(msg.get("price"), "price", "bad_price") * fx,
        size=positive(msg.get("size"), "size", "bad_size"),
        side=taker_side,
        trade_id=str(trade_id),
        quote_ccy=ccy,
        fx_to_usd=fx,
        ts_ms=recv_ts_ms,
        recv_ts_ms=recv_ts_ms,
        exchange_ts_ms=rfc3339_to_ms(msg.get("time")),
    )
    seq = seq_number(trade_id)
    return [trade], [None if seq is None else (seq, seq)]


_Parser = Callable[[Mapping[str, Any], int, Mapping[str, str], FxToUsd], _Records]
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
    fx_to_usd: FxToUsd = 1.0,
) -> Parsed:
    """One text frame -> (its ``type``, records, sequence numbers); control frames give none."""
    msg = decode(raw)
    if msg.__class__ is not dict:
        raise RecordError("unknown_type", type(msg).__name__)
    kind = msg.get("type")
    parser = PARSERS.get(kind) if kind.__class__ is str else None
    if parser is None:
        if kind.__class__ is str:
            if kind in CONTROL_KINDS:
                return Parsed(kind, [])
            if kind == "error":
                raise RecordError("venue_error", f"{msg.get('message')}: {msg.get('reason')}")
        raise RecordError("unknown_type", repr(kind)[:80])
    symbols = _DEFAULT_MAP if symbol_map is None else symbol_map
    records, seqs = parser(msg, recv_ts_ms, symbols, fx_to_usd)
    return Parsed(kind, records, seqs)


#: One text frame -> quote/trade records ([] for control frames), or RecordError.
parse_message = records_only(parse_frame)


def _subscribe_depth(venue_symbols: Sequence[str], max_levels: int) -> list[str]:
    """``level2_batch`` (public; ``level2`` needs authentication) for every product."""
    del max_levels
    return [books.subscribe_depth(venue_symbols)] if venue_symbols else []


def _resubscribe_depth(venue_symbol: str, max_levels: int) -> list[str]:
    """Unsubscribe and subscribe again: Coinbase sends a fresh snapshot on a subscription."""
    del max_levels
    return [books.unsubscribe_depth([venue_symbol]), books.subscribe_depth([venue_symbol])]


DEPTH = DepthSupport(
    channel=books.DEPTH_CHANNEL,
    depth_parts=books.depth_parts,
    new_sync=books.new_sync,
    subscribe=_subscribe_depth,
    resubscribe=_resubscribe_depth,
    # its ``ticker`` moves on matches: 6 against 359 ``l2update`` s in coinbase_exchange_2021.jsonl
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
