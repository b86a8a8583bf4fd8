"""The venues this producer can read, by name (``ARB_VENUES`` picks from these)."""

from __future__ import annotations

from services.common.exceptions import ConfigError
from services.producer import binance, coinbase
from services.producer.connector import Venue

VENUES: dict[str, Venue] = {v.name: v for v in (coinbase.VENUE, binance.VENUE)}


def get_venue(name: str) -> Venue:
    """The venue called ``name``, or a ConfigError naming ARB_VENUES."""
    try:
        return VENUES[name]
    except KeyError:
        known = ", ".join(VENUES)
        raise ConfigError(f"ARB_VENUES: unknown venue {name!r} (known: {known})") from None
