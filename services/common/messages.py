"""The wire records of DESIGN.md: quotes and trades on ``crypto-prices``, spreads and alerts.

Every record is one JSON object with schema version ``v``. Each record is declared once, as a
frozen dataclass below: a field's name (with its unit: ``*_ts_ms`` epoch ms, ``*_ms`` a
duration, ``*_usd``, ``*_bps``; DESIGN's ``window_start_ms``/``window_end_ms`` and an
episode's ``start_ms``/``end_ms`` are epoch ms under their contract names), its type, and
whether it may be null (``| None``). The parsers
here, the Flink column lists (flink.detection) and the history store's SQLite tables
(services.common.history) derive from :func:`record_fields`; the literal copies that must stay
(the Flink ``.sql`` sink schemas) are checked against it by tests with :func:`column_drift`.

Parsers are pure: bytes in, a frozen dataclass out, or :class:`RecordError` with a short
``reason`` that callers use as a metric label. Unknown fields are ignored so that newer writers
do not break older readers; fields added later (a quote's ``depth``, the ``executable_*`` of
spreads and episodes) read as None when an older writer left them out.
"""

from __future__ import annotations

import functools
import json
import math
import re
import types
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeAlias, TypeVar, Union, get_args, get_origin, get_type_hints

from services.common.exceptions import RecordError

SCHEMA_VERSION = 1
#: The field every record carries its schema version in.
VERSION_FIELD = "v"
SIDES = ("buy", "sell")
#: Largest magnitude of an integer field: 2**53, the integers a double holds exactly (the job
#: reads event times as doubles to see fractions, flink.detection.SOURCE_AS_DOUBLE), far
#: beyond any epoch ms.
MAX_EXACT_INT = 2**53
#: Longest name (venue, symbol, venue symbol, currency, side, trade id) a record may carry, in
#: characters; the job's valid_quotes view checks the same bound (flink.detection).
MAX_NAME_CHARS = 64
#: Longest record id: three names and an epoch ms, joined (:func:`spread_id`, :func:`episode_id`).
MAX_ID_CHARS = 4 * MAX_NAME_CHARS
#: Text that is not a name: a JSON number, keyword or container as text. The job's JSON source
#: turns a number, boolean or list it finds in a text column into such text ("-1", "true",
#: "[1,2]"), so both the readers and the job (the same pattern, Java regex syntax) reject it.
NOT_A_NAME = (r"^(-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"
              r"|(true|false|null|NaN|-?Infinity)$|[\[{])")
_NOT_A_NAME = re.compile(NOT_A_NAME)
#: A price (or fx rate) at or above this is not a price: it guards against a broken writer's
#: huge numbers; the readers (:func:`parse_price_record`) and the job (flink.detection) both
#: reject it.
MAX_PRICE_USD = 1e12
#: Most entries a quote's depth ladder may have (a bound on what one record can make us read).
MAX_DEPTH_LEVELS = 32

#: Reads one field from a decoded JSON object: (object, key, optional) -> value.
Reader = Callable[[dict[str, Any], str, bool], Any]
_WIRE = "wire"


@dataclass(frozen=True, slots=True)
class _Rule:
    """How one field is read when its type's plain rule does not fit."""

    #: Replaces the type's reader.
    read: Reader | None = None
    #: A field whose value stands in when this one is absent, null or 0 (older writers).
    fallback: str | None = None
    #: ``v`` and ``type``: the same in every record of a class; checked, never read as data.
    header: bool = False


def _wire(**rule: Any) -> dict[str, _Rule]:
    return {_WIRE: _Rule(**rule)}


_HEADER = _wire(header=True)


def _req(obj: dict[str, Any], key: str) -> Any:
    if obj.get(key) is None:
        raise RecordError("missing_field", key)
    return obj[key]


def _str(obj: dict[str, Any], key: str, optional: bool = False) -> str | None:
    if obj.get(key) is None and optional:
        return None
    value = _req(obj, key)
    limit = MAX_ID_CHARS if key == "id" else MAX_NAME_CHARS
    if not isinstance(value, str) or not value or _NOT_A_NAME.search(value):
        raise RecordError("bad_field", key)
    if len(value) > limit:
        raise RecordError("bad_field", f"{key} longer than {limit} characters")
    return value


