"""The venues this producer can read, by name (``ARB_VENUES`` picks from these)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from services.common.exceptions import ConfigError
from services.producer import binance, bitstamp, bybit, coinbase, kraken, okx
from services.producer.connector import Venue

VENUES: dict[str, Venue] = {
    v.name: v for v in (coinbase.VENUE, binance.VENUE, kraken.VENUE, okx.VENUE, bybit.VENUE,
                        bitstamp.VENUE)
}


def get_venue(name: str, symbols: Mapping[str, str] | None = None) -> Venue:
    """The venue called ``name`` (ConfigError naming ARB_VENUES if unknown), with ``symbols``
    (canonical -> venue symbol, from ARB_<VENUE>_SYMBOLS) added to or replacing its defaults."""
    try:
        venue = VENUES[name]
    except KeyError:
        known = ", ".join(VENUES)
        raise ConfigError(f"ARB_VENUES: unknown venue {name!r} (known: {known})") from None
    if symbols:
        venue = replace(venue, symbols={**venue.symbols, **symbols})
    return venue
