"""Bybit v5 public spot WebSocket: ``orderbook.1`` for the best bid/ask, ``publicTrade`` for trades.

One recorded frame (bybit_orderbook1_2025.jsonl, KCSUSDT on the spot endpoint)::

    {"topic":"orderbook.1.KCSUSDT","ts":1749833477570,"type":"snapshot","data":{"s":"KCSUSDT",
     "b":[["11.258","4.8"]],"a":[["11.259","0.78"]],"u":462749,"seq":105958369448},
     "cts":1749833477565}

- ``topic``: ``orderbook.{depth}.{symbol}``, depth 1 being the best bid/offer.
- ``type``: "snapshot" or "delta"; every recorded ``orderbook.1`` frame is a snapshot, so each
  one is the whole top of book and becomes one quote on its own.
- ``ts``: when Bybit sent the data, epoch ms -> ``exchange_ts_ms``; ``cts``: the matching
  engine's time of the last change (older than ``ts`` when the book did not move), not used.
- ``data.s``: symbol; ``b``/``a``: ``[[price, size]]`` best bid and ask, decimal strings in the
  quote currency (USDT or USDC, from the symbol's suffix), converted at the live or fallback rate.
- ``u``: the book's update id, +1 per change; ``seq``: Bybit's cross sequence, not used.

Trade frames (``publicTrade.{symbol}``, none recorded here): ``data[]`` = ``T`` trade time (ms,
-> ``exchange_ts_ms``), ``s``, ``S`` "Buy"/"Sell" (the **taker's** side), ``v`` size, ``p``
price, ``i`` trade id (digits on spot), ``BT``, ``RPI``, ``seq``.

Quirks: spot and linear (USDT perpetuals) send identical topics and frames; only the endpoint
tells them apart, so this connector reads the spot endpoint and a recording's lines from
``.../v5/public/linear`` are not spot (the fixtures keep that in each line's ``url``). When the
book has not changed for a while Bybit pushes the same snapshot again with the same ``u`` and a
newer ``ts`` (every 3 s in the recording): the quote's sequence number is therefore ``u`` then
``ts`` (``u * 10**13 + ts``), so a re-push is accepted, an older book is ``out_of_order`` and a
frame seen twice a ``duplicate``. Trades carry no sequence span: no recording shows whether spot
trade ids are consecutive, and a dense check on ids that are not would count a gap per trade.
Bybit wants ``{"op":"ping"}`` (answered by ``{"op":"pong"...}`` on linear,
``{"op":"ping","ret_msg":"pong"...}`` on spot) to keep a connection open, every 20 s by its
docs, busy or not: the feed sends it every ``ping_every_s`` (20 s) while frames arrive, and
after ``ping_after_s`` of quiet (at most half the watchdog), so the pong also feeds the
watchdog. Acks with ``success`` true are control frames, ``success`` false is ``venue_error``.
Bybit lists no USD spot market for USDT or USDC, so their rates come from another venue (or
ARB_USDT_USD / ARB_USDC_USD).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.common.exceptions import RecordError
from services.common.messages import PriceRecord, Quote, Trade
from services.producer.books import bybit as books
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

NAME = "bybit"
WS_URL = "wss://stream.bybit.com/v5/public/spot"
#: the USDT perpetuals: same topics, other markets; never read by this producer
LINEAR_WS_URL = "wss://stream.bybit.com/v5/public/linear"
BOOK_TOPIC = "orderbook.1"
TRADE_TOPIC = "publicTrade"
CHANNELS = (BOOK_TOPIC, TRADE_TOPIC)
SYMBOLS: dict[str, str] = {"BTC-USD": "BTCUSDT", "ETH-USD": "ETHUSDT"}
QUOTE_CCY = USDT
PING = json.dumps({"op": "ping"}, separators=(",", ":"))
PONG = "pong"
#: Bybit's documented keepalive interval, also on a busy connection (``ping_every_s``); after
#: this much quiet the feed pings too, at most half the watchdog
PING_AFTER_S = 20.0
#: Bybit spot takes at most 10 topics per subscribe request
MAX_ARGS_PER_SUBSCRIBE = 10

#: ``op`` of acks that carry no prices but prove the connection is alive
CONTROL_OPS = frozenset({"subscribe", "unsubscribe", "ping", "pong"})
#: topics a recorder may have subscribed to that give this producer nothing (still liveness)
CONTROL_TOPICS = frozenset({"orderbook", "tickers", "kline"})
_SIDES = {"Buy": "buy", "Sell": "sell"}
#: Quote assets, longest first so USDT/USDC/USDE are not read as USD.
_QUOTE_ASSETS = ("USDT", "USDC", "USDE", "EUR", "BRL", "TRY", "BTC", "ETH", "USD")
_CCY: dict[str, str] = {}
#: ``ts`` (epoch ms) stays below this until the year 2286: ``u * _TS_SPAN + ts`` orders by u, ts
_TS_SPAN = 10**13

_Records = tuple[list[PriceRecord], list[SeqSpan | None]]


def quote_ccy_of(venue_symbol: str) -> str:
    """``BTCUSDT`` -> USDT, ``ARBUSDC`` -> USDC ('' when not recognised)."""
    ccy = _CCY.get(venue_symbol)
    if ccy is None:
        ccy = _CCY[venue_symbol] = suffix_ccy(venue_symbol, _QUOTE_ASSETS)
    return ccy


def connect_url(base_url: str, venue_symbols: Sequence[str],
                quote_only: Sequence[str] = ()) -> str:
    """Bybit takes its subscriptions as messages, so the URL is the base URL."""
    del venue_symbols, quote_only
    return base_url


def subscribe_messages(venue_symbols: Sequence[str], quote_only: Sequence[str] = ()) -> list[str]:
    """Topics ``orderbook.1.<S>`` and ``publicTrade.<S>``, at most 10 per message; rate markets
    get the book only."""
    args = [f"{ch}.{s}" for s in venue_symbols for ch in CHANNELS]
    args += [f"{BOOK_TOPIC}.{s}" for s in quote_only]
    return [json.dumps({"op": "subscribe", "args": args[i:i + MAX_ARGS_PER_SUBSCRIBE]})
            for i in range(0, len(args), MAX_ARGS_PER_SUBSCRIBE)]


def _best(levels: Any, key: str) -> tuple[Any, Any]:
    """The first ``[price, size]`` of a side; an empty side has no price (``bad_price``)."""
    if levels.__class__ is not list:
        if levels is None:
            raise RecordError("missing_field", key)
        raise RecordError("bad_field", f"{key}={levels!r}"[:80])
    if not levels:
        raise RecordError("bad_price", f"{key}=[] (no level)")
    level = levels[0]
    if level.__class__ is not list or len(level) < 2:
        raise RecordError("bad_field", f"{key}[0]={level!r}"[:80])
    return level[0], level[1]


def parse_orderbook(
    msg: Mapping[str, Any], recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: FxToUsd,
) -> _Records:
    """An ``orderbook.1`` frame -> one quote, numbered by update id then send time."""
    data = msg.get("data")
    if data.__class__ is not dict:
        if data is None:
            raise RecordError("missing_field", "data")
        raise RecordError("bad_field", "orderbook data")
    venue_symbol = data.get("s")
    symbol = canonical(symbol_map, venue_symbol, "s")
    bid_px, bid_sz = _best(data.get("b"), "b")
    ask_px, ask_sz = _best(data.get("a"), "a")
    ccy = quote_ccy_of(venue_symbol)
    fx = rate_for(fx_to_usd, ccy)
    bid = positive(bid_px, "b", "bad_price") * fx
    ask = positive(ask_px, "a", "bad_price") * fx
    check_book(bid, ask)
    exchange_ts_ms = epoch_ms(msg, "ts")
    quote = Quote(
        exchange=NAME,
        symbol=symbol,
        venue_symbol=venue_symbol,
        bid=bid,
        bid_size=positive(bid_sz, "b[0][1]", "bad_size"),
        ask=ask,
        ask_size=positive(ask_sz, "a[0][1]", "bad_size"),
        quote_ccy=ccy,
        fx_to_usd=fx,
        ts_ms=recv_ts_ms,
        recv_ts_ms=recv_ts_ms,
        exchange_ts_ms=exchange_ts_ms,
    )
    update_id = seq_number(data.get("u"))
    if update_id is None or exchange_ts_ms >= _TS_SPAN:
        return [quote], [None]
    number = update_id * _TS_SPAN + exchange_ts_ms
    return [quote], [(number, number)]


def parse_public_trade(
    msg: Mapping[str, Any], recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: FxToUsd,
) -> _Records:
    """A ``publicTrade`` frame -> one trade per item; ``S`` is the taker's side."""
    data = msg.get("data")
    if data.__class__ is not list:
        if data is None:
            raise RecordError("missing_field", "data")
        raise RecordError("bad_field", "publicTrade data")
    trades: list[PriceRecord] = []
    for item in data:
        if item.__class__ is not dict:
            raise RecordError("bad_field", "publicTrade item")
        venue_symbol = item.get("s")
        symbol = canonical(symbol_map, venue_symbol, "s")
        taker = item.get("S")
        side = _SIDES.get(taker) if taker.__class__ is str else None
        if side is None:
            if taker is None:
                raise RecordError("missing_field", "S")
            raise RecordError("bad_field", f"S={taker!r}"[:80])
        trade_id = item.get("i")
        if trade_id is None:
            raise RecordError("missing_field", "i")
        if trade_id.__class__ is not str and trade_id.__class__ is not int:
            raise RecordError("bad_field", f"i={trade_id!r}"[:80])
        ccy = quote_ccy_of(venue_symbol)
        fx = rate_for(fx_to_usd, ccy)
        trades.append(Trade(
            exchange=NAME,
            symbol=symbol,
            venue_symbol=venue_symbol,
            price=positive(item.get("p"), "p", "bad_price") * fx,
            size=positive(item.get("v"), "v", "bad_size"),
            side=side,
            trade_id=str(trade_id),
            quote_ccy=ccy,
            fx_to_usd=fx,
            ts_ms=recv_ts_ms,
            recv_ts_ms=recv_ts_ms,
            exchange_ts_ms=epoch_ms(item, "T"),
        ))
    return trades, [None] * len(trades)


