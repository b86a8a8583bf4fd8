"""OKX v5 public WebSocket: ``tickers`` for the best bid/ask, ``trades`` for trades.

One recorded frame (okx.jsonl, BTC-USDT spot)::

    {"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT",
     "instId":"BTC-USDT","last":"30236","lastSz":"0.0002","askPx":"30228.7",
     "askSz":"1.55896972","bidPx":"30228.6","bidSz":"0.23393","open24h":"29700.4",
     "high24h":"31073","low24h":"28020.3","sodUtc0":"29028.8","sodUtc8":"30337.7",
     "volCcy24h":"525802090.62716611","vol24h":"17602.13085371","ts":"1652459224956"}]}

- ``arg``: the subscription (channel and instrument) the frame belongs to; ``data``: a list.
- ``bidPx``/``bidSz``, ``askPx``/``askSz``: best bid and ask with their sizes, decimal strings
  in the quote currency (USDT here, converted to USD at the live or fallback rate).
- ``ts``: the venue's time of the ticker, epoch ms as a string -> ``exchange_ts_ms``.
- ``last``/``lastSz``, ``open24h`` ... ``vol24h``: last trade and 24 h statistics, not used.

Trade frames: ``data[]`` = ``instId``, ``tradeId`` (consecutive per instrument: a jump is a lost
trade), ``px``, ``sz``, ``side`` (the **taker's** side), ``ts``. According to OKX's docs a newer
frame may aggregate several fills into one trade with ``count`` and the last ``tradeId``; the
sequence check then covers ``tradeId - count + 1 .. tradeId`` (no recorded frame has ``count``).

Quirks: OKX closes a connection that has sent nothing for 30 s and wants the text ``ping``
(answered by the text ``pong``, not JSON) when the client has heard nothing for a while: the
feed sends it after ``ping_after_s`` of quiet. Subscribe acks and ``notice`` events are control
frames; ``{"event":"error",...}`` is counted as ``venue_error``. OKX lists no USD market for
USDT, so its rate comes from another venue (or ARB_USDT_USD). Tickers carry no sequence number.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.common.exceptions import RecordError
from services.common.messages import PriceRecord, Quote, Trade
from services.producer.books import okx as books
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
)
from services.producer.decoding import decode

NAME = "okx"
WS_URL = "wss://ws.okx.com:8443/ws/v5/public"
CHANNELS = ("tickers", "trades")
SYMBOLS: dict[str, str] = {"BTC-USD": "BTC-USDT", "ETH-USD": "ETH-USDT"}
QUOTE_CCY = USDT
PING = "ping"
PONG = "pong"
#: OKX drops a connection after 30 s without traffic; a quiet market's ping also keeps the
#: feed's watchdog (ARB_WATCHDOG_MS) fed through the pong
PING_AFTER_S = 5.0

#: Events that carry no prices but prove the connection is alive.
CONTROL_EVENTS = frozenset({"subscribe", "unsubscribe", "notice", "channel-conn-count"})
_SIDES = frozenset({"buy", "sell"})

_Records = tuple[list[PriceRecord], list[SeqSpan | None]]


def quote_ccy_of(venue_symbol: str) -> str:
    """``BTC-USDT`` -> USDT; instruments like ``BTC-USD-SWAP`` -> USD."""
    parts = venue_symbol.split("-")
    return parts[1] if len(parts) > 1 else ""


def connect_url(base_url: str, venue_symbols: Sequence[str],
                quote_only: Sequence[str] = ()) -> str:
    """OKX takes its subscriptions as messages, so the URL is the base URL."""
    del venue_symbols, quote_only
    return base_url


def subscribe_messages(venue_symbols: Sequence[str], quote_only: Sequence[str] = ()) -> list[str]:
    """One subscribe with an arg per channel and instrument; rate markets get tickers only."""
    args = [{"channel": ch, "instId": s} for s in venue_symbols for ch in CHANNELS]
    args += [{"channel": "tickers", "instId": s} for s in quote_only]
    return [json.dumps({"op": "subscribe", "args": args})]


def parse_tickers(
    data: list[Any], recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: FxToUsd,
) -> _Records:
    """Ticker items -> one quote each."""
    quotes: list[PriceRecord] = []
    for item in data:
        if item.__class__ is not dict:
            raise RecordError("bad_field", "tickers item")
        venue_symbol = item.get("instId")
        symbol = canonical(symbol_map, venue_symbol, "instId")
        ccy = quote_ccy_of(venue_symbol)
        fx = rate_for(fx_to_usd, ccy)
        bid = positive(item.get("bidPx"), "bidPx", "bad_price") * fx
        ask = positive(item.get("askPx"), "askPx", "bad_price") * fx
        check_book(bid, ask)
        quotes.append(Quote(
            exchange=NAME,
            symbol=symbol,
            venue_symbol=venue_symbol,
            bid=bid,
            bid_size=positive(item.get("bidSz"), "bidSz", "bad_size"),
            ask=ask,
            ask_size=positive(item.get("askSz"), "askSz", "bad_size"),
            quote_ccy=ccy,
            fx_to_usd=fx,
            ts_ms=recv_ts_ms,
            recv_ts_ms=recv_ts_ms,
            exchange_ts_ms=epoch_ms(item, "ts"),
        ))
    return quotes, [None] * len(quotes)


def parse_trades(
    data: list[Any], recv_ts_ms: int, symbol_map: Mapping[str, str], fx_to_usd: FxToUsd,
) -> _Records:
    """Trade items -> one trade each, with their trade-id spans."""
    trades: list[PriceRecord] = []
    seqs: list[SeqSpan | None] = []
    for item in data:
        if item.__class__ is not dict:
            raise RecordError("bad_field", "trades item")
        venue_symbol = item.get("instId")
        symbol = canonical(symbol_map, venue_symbol, "instId")
        side = item.get("side")
        if side.__class__ is not str or side not in _SIDES:
            if side is None:
                raise RecordError("missing_field", "side")
            raise RecordError("bad_field", f"side={side!r}"[:80])
        trade_id = item.get("tradeId")
        if trade_id is None:
            raise RecordError("missing_field", "tradeId")
        ccy = quote_ccy_of(venue_symbol)
        fx = rate_for(fx_to_usd, ccy)
        trades.append(Trade(
            exchange=NAME,
            symbol=symbol,
            venue_symbol=venue_symbol,
            price=positive(item.get("px"), "px", "bad_price") * fx,
            size=positive(item.get("sz"), "sz", "bad_size"),
            side=side,
            trade_id=str(trade_id),
            quote_ccy=ccy,
            fx_to_usd=fx,
            ts_ms=recv_ts_ms,
            recv_ts_ms=recv_ts_ms,
            exchange_ts_ms=epoch_ms(item, "ts"),
        ))
        last = seq_number(trade_id)
        count = seq_number(item.get("count", 1)) or 1
        seqs.append(None if last is None else (last - count + 1, last))
    return trades, seqs


_Parser = Callable[[list[Any], int, Mapping[str, str], FxToUsd], _Records]
PARSERS: dict[str, _Parser] = {
    "tickers": parse_tickers,
    "trades": parse_trades,
}


def _event(msg: dict[str, Any]) -> Parsed:
    event = msg.get("event")
    if event == "error":
        raise RecordError("venue_error", f"{msg.get('code')}: {msg.get('msg')}"[:200])
    if event.__class__ is not str or event not in CONTROL_EVENTS:
        raise RecordError("unknown_type", repr(event)[:80])
    return Parsed(event, [])


def parse_frame(
    raw: str | bytes,
    recv_ts_ms: int,
    *,
    symbol_map: Mapping[str, str] | None = None,
    fx_to_usd: FxToUsd = 1.0,
) -> Parsed:
    """One text frame -> Parsed: the channel (or event) and records."""
    if raw == PONG or raw == b"pong":  # the answer to our keepalive, plain text
        return Parsed(PONG, [])
    msg = decode(raw)
    if msg.__class__ is not dict:
        raise RecordError("unknown_type", type(msg).__name__)
    if "event" in msg:
        return _event(msg)
    arg, data = msg.get("arg"), msg.get("data")
    channel = arg.get("channel") if arg.__class__ is dict else None
    if channel.__class__ is not str or data.__class__ is not list:
        raise RecordError("unknown_type", repr(channel)[:80])
    parser = PARSERS.get(channel)
    if parser is None:
        if channel.startswith("books"):  # what the recorder subscribed to, not this producer
            return Parsed("books", [])
        raise RecordError("unknown_type", repr(channel)[:80])
    symbols = _DEFAULT_MAP if symbol_map is None else symbol_map
    records, seqs = parser(data, recv_ts_ms, symbols, fx_to_usd)
    return Parsed(channel, records, seqs)


#: One text frame -> quote/trade records ([] for control frames), or RecordError.
parse_message = records_only(parse_frame)


def _resubscribe_depth(venue_symbol: str, max_levels: int) -> list[str]:
    """Unsubscribe and subscribe the instrument's ``books`` again: OKX answers a new
    subscription with a snapshot."""
    del max_levels
    arg = {"channel": books.CHANNEL, "instId": venue_symbol}
    return [json.dumps({"op": "unsubscribe", "args": [arg]}),
            json.dumps({"op": "subscribe", "args": [arg]})]


#: ``books`` (400 levels, seqId/prevSeqId chained; ``books/okx.py``).
DEPTH = DepthSupport(
    channel=books.CHANNEL,
    depth_parts=books.depth_parts,
    new_sync=books.new_sync,
    subscribe=books.subscribe_messages,
    resubscribe=_resubscribe_depth,
    # ``tickers`` is throttled: 25 in 10 s of okx.jsonl against 98 ``books`` messages
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
    ping_message=PING,
    ping_after_s=PING_AFTER_S,
    depth=DEPTH,
)
_DEFAULT_MAP = VENUE.symbol_map()