def _text(obj: dict[str, Any], key: str, optional: bool = False) -> str | None:
    """Any JSON value, as text: venues number some ids and spell others."""
    if obj.get(key) is None and optional:
        return None
    text = str(_req(obj, key))
    if len(text) > MAX_NAME_CHARS:
        raise RecordError("bad_field", f"{key} longer than {MAX_NAME_CHARS} characters")
    return text


def _int(obj: dict[str, Any], key: str, optional: bool = False) -> int | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    value = _req(obj, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError("bad_field", key)
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise RecordError("bad_field", f"{key}={value!r}")  # NaN, Infinity or a fraction
    if not -MAX_EXACT_INT <= int(value) <= MAX_EXACT_INT:
        raise RecordError("bad_field", f"{key} out of range")
    return int(value)


def _num(obj: dict[str, Any], key: str, optional: bool = False) -> float | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    value = _req(obj, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError("bad_field", key)
    try:
        number = float(value)
    except OverflowError:  # an integer literal too large for a double
        raise RecordError("bad_field", f"{key} out of range") from None
    if not math.isfinite(number):  # Python's json reads NaN and Infinity; no field wants them
        raise RecordError("bad_field", f"{key}={value!r}")
    return number


def _flag(obj: dict[str, Any], key: str, optional: bool = False) -> bool | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise RecordError("bad_field", key)
    return value


def _truthy(obj: dict[str, Any], key: str, optional: bool = False) -> bool:
    """A flag older writers leave out: absent or null is False."""
    return bool(obj.get(key, False))


@dataclass(frozen=True, slots=True)
class DepthLevel:
    """One size of a quote's depth ladder: the volume-weighted prices (USD, after fx, like
    ``bid``/``ask``) at which ``notional_usd`` worth of the base asset could be sold into the
    bids now (``bid_px``) and bought from the asks (``ask_px``); None where the book the producer
    keeps is too thin for that size."""

    notional_usd: float
    bid_px: float | None
    ask_px: float | None


#: A quote's ladder: one level per configured size (ARB_DEPTH_NOTIONALS_USD), increasing.
Ladder: TypeAlias = tuple[DepthLevel, ...]


def _depth_error(detail: str) -> RecordError:
    return RecordError("bad_depth", detail[:120])


def _depth_px(entry: dict[str, Any], key: str, where: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _depth_error(f"{where}.{key}={value!r}")
    number = float(value) if abs(value) < 1e308 else math.inf
    if not math.isfinite(number) or number <= 0:
        raise _depth_error(f"{where}.{key}={value!r}")
    return number


def _ladder(obj: dict[str, Any], key: str, optional: bool = False) -> Ladder | None:
    """A depth ladder: absent or null is None (the venue sends no book); anything else must be
    a list of at most :data:`MAX_DEPTH_LEVELS` objects, ``notional_usd`` finite, > 0 and
    strictly increasing, each price null or finite and > 0; else ``bad_depth``."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _depth_error(f"{key} is {type(value).__name__}, not a list")
    if len(value) > MAX_DEPTH_LEVELS:
        raise _depth_error(f"{key} has {len(value)} levels")
    levels = []
    for i, entry in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(entry, dict):
            raise _depth_error(f"{where} is {type(entry).__name__}, not an object")
        notional = _depth_px(entry, "notional_usd", where)
        if notional is None:
            raise _depth_error(f"{where}.notional_usd missing")
        levels.append(DepthLevel(notional, _depth_px(entry, "bid_px", where),
                                 _depth_px(entry, "ask_px", where)))
    return check_depth(tuple(levels), key)


#: The plain reader of each field type.
_READERS: dict[Any, Reader] = {str: _str, int: _int, float: _num, bool: _flag, Ladder: _ladder}


@dataclass(frozen=True, slots=True)
class Quote:
    """Best bid/ask of one venue for one canonical symbol, prices in USD after fx."""

    exchange: str
    symbol: str
    venue_symbol: str
    bid: float
    bid_size: float | None
    ask: float
    ask_size: float | None
    quote_ccy: str
    fx_to_usd: float
    ts_ms: int
    recv_ts_ms: int
    exchange_ts_ms: int | None
    refresh: bool = field(default=False, metadata=_wire(read=_truthy))
    #: The depth ladder (:class:`DepthLevel` per configured size, increasing); None: this venue
    #: sends top of book only.
    depth: Ladder | None = None
    type: str = field(default="quote", metadata=_HEADER)
    v: int = field(default=SCHEMA_VERSION, metadata=_HEADER)


@dataclass(frozen=True, slots=True)
class Trade:
    """One venue trade; ``side`` is the taker's side, price in USD after fx."""

    exchange: str
    symbol: str
    venue_symbol: str
    price: float
    size: float
    side: str
    trade_id: str = field(metadata=_wire(read=_text))
    quote_ccy: str
    fx_to_usd: float
    ts_ms: int
    recv_ts_ms: int
    exchange_ts_ms: int | None
    type: str = field(default="trade", metadata=_HEADER)
    v: int = field(default=SCHEMA_VERSION, metadata=_HEADER)


@dataclass(frozen=True, slots=True)
class Spread:
    """One ordered venue pair in one window: buy at ``buy_exchange``'s ask, sell at the other's bid.

    The records of ``arbitrage-spreads`` and of ``arbitrage-alerts`` (the spreads that pass the
    alert rule). ``newest_recv_ts_ms`` (receive time of the newest contributing quote) is an
    addition to DESIGN.md's field list so that detection and delivery latency can be measured
    downstream; a record without it (an older writer), or with 0, reads as ``window_end_ms``.

    ``executable_usd``: the largest ladder notional N at which buying at the buy venue's
    ``ask_px(N)`` and selling at the sell venue's ``bid_px(N)`` still passes the alert rule;
    ``executable_size`` = N / ask_px(N) in the base asset; ``executable_profit_usd`` the profit
    at that size net of both taker fees (services.common.spread.executable). All three null
    where no size passes, a side has no price at a size, or a quote carries no ladder of the
    configured sizes.
    """

    id: str
    symbol: str
    window_start_ms: int
    window_end_ms: int
    buy_exchange: str
    buy_ask: float
    buy_size: float | None
    sell_exchange: str
    sell_bid: float
    sell_size: float | None
    spread_usd: float
    spread_bps: float
    net_spread_bps: float
    max_size: float | None
    est_profit_usd: float | None
    quote_age_ms: int
    newest_recv_ts_ms: int = field(metadata=_wire(fallback="window_end_ms"))
    detected_ts_ms: int | None = None
    executable_usd: float | None = None
    executable_size: float | None = None
    executable_profit_usd: float | None = None
    v: int = field(default=SCHEMA_VERSION, metadata=_HEADER)


@dataclass(frozen=True, slots=True)
class Episode:
    """One ``arbitrage-episodes`` record: one opportunity of one symbol and direction, at tick
    resolution.

    Written twice with the same ``id``: when the quote that opens it is processed (``is_open``,
    that quote only) and when it closes (every passing quote). Times are event time, epoch ms:
    ``start_ms`` is the opening quote's, ``end_ms`` when the pair stopped passing the alert rule
    (the quote that ended it, or its older side going stale), ``duration_ms`` = end - start;
    ``quotes`` counts the quotes at which the pair passed. ``capturable``: ``duration_ms >=
    required_ms`` (slower venue's p99 feed latency + execution time). See
    services.common.episodes.

    ``executable_usd``, ``executable_size``, ``executable_profit_usd`` (see :class:`Spread`):
    in the opened record, the opening quote's; in the closed one, each the largest over the
    passing quotes, as the other peaks are (so not necessarily all three from one quote).
    """

    id: str
    symbol: str
    buy_exchange: str
    sell_exchange: str
    start_ms: int
    end_ms: int
    duration_ms: int
    quotes: int
    peak_net_spread_bps: float
    mean_net_spread_bps: float
    peak_spread_usd: float
    peak_est_profit_usd: float | None
    required_ms: int
    capturable: bool
    is_open: bool
    newest_recv_ts_ms: int
    detected_ts_ms: int | None = None
    executable_usd: float | None = None
    executable_size: float | None = None
    executable_profit_usd: float | None = None
    v: int = field(default=SCHEMA_VERSION, metadata=_HEADER)

    @property
    def direction(self) -> tuple[str, str, str]:
        """(symbol, buy venue, sell venue): what an episode is an episode of."""
        return (self.symbol, self.buy_exchange, self.sell_exchange)


PriceRecord = Quote | Trade
#: Every wire record, for checks that walk all of them.
RECORDS = (Quote, Trade, Spread, Episode)
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One declared field as every copy of a schema needs it."""

    name: str
    #: The value's type: str, int, float, bool or :data:`Ladder`.
    kind: Any
    #: May be null on the wire (None in Python).
    optional: bool
    #: ``v`` or ``type``: part of the envelope, not of the record's data.
    header: bool


def _kind(hint: Any) -> tuple[type, bool]:
    """(base type, optional) of an annotation such as ``float | None``."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"a record field has one type or that type | None, not {hint}")
        return args[0], True
    return hint, False


@functools.cache
def record_fields(record: type) -> tuple[FieldSpec, ...]:
    """The declared fields of a record dataclass, in declaration order (the wire order)."""
    hints = get_type_hints(record)
    specs = []
    for f in fields(record):
        kind, optional = _kind(hints[f.name])
        if kind not in _READERS:
            raise TypeError(f"{record.__name__}.{f.name}: unsupported type {kind}")
        rule = f.metadata.get(_WIRE, _Rule())
        specs.append(FieldSpec(f.name, kind, optional, rule.header))
    return tuple(specs)


def data_fields(record: type) -> tuple[str, ...]:
    """Names of a record's data fields (its header ``v``/``type`` left out)."""
    return tuple(s.name for s in record_fields(record) if not s.header)


def column_drift(declared: Sequence[tuple[str, str]], copy: Sequence[tuple[str, str]],
                 where: str, *, ordered: bool = True) -> list[str]:
    """What a copy of a declaration (name, type pairs) got wrong, one line per problem; empty
    when it matches. ``ordered``: the copy must also keep the declared order."""
    want, have = dict(declared), dict(copy)
    problems = [f"{where}: lacks {name} {kind}" for name, kind in declared if name not in have]
    problems += [f"{where}: has undeclared {name}" for name, _ in copy if name not in want]
    problems += [f"{where}: {name} is {have[name]}, declared {kind}"
                 for name, kind in declared if name in have and have[name] != kind]
    if ordered and not problems and [n for n, _ in declared] != [n for n, _ in copy]:
        problems.append(f"{where}: columns in another order than declared")
    return problems


def spread_id(symbol: str, window_end_ms: int, buy_exchange: str, sell_exchange: str) -> str:
    """Deterministic id, so a replayed window yields the same id and the alerter can dedup."""
    return f"{symbol}|{window_end_ms}|{buy_exchange}|{sell_exchange}"


def episode_id(symbol: str, buy_exchange: str, sell_exchange: str, start_ms: int) -> str:
    """Deterministic: a replayed episode gets the same id, so readers can deduplicate."""
    return f"{symbol}|{buy_exchange}|{sell_exchange}|{start_ms}"


def to_json(record: Quote | Trade | Spread | Episode) -> bytes:
    """Serialize compactly; None stays null so readers see every field of the schema."""
    return json.dumps(asdict(record), separators=(",", ":"), allow_nan=False).encode()


def _load(raw: bytes | str) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError("not_json", str(exc)[:120]) from exc
    except RecursionError:  # nested deeper than the interpreter's stack: hostile, not JSON
        raise RecordError("not_json", "nested too deeply") from None
    if not isinstance(obj, dict):
        raise RecordError("not_object", type(obj).__name__)
    version = obj.get(VERSION_FIELD)
    if version != SCHEMA_VERSION or isinstance(version, bool):  # True == 1 in Python
        raise RecordError("bad_version", repr(version)[:40])
    return obj


@functools.cache
def _plan(record: type) -> tuple[tuple[str, Reader, bool, str | None], ...]:
    """Per data field: (name, reader, optional, fallback), from the declaration."""
    rules = {f.name: f.metadata.get(_WIRE, _Rule()) for f in fields(record)}
    return tuple(
        (s.name, rules[s.name].read or _READERS[s.kind],
         s.optional or rules[s.name].fallback is not None, rules[s.name].fallback)
        for s in record_fields(record) if not s.header
    )


def parse_fields(record: type[_R], obj: dict[str, Any]) -> _R:
    """Build a record from a decoded object, field by field in declaration order: a required
    field that is absent or null is ``missing_field``, a value of the wrong type ``bad_field``."""
    values: dict[str, Any] = {}
    for name, read, optional, fallback in _plan(record):
        value = read(obj, name, optional)
        values[name] = values[fallback] if fallback and not value else value
    return record(**values)


def check_price(value: float, name: str) -> float:
    """A price must be finite and strictly positive; anything else is a bad quote."""
    if not math.isfinite(value) or value <= 0:
        raise RecordError("bad_price", f"{name}={value!r}")
    return value


def check_size(value: float | None, name: str) -> float | None:
    """A size is optional (some venues send none) but, when present, finite and >= 0."""
    if value is not None and (not math.isfinite(value) or value < 0):
        raise RecordError("bad_size", f"{name}={value!r}")
    return value


def check_depth(depth: Ladder | None, name: str = "depth") -> Ladder | None:
    """A ladder is optional; when present, at most :data:`MAX_DEPTH_LEVELS` levels, notionals
    finite, > 0 and strictly increasing, prices null or finite and > 0 (``bad_depth``)."""
    if depth is None:
        return None
    if len(depth) > MAX_DEPTH_LEVELS:
        raise _depth_error(f"{name} has {len(depth)} levels")
    previous = 0.0
    for i, level in enumerate(depth):
        if not isinstance(level, DepthLevel):
            raise _depth_error(f"{name}[{i}] is {type(level).__name__}")
        for key, value in (("notional_usd", level.notional_usd), ("bid_px", level.bid_px),
                           ("ask_px", level.ask_px)):
            if value is None and key != "notional_usd":
                continue
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value) or value <= 0):
                raise _depth_error(f"{name}[{i}].{key}={value!r}")
        if level.notional_usd <= previous:
            raise _depth_error(f"{name}[{i}].notional_usd={level.notional_usd!r} not increasing")
        previous = level.notional_usd
    return depth


def validate_quote(quote: Quote) -> Quote:
    """Reject what no detector should see: bad prices, bad sizes, a crossed book, a bad
    ladder."""
    check_price(quote.bid, "bid")
    check_price(quote.ask, "ask")
    check_price(quote.fx_to_usd, "fx_to_usd")
    check_size(quote.bid_size, "bid_size")
    check_size(quote.ask_size, "ask_size")
    check_depth(quote.depth)
    if quote.bid >= quote.ask:
        raise RecordError("crossed_book", f"bid={quote.bid} ask={quote.ask}")
    return quote


def validate_trade(trade: Trade) -> Trade:
    check_price(trade.price, "price")
    check_price(trade.fx_to_usd, "fx_to_usd")
    check_size(trade.size, "size")
    if trade.side not in SIDES:
        raise RecordError("bad_field", f"side={trade.side!r}")
    return trade


#: ``crypto-prices`` record kinds (each class's ``type``) and their validation.
_PRICE_KINDS: dict[str, tuple[type[Quote] | type[Trade], Callable[[Any], PriceRecord]]] = {
    Quote.__dataclass_fields__["type"].default: (Quote, validate_quote),
    Trade.__dataclass_fields__["type"].default: (Trade, validate_trade),
}


def parse_price_record(raw: bytes | str) -> PriceRecord:
    """Parse one ``crypto-prices`` record (quote or trade)."""
    obj = _load(raw)
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in _PRICE_KINDS:
        raise RecordError("unknown_type", repr(kind))
    record, validate = _PRICE_KINDS[kind]
    parsed = validate(parse_fields(record, obj))
    prices = ((("bid", parsed.bid), ("ask", parsed.ask)) if isinstance(parsed, Quote)
              else (("price", parsed.price),))
    for name, value in (*prices, ("fx_to_usd", parsed.fx_to_usd)):
        if value >= MAX_PRICE_USD:  # as the job's valid_quotes: no price is this high
            raise RecordError("bad_price", f"{name}={value!r}")
    return parsed


def parse_spread(raw: bytes | str) -> Spread:
    """Parse one ``arbitrage-spreads`` / ``arbitrage-alerts`` record."""
    return parse_fields(Spread, _load(raw))


def parse_episode(raw: bytes | str) -> Episode:
    """Parse one ``arbitrage-episodes`` record."""
    return parse_fields(Episode, _load(raw))