_Parser = Callable[[Mapping[str, Any], int, Mapping[str, str], FxToUsd], _Records]
PARSERS: dict[str, _Parser] = {
    BOOK_TOPIC: parse_orderbook,
    TRADE_TOPIC: parse_public_trade,
}


def _ack(msg: Mapping[str, Any]) -> Parsed:
    """``{"success":..,"op":..}``: a subscribe ack or the answer to our ping."""
    op = msg.get("op")
    if msg.get("success") is not True:
        raise RecordError("venue_error", f"{op}: {msg.get('ret_msg')}"[:200])
    if op.__class__ is not str or op not in CONTROL_OPS:
        raise RecordError("unknown_type", repr(op)[:80])
    return Parsed(PONG if op in {"ping", "pong"} else op, [])


def parse_frame(
    raw: str | bytes,
    recv_ts_ms: int,
    *,
    symbol_map: Mapping[str, str] | None = None,
    fx_to_usd: FxToUsd = 1.0,
) -> Parsed:
    """One text frame -> Parsed: the topic's channel (or the ack's op) and records."""
    msg = decode(raw)
    if msg.__class__ is not dict:
        raise RecordError("unknown_type", type(msg).__name__)
    topic = msg.get("topic")
    if topic.__class__ is not str:
        if "op" in msg or "success" in msg:
            return _ack(msg)
        raise RecordError("unknown_type", repr(topic)[:80])
    channel = topic.rpartition(".")[0]  # orderbook.1.BTCUSDT -> orderbook.1
    parser = PARSERS.get(channel)
    if parser is None:
        head = channel.partition(".")[0]
        if head in CONTROL_TOPICS:  # what a recorder subscribed to, not this producer
            return Parsed(head, [])
        raise RecordError("unknown_type", repr(topic)[:80])
    symbols = _DEFAULT_MAP if symbol_map is None else symbol_map
    records, seqs = parser(msg, recv_ts_ms, symbols, fx_to_usd)
    return Parsed(channel, records, seqs)


