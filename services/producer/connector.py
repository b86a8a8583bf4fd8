"""What every venue connector provides, and the conversions all parsers share.

A connector (``coinbase.py``, ``binance.py``) is data plus pure functions: no sockets, no
clocks, no Kafka. The feed loop and the replay only ever see a :class:`Venue`, so no code
outside a connector branches on the venue's name.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from services.common.exceptions import ConfigError, RecordError
from services.common.messages import Quote, Trade

PriceRecord = Quote | Trade

#: Stablecoins quoted as USD at a caller-given rate; everything else must be USD itself.
USD = "USD"
USDT = "USDT"


class FrameParser(Protocol):
    """``(raw, recv_ts_ms, symbol_map=, fx_to_usd=) -> (kind, records)``."""

    def __call__(
        self,
        raw: str | bytes,
        recv_ts_ms: int,
        *,
        symbol_map: Mapping[str, str] | None = None,
        fx_to_usd: float = 1.0,
    ) -> tuple[str, list[PriceRecord]]: ...


@dataclass(frozen=True)
class Venue:
    """One exchange as data: where to connect, what to ask for, how to read the answers."""

    name: str
    ws_url: str
    channels: tuple[str, ...]
    #: canonical symbol (BTC-USD) -> the venue's own spelling (BTCUSDT)
    symbols: Mapping[str, str]
    quote_ccy: str
    #: (base url, venue symbols) -> URL to open; Binance puts its streams in the path
    connect_url: Callable[[str, Sequence[str]], str]
    #: venue symbols -> text frames to send right after connecting
    subscribe_messages: Callable[[Sequence[str]], list[str]]
    parse_frame: FrameParser

    def venue_symbols(self, canonical: Sequence[str]) -> list[str]:
        """Map canonical symbols to this venue's; an unknown one is a configuration error."""
        missing = [s for s in canonical if s not in self.symbols]
        if missing:
            raise ConfigError(f"ARB_SYMBOLS: {', '.join(missing)} not listed on {self.name}")
        return [self.symbols[s] for s in canonical]

    def symbol_map(self, canonical: Sequence[str] | None = None) -> dict[str, str]:
        """venue symbol -> canonical symbol, for the symbols asked for (default: all)."""
        wanted = self.symbols.keys() if canonical is None else canonical
        return {self.symbols[s]: s for s in wanted if s in self.symbols}


def fx_to_usd_for(quote_ccy: str, usdt_usd: float) -> float:
    """USD is 1.0; USDT uses the caller's rate (ARB_USDT_USD). Others are not supported yet."""
    if quote_ccy == USD:
        return 1.0
    if quote_ccy == USDT:
        return usdt_usd
    raise ConfigError(f"no USD rate for quote currency {quote_ccy!r}")


def decode(raw: str | bytes) -> Any:
    """JSON text -> Python object, or RecordError('not_json')."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError("not_json", str(exc)[:120]) from exc


def required(msg: Mapping[str, Any], key: str) -> Any:
    """A required field; absent or null is ``missing_field``."""
    value = msg.get(key)
    if value is None:
        raise RecordError("missing_field", key)
    return value


def _number(value: Any, key: str, reason: str) -> float:
    if isinstance(value, bool):
        raise RecordError(reason, f"{key}={value!r}")
    try:
        number = float(Decimal(value) if isinstance(value, str) else value)
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise RecordError(reason, f"{key}={value!r}") from exc
    if not math.isfinite(number) or number <= 0:
        raise RecordError(reason, f"{key}={value!r}")
    return number


def price(msg: Mapping[str, Any], key: str) -> float:
    """A venue decimal string as a strictly positive finite float, else ``bad_price``."""
    return _number(required(msg, key), key, "bad_price")


def size(msg: Mapping[str, Any], key: str, *, optional: bool = False) -> float | None:
    """A venue decimal size, strictly positive; ``optional`` allows it to be absent."""
    if optional and msg.get(key) is None:
        return None
    return _number(required(msg, key), key, "bad_size")


def canonical(symbol_map: Mapping[str, str], venue_symbol: Any) -> str:
    """The canonical symbol for a venue symbol we asked for, else ``unknown_symbol``."""
    if not isinstance(venue_symbol, str) or venue_symbol not in symbol_map:
        raise RecordError("unknown_symbol", repr(venue_symbol))
    return symbol_map[venue_symbol]


_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$",
)


def rfc3339_to_ms(value: Any, key: str = "time") -> int:
    """RFC 3339 with any number of fraction digits (Coinbase sends 6 or 9) -> epoch ms."""
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
    """An integer epoch-ms field (Binance ``T``/``E``), else ``bad_time``."""
    value = required(msg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RecordError("bad_time", f"{key}={value!r}")
    return value
