"""What every venue connector provides, and the conversions all parsers share.

A connector (``coinbase.py``, ``binance.py``, ``kraken.py``, ``okx.py``, ``bybit.py``,
``bitstamp.py``) is data plus pure functions: no sockets, no clocks, no Kafka. The feed loop
and the replay only ever see a :class:`Venue`, so no code outside a connector branches on the
venue's name.

Prices become floats here, with ``float(text)``: it rounds a decimal string correctly, exactly as
``float(Decimal(text))`` would, at a fraction of the cost (the parsers run for every frame). Every
number is checked to be finite and strictly positive, so NaN, infinities, zero and negatives never
reach a record.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from services.common.exceptions import ConfigError, RecordError
from services.common.messages import PriceRecord

USD = "USD"
USDT = "USDT"
USDC = "USDC"
#: Quote currencies a market may have: USD itself, or a stablecoin converted at a live rate.
SUPPORTED_QUOTE_CCYS = frozenset({USD, USDT, USDC})

#: A parser's ``fx_to_usd``: one rate for every non-USD quote currency, or a rate per currency.
FxToUsd = float | Mapping[str, float]
#: Sequence numbers a venue sent for one record, first and last (equal unless the record
#: aggregates several venue events, like an OKX trade with ``count`` > 1).
SeqSpan = tuple[int, int]


class Parsed(NamedTuple):
    """What one text frame gave: its kind (the metric's ``channel``) and its records."""

    kind: str
    records: list[PriceRecord]
    #: per record, the venue's sequence numbers for it, or None; see ``sequence.py``. For a
    #: trade they are its trade ids (consecutive per symbol), for a quote an update id that
    #: only increases.
    seqs: list[SeqSpan | None] | None = None


class FrameParser(Protocol):
    """``(raw, recv_ts_ms, symbol_map=, fx_to_usd=) -> Parsed``, or RecordError."""

    def __call__(
        self,
        raw: str | bytes,
        recv_ts_ms: int,
        *,
        symbol_map: Mapping[str, str] | None = None,
        fx_to_usd: FxToUsd = 1.0,
    ) -> Parsed: ...


#: A decoded frame -> [(venue symbol, depth message)], or None when it is not a depth frame.
DepthParts = Callable[[Any], "list[tuple[str, Mapping[str, Any]]] | None"]


@dataclass(frozen=True)
class DepthSupport:
    """How a venue's order books are kept: its depth channel as data and pure functions (the
    venue's module in ``services.producer.books``), so the frame processor and the feed keep
    books for every venue alike."""

    #: the channel's name, for logs and docs (``depth@100ms``, ``level2_batch`` ...)
    channel: str
    depth_parts: DepthParts
    #: (venue symbol, max_levels) -> a DepthSync (``books.base``)
    new_sync: Callable[[str, int], Any]
    #: (venue symbols, max_levels) -> frames to send after connecting ([] when the URL names
    #: the depth streams, as on Binance)
    subscribe: Callable[[Sequence[str], int], list[str]]
    #: (venue symbol, max_levels) -> frames that re-subscribe one market, which makes the venue
    #: send a fresh snapshot; None: the venue has no way to, the feed rolls over instead
    resubscribe: Callable[[str, int], list[str]] | None = None
    #: (venue symbol, max_levels, base url) -> the REST snapshot URL; None: snapshots come on
    #: the WebSocket
    snapshot_url: Callable[[str, int, str], str] | None = None
    #: the REST base URL (ARB_<VENUE>_REST_URL overrides it)
    rest_url: str = ""
    #: a recorded REST URL -> the venue symbol its snapshot is for (None: not a snapshot)
    pair_of_url: Callable[[str], str | None] | None = None
    #: the venue's book is at least as fresh as the channel its quotes come from (a ticker
    #: that moves on trades only, or a throttled one): while the book is synced, its quotes
    #: take their best bid/ask from the book. False (Binance: ``bookTicker`` is real time,
    #: the depth stream 100 ms behind): the quote's top stands and leads the ladder instead
    book_leads: bool = False


@dataclass(frozen=True)
class Venue:
    """One exchange as data: where to connect, what to ask for, how to read the answers."""

    name: str
    ws_url: str
    channels: tuple[str, ...]
    #: canonical symbol (BTC-USD) -> the venue's own spelling (BTCUSDT)
    symbols: Mapping[str, str]
    #: quote currency of the default markets in ``symbols``
    quote_ccy: str
    #: (base url, venue symbols, quote-only venue symbols) -> URL to open
    connect_url: Callable[..., str]
    #: (venue symbols, quote-only venue symbols) -> text frames to send right after connecting
    subscribe_messages: Callable[..., list[str]]
    parse_frame: FrameParser
    #: venue symbol -> its quote currency (e.g. BTCUSDC -> USDC); None: always ``quote_ccy``
    quote_ccy_of: Callable[[str], str] | None = None
    #: USD rate markets the venue lists: canonical (USDT-USD) -> venue symbol (quotes only)
    fx_symbols: Mapping[str, str] = field(default_factory=dict)
    #: an application-level keepalive the venue wants when the client has heard nothing
    ping_message: str | None = None
    ping_after_s: float | None = None
    #: the venue closes connections older than this (Binance: 24 h); None = no limit
    max_connection_s: float | None = None
    #: ``ping_message`` every this many seconds even while frames arrive (Bybit: 20 s)
    ping_every_s: float | None = None
    #: a parser with state per connection (a book): called for each stream of frames (a
    #: connection, a replay pass) instead of sharing ``parse_frame``; None = ``parse_frame``
    new_parser: Callable[[], FrameParser] | None = None
    #: frame kinds by which the venue asks for a new connection (Bitstamp's
    #: ``bts:request_reconnect``): the feed rolls over to a fresh one without a gap
    reconnect_kinds: frozenset[str] = frozenset()
    #: a recorded REST response (url, body) -> the frame it stands for, or None: how a replay
    #: starts a book from the snapshot the recorder fetched, as live starts it from the wire
    snapshot_frame: Callable[[str, str], str | None] | None = None
    #: the venue's order books (depth channel); None: top of book only
    depth: DepthSupport | None = None

    def make_parser(self) -> FrameParser:
        """The parser for one new stream of frames: a fresh one if it keeps state."""
        return self.parse_frame if self.new_parser is None else self.new_parser()

    def venue_symbols(self, canonical: Sequence[str]) -> list[str]:
        """Map canonical symbols to this venue's; an unknown one is a configuration error."""
        missing = [s for s in canonical if s not in self.symbols]
        if missing:
            raise ConfigError(f"ARB_SYMBOLS: {', '.join(missing)} not listed on {self.name} "
                              f"(map it with ARB_{self.name.upper()}_SYMBOLS)")
        return [self.symbols[s] for s in canonical]

    def symbol_map(self, canonical: Sequence[str] | None = None) -> dict[str, str]:
        """venue symbol -> canonical symbol, for the symbols asked for (default: all)."""
        wanted = self.symbols.keys() if canonical is None else canonical
        return {self.symbols[s]: s for s in wanted if s in self.symbols}

    def market_quote_ccy(self, venue_symbol: str) -> str:
        """The quote currency of one of this venue's markets."""
        return self.quote_ccy if self.quote_ccy_of is None else self.quote_ccy_of(venue_symbol)

    def check_markets(self, venue_symbols: Sequence[str]) -> None:
        """Every market must be quoted in USD or a stablecoin this producer can convert."""
        for symbol in venue_symbols:
            ccy = self.market_quote_ccy(symbol)
            if ccy not in SUPPORTED_QUOTE_CCYS:
                raise ConfigError(
                    f"ARB_{self.name.upper()}_SYMBOLS: {symbol} is quoted in {ccy or '?'}; "
                    f"supported: {', '.join(sorted(SUPPORTED_QUOTE_CCYS))}")


def fx_to_usd_for(quote_ccy: str, usdt_usd: float, usdc_usd: float | None = None) -> float:
    """A fixed rate: USD is 1.0, USDT (and USDC) use the caller's rates (ARB_USDT_USD ...)."""
    if quote_ccy == USD:
        return 1.0
    if quote_ccy == USDT:
        return usdt_usd
    if quote_ccy == USDC:
        return usdt_usd if usdc_usd is None else usdc_usd
    raise ConfigError(f"no USD rate for quote currency {quote_ccy!r}")


def rate_for(fx_to_usd: FxToUsd, quote_ccy: str) -> float:
    """The rate to USD for ``quote_ccy``: 1.0 for USD, else the table's (``no_fx_rate``)."""
    if quote_ccy == USD:
        return 1.0
    if fx_to_usd.__class__ is float:  # the common case first: isinstance of a union is slower
        return fx_to_usd
    if isinstance(fx_to_usd, float | int):
        return float(fx_to_usd)
    rate = fx_to_usd.get(quote_ccy)
    if rate is None:
        raise RecordError("no_fx_rate", quote_ccy)
    return rate


def suffix_ccy(venue_symbol: str, known: Sequence[str]) -> str:
    """The quote currency spelled at the end of a concatenated symbol (BTCUSDT -> USDT)."""
    for ccy in known:
        if venue_symbol.endswith(ccy) and len(venue_symbol) > len(ccy):
            return ccy
    return ""


_INF = math.inf
_MAX_EXACT = 2**1023  # below this every int converts to a finite float


def positive(value: Any, key: str, reason: str) -> float:
    """A venue number (decimal string or JSON number) as a finite float > 0, else ``reason``.

    Absent (None) is ``missing_field``; booleans, NaN, infinities, zero and negatives are
    ``reason`` (``bad_price`` or ``bad_size``).
    """
    cls = value.__class__
    if cls is str:
        try:
            number = float(value)
        except ValueError:
            raise RecordError(reason, f"{key}={value!r}") from None
    elif cls is float:
        number = value
    elif cls is int:
        # An integer literal beyond a double's range (JSON allows any length) is not a price.
        number = float(value) if -_MAX_EXACT < value < _MAX_EXACT else _INF
    elif value is None:
        raise RecordError("missing_field", key)
    else:
        raise RecordError(reason, f"{key}={value!r}")
    if 0.0 < number < _INF:  # False for NaN too
        return number
    raise RecordError(reason, f"{key}={value!r}")


def canonical(symbol_map: Mapping[str, str], venue_symbol: Any, key: str = "symbol") -> str:
    """The canonical symbol for a venue symbol we asked for, else ``unknown_symbol``."""
    symbol = symbol_map.get(venue_symbol) if venue_symbol.__class__ is str else None
    if symbol is None:
        if venue_symbol is None:
            raise RecordError("missing_field", key)
        raise RecordError("unknown_symbol", repr(venue_symbol))
    return symbol


def check_book(bid: float, ask: float) -> None:
    """A best bid at or above the best ask is a crossed book, never a quote."""
    if bid >= ask:
        raise RecordError("crossed_book", f"bid={bid} ask={ask}")


def seq_number(value: Any) -> int | None:
    """A venue sequence number or id as an int (JSON number or digit string), else None."""
    if value.__class__ is int:
        return value
    if value.__class__ is str and value.isascii() and value.isdigit():
        return int(value)
    return None


_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$",
)
_UTC_SECOND = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
#: "YYYY-MM-DDTHH:MM:SS" -> epoch seconds; consecutive messages mostly share the second.
_SECONDS: dict[str, int] = {}


