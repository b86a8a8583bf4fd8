"""The wire records of DESIGN.md: quotes and trades on ``crypto-prices``, spreads and alerts.

Every record is one JSON object with schema version ``v``. Parsers here are pure: bytes in,
a frozen dataclass out, or :class:`RecordError` with a short ``reason`` that callers use as a
metric label. Unknown fields are ignored so that newer writers do not break older readers.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from services.common.exceptions import RecordError

SCHEMA_VERSION = 1
SIDES = ("buy", "sell")
INT64_MAX = 2**63 - 1


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
    refresh: bool = False
    type: str = "quote"
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class Trade:
    """One venue trade; ``side`` is the taker's side, price in USD after fx."""

    exchange: str
    symbol: str
    venue_symbol: str
    price: float
    size: float
    side: str
    trade_id: str
    quote_ccy: str
    fx_to_usd: float
    ts_ms: int
    recv_ts_ms: int
    exchange_ts_ms: int | None
    type: str = "trade"
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class Spread:
    """One ordered venue pair in one window: buy at ``buy_exchange``'s ask, sell at the other's bid.

    ``newest_recv_ts_ms`` (receive time of the newest contributing quote) is an addition to
    DESIGN.md's field list so that detection and delivery latency can be measured downstream.
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
    newest_recv_ts_ms: int
    detected_ts_ms: int | None = None
    v: int = SCHEMA_VERSION


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
    v: int = SCHEMA_VERSION

    @property
    def direction(self) -> tuple[str, str, str]:
        """(symbol, buy venue, sell venue): what an episode is an episode of."""
        return (self.symbol, self.buy_exchange, self.sell_exchange)


PriceRecord = Quote | Trade


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
    if not isinstance(obj, dict):
        raise RecordError("not_object", type(obj).__name__)
    if obj.get("v") != SCHEMA_VERSION:
        raise RecordError("bad_version", repr(obj.get("v")))
    return obj


def _req(obj: dict[str, Any], key: str) -> Any:
    if obj.get(key) is None:
        raise RecordError("missing_field", key)
    return obj[key]


def _str(obj: dict[str, Any], key: str) -> str:
    value = _req(obj, key)
    if not isinstance(value, str) or not value:
        raise RecordError("bad_field", key)
    return value


def _int(obj: dict[str, Any], key: str, *, optional: bool = False) -> int | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    value = _req(obj, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError("bad_field", key)
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise RecordError("bad_field", f"{key}={value!r}")  # NaN, Infinity or a fraction
    if not -INT64_MAX <= int(value) <= INT64_MAX:  # Flink and Kafka readers use 64-bit longs
        raise RecordError("bad_field", f"{key} out of range")
    return int(value)


def _num(obj: dict[str, Any], key: str, *, optional: bool = False) -> float | None:
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


def validate_quote(quote: Quote) -> Quote:
    """Reject what no detector should see: bad prices, bad sizes, a crossed book."""
    check_price(quote.bid, "bid")
    check_price(quote.ask, "ask")
    check_price(quote.fx_to_usd, "fx_to_usd")
    check_size(quote.bid_size, "bid_size")
    check_size(quote.ask_size, "ask_size")
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


def parse_price_record(raw: bytes | str) -> PriceRecord:
    """Parse one ``crypto-prices`` record (quote or trade)."""
    obj = _load(raw)
    kind = obj.get("type")
    common = {
        "exchange": _str(obj, "exchange"),
        "symbol": _str(obj, "symbol"),
        "venue_symbol": _str(obj, "venue_symbol"),
        "quote_ccy": _str(obj, "quote_ccy"),
        "fx_to_usd": _num(obj, "fx_to_usd"),
        "ts_ms": _int(obj, "ts_ms"),
        "recv_ts_ms": _int(obj, "recv_ts_ms"),
        "exchange_ts_ms": _int(obj, "exchange_ts_ms", optional=True),
    }
    if kind == "quote":
        return validate_quote(
            Quote(
                bid=_num(obj, "bid"),
                bid_size=_num(obj, "bid_size", optional=True),
                ask=_num(obj, "ask"),
                ask_size=_num(obj, "ask_size", optional=True),
                refresh=bool(obj.get("refresh", False)),
                **common,
            ),
        )
    if kind == "trade":
        return validate_trade(
            Trade(
                price=_num(obj, "price"),
                size=_num(obj, "size"),
                side=_str(obj, "side"),
                trade_id=str(_req(obj, "trade_id")),
                **common,
            ),
        )
    raise RecordError("unknown_type", repr(kind))


def parse_spread(raw: bytes | str) -> Spread:
    """Parse one ``arbitrage-spreads`` / ``arbitrage-alerts`` record."""
    obj = _load(raw)
    window_end_ms = _int(obj, "window_end_ms")
    return Spread(
        id=_str(obj, "id"),
        symbol=_str(obj, "symbol"),
        window_start_ms=_int(obj, "window_start_ms"),
        window_end_ms=window_end_ms,
        buy_exchange=_str(obj, "buy_exchange"),
        buy_ask=_num(obj, "buy_ask"),
        buy_size=_num(obj, "buy_size", optional=True),
        sell_exchange=_str(obj, "sell_exchange"),
        sell_bid=_num(obj, "sell_bid"),
        sell_size=_num(obj, "sell_size", optional=True),
        spread_usd=_num(obj, "spread_usd"),
        spread_bps=_num(obj, "spread_bps"),
        net_spread_bps=_num(obj, "net_spread_bps"),
        max_size=_num(obj, "max_size", optional=True),
        est_profit_usd=_num(obj, "est_profit_usd", optional=True),
        quote_age_ms=_int(obj, "quote_age_ms"),
        newest_recv_ts_ms=_int(obj, "newest_recv_ts_ms", optional=True) or window_end_ms,
        detected_ts_ms=_int(obj, "detected_ts_ms", optional=True),
    )


def _flag(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise RecordError("bad_field", key)
    return value


def parse_episode(raw: bytes | str) -> Episode:
    """Parse one ``arbitrage-episodes`` record."""
    obj = _load(raw)
    return Episode(
        id=_str(obj, "id"),
        symbol=_str(obj, "symbol"),
        buy_exchange=_str(obj, "buy_exchange"),
        sell_exchange=_str(obj, "sell_exchange"),
        start_ms=_int(obj, "start_ms"),
        end_ms=_int(obj, "end_ms"),
        duration_ms=_int(obj, "duration_ms"),
        quotes=_int(obj, "quotes"),
        peak_net_spread_bps=_num(obj, "peak_net_spread_bps"),
        mean_net_spread_bps=_num(obj, "mean_net_spread_bps"),
        peak_spread_usd=_num(obj, "peak_spread_usd"),
        peak_est_profit_usd=_num(obj, "peak_est_profit_usd", optional=True),
        required_ms=_int(obj, "required_ms"),
        capturable=_flag(obj, "capturable"),
        is_open=_flag(obj, "is_open"),
        newest_recv_ts_ms=_int(obj, "newest_recv_ts_ms"),
        detected_ts_ms=_int(obj, "detected_ts_ms", optional=True),
    )