#: One text frame -> quote/trade records ([] for control frames), or RecordError.
parse_message = records_only(parse_frame)


def _depth_parts(frame: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """The deep ``orderbook.{50,200,1000}`` topics; ``orderbook.1`` is the best bid/offer
    channel, read for quotes only (one level is no book)."""
    parts = books.depth_parts(frame)
    if parts is None or parts[0][1].get("depth") == 1:
        return None
    return parts


def _resubscribe_depth(venue_symbol: str, max_levels: int) -> list[str]:
    """Unsubscribe and subscribe the topic again: a new subscription starts with a
    snapshot."""
    args = books.topics([venue_symbol], max_levels)
    return [json.dumps({"op": "unsubscribe", "args": args}),
            json.dumps({"op": "subscribe", "args": args})]


#: ``orderbook.{50,200,1000}`` at the smallest depth >= ARB_BOOK_LEVELS (``books/bybit.py``).
DEPTH = DepthSupport(
    channel="orderbook.50",
    depth_parts=_depth_parts,
    new_sync=books.new_sync,
    subscribe=books.subscribe_messages,
    resubscribe=_resubscribe_depth,
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
    ping_message=PING,
    ping_after_s=PING_AFTER_S,
    ping_every_s=PING_AFTER_S,
    depth=DEPTH,
)
_DEFAULT_MAP = VENUE.symbol_map()