def _utc_seconds(head: str, value: str, key: str) -> int:
    seconds = _SECONDS.get(head)
    if seconds is None:
        if _UTC_SECOND.match(head) is None:
            raise RecordError("bad_time", f"{key}={value!r}")
        try:
            seconds = int(datetime.fromisoformat(head + "+00:00").timestamp())
        except ValueError as exc:
            raise RecordError("bad_time", f"{key}={value!r}") from exc
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        _SECONDS[head] = seconds
    return seconds


def rfc3339_to_ms(value: Any, key: str = "time") -> int:
    """RFC 3339 with any number of fraction digits (Coinbase sends 6 or 9) -> epoch ms."""
    if value.__class__ is str and len(value) >= 20 and value[-1] == "Z":
        fraction = value[20:-1]
        if len(value) == 20 or (value[19] == "." and fraction.isascii() and fraction.isdigit()):
            seconds = _utc_seconds(value[:19], value, key)
            return seconds * 1000 + (int(fraction[:3].ljust(3, "0")) if fraction else 0)
    return _rfc3339_slow(value, key)


def _rfc3339_slow(value: Any, key: str) -> int:
    if not isinstance(value, str):
        raise RecordError("bad_time", f"{key}={value!r}")
    match = _RFC3339.match(value)
    if match is None:
        raise RecordError("bad_time", f"{key}={value!r}")
    date, clock, fraction, zone = match.groups()
    zone = "+00:00" if zone in {"Z", "z"} else zone
    try:
        seconds = datetime.fromisoformat(f"{date}T{clock}{zone}").timestamp()
    except ValueError as exc:
        raise RecordError("bad_time", f"{key}={value!r}") from exc
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    return int(seconds) * 1000 + millis


