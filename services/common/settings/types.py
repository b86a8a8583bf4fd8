"""How one variable's text becomes a typed value, or the reason it cannot.

Each parser takes the raw text of a variable (or a value already typed, when a model is built in
code, which passes through) and raises ValueError with a reason a user can act on; the settings
layer puts the variable's name and value in front. Bounds (> 0, finite ...) are not here: they
are declared with each setting.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlparse

from pydantic import AfterValidator, BeforeValidator, SecretStr

#: Taker fees of each venue's entry tier, in bps; override with ARB_TAKER_FEE_BPS.
DEFAULT_TAKER_FEE_BPS = {
    "coinbase": 60.0,
    "binance": 10.0,
    "kraken": 40.0,
    "okx": 10.0,
    "bybit": 10.0,
    "bitstamp": 40.0,
}
#: Fee assumed for a venue that ARB_TAKER_FEE_BPS does not name.
FALLBACK_TAKER_FEE_BPS = 10.0
#: The venues a producer can read: their ARB_<VENUE>_* variables are known names.
KNOWN_VENUES = tuple(DEFAULT_TAKER_FEE_BPS)


def text_only(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    """Apply ``parse`` to text only: a typed value given in code is already parsed."""

    def parse_text(raw: Any) -> Any:
        return parse(raw.strip()) if isinstance(raw, str) else raw

    return parse_text


def flag(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def csv(raw: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not items:
        raise ValueError("must list at least one item")
    return items


def finite(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def venue_names(raw: str) -> tuple[str, ...]:
    """Venue names as the job uses them: lower case, also column prefixes in the tick path."""
    venues = tuple(v.lower() for v in csv(raw))
    for venue in venues:
        if not venue.isidentifier() or not venue.isascii():
            raise ValueError(f"{venue!r} is not a venue name (letters, digits, _)")
    return venues


def symbols(raw: str) -> tuple[str, ...]:
    found = tuple(s.upper() for s in csv(raw))
    for symbol in found:
        base, sep, quote = symbol.partition("-")
        if not sep or not base or quote != "USD":
            raise ValueError(f"{symbol!r} is not a canonical BASE-USD symbol")
    return found


def fee_map(raw: str) -> dict[str, float]:
    """``kraken=26,binance=7.5``: those venues' fees replace the defaults, others keep theirs."""
    fees = dict(DEFAULT_TAKER_FEE_BPS)
    for part in csv(raw):
        venue, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r} is not venue=bps")
        bps = finite(value)
        if bps < 0:
            raise ValueError(f"fee for {venue} must be >= 0")
        fees[venue.strip().lower()] = bps
    return fees


def latency_map(raw: str) -> tuple[int | None, dict[str, int]]:
    """``250`` (every venue) or ``coinbase=300,binance=120`` or both (``300,binance=120``)."""
    default: int | None = None
    latencies: dict[str, int] = {}
    for part in csv(raw):
        venue, sep, value = part.rpartition("=")
        ms = int(value)
        if ms < 0:
            raise ValueError(f"latency {part!r} must be >= 0 ms")
        if sep:
            if not venue.strip():
                raise ValueError(f"{part!r} is not venue=ms")
            latencies[venue.strip().lower()] = ms
        else:
            default = ms
    return default, latencies


def symbol_map(raw: str) -> dict[str, str]:
    """``BTC-USD=BTCUSDC,ETH-USD=ETHUSDC``: canonical symbol -> the venue's own symbol."""
    mapping = {}
    for part in csv(raw):
        canonical, sep, venue_symbol = part.partition("=")
        if not sep or not venue_symbol.strip():
            raise ValueError(f"{part!r} is not CANONICAL=VENUE_SYMBOL")
        mapping[symbols(canonical)[0]] = venue_symbol.strip()
    return mapping


#: Most ladder sizes a quote carries: each adds two prices per venue to every tick-path row.
MAX_DEPTH_NOTIONALS = 6


def notionals(raw: str) -> tuple[float, ...]:
    """``1000,10000,100000``: USD order sizes, increasing; ``none`` (or empty): no ladder."""
    if raw.strip().lower() in {"", "none", "off"}:
        return ()
    sizes = tuple(finite(part) for part in csv(raw))
    if any(size <= 0 for size in sizes):
        raise ValueError("every size must be > 0 USD")
    if list(sizes) != sorted(set(sizes)):
        raise ValueError("sizes must be strictly increasing")
    if len(sizes) > MAX_DEPTH_NOTIONALS:
        raise ValueError(f"at most {MAX_DEPTH_NOTIONALS} sizes")
    return sizes


def kafka_servers(raw: str) -> str:
    for server in csv(raw):
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"{server!r} is not host:port")
    return raw


def ws_url(url: str) -> str:
    if urlparse(url).scheme not in {"ws", "wss"}:
        raise ValueError("must be a ws:// or wss:// URL")
    return url


def webhook_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook, or None; never quotes it (it is a secret)."""
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        return "not an http(s) URL"
    return None


class SecretUrl(SecretStr):
    """A URL that carries a credential: printed and logged as ``**********``.

    It compares equal to its plain text as well, so a check such as ``url == expected`` reads
    as it would with a str; only :meth:`get_secret_value` hands the text over.
    """

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.get_secret_value() == other
        return super().__eq__(other)

    __hash__ = SecretStr.__hash__


def lower(raw: Any) -> Any:
    return raw.strip().lower() if isinstance(raw, str) else raw


Flag = Annotated[bool, BeforeValidator(text_only(flag))]
VenueNames = Annotated[tuple[str, ...], BeforeValidator(text_only(venue_names))]
Symbols = Annotated[tuple[str, ...], BeforeValidator(text_only(symbols))]
FeeMap = Annotated[dict[str, float], BeforeValidator(text_only(fee_map))]
SymbolMap = Annotated[dict[str, str], BeforeValidator(text_only(symbol_map))]
Notionals = Annotated[tuple[float, ...], BeforeValidator(text_only(notionals))]
KafkaServers = Annotated[str, BeforeValidator(text_only(kafka_servers))]
WsUrl = Annotated[str, AfterValidator(ws_url)]