def epoch_ms(msg: Mapping[str, Any], key: str) -> int:
    """An epoch-ms field, JSON integer (Binance ``T``) or digit string (OKX ``ts``)."""
    value = msg.get(key)
    if value is None:
        raise RecordError("missing_field", key)
    number = seq_number(value)
    if number is None or number <= 0:
        raise RecordError("bad_time", f"{key}={value!r}")
    return number


def seconds_text_to_ms(value: Any, key: str = "time") -> int:
    """``"1618678142.557535"`` (seconds with a fraction, as text) -> epoch ms, no float error."""
    if value.__class__ is str:
        whole, _, fraction = value.partition(".")
        if (whole.isascii() and whole.isdigit() and (not fraction or (
                fraction.isascii() and fraction.isdigit()))):
            return int(whole) * 1000 + int(fraction[:3].ljust(3, "0"))
    raise RecordError("bad_time", f"{key}={value!r}")


def records_only(parse_frame: FrameParser) -> Callable[..., list[PriceRecord]]:
    """A venue's ``parse_message``: its ``parse_frame`` without the kind and sequence ids."""

    def parse_message(
        raw: str | bytes,
        recv_ts_ms: int,
        *,
        symbol_map: Mapping[str, str] | None = None,
        fx_to_usd: FxToUsd = 1.0,
    ) -> list[PriceRecord]:
        return parse_frame(raw, recv_ts_ms, symbol_map=symbol_map, fx_to_usd=fx_to_usd).records

    return parse_message
