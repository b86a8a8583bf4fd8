"""Stablecoin -> USD rates for USDT- and USDC-quoted markets: live where a venue lists one.

Binance and OKX quote BTC in USDT, so their prices become USD only at some USDT/USD rate. Any
venue that lists a USDT-USD (or USDC-USD) market subscribes to its best bid/ask (Coinbase
``USDT-USD``, Kraken ``USDT/USD`` and ``USDC/USD``); the mid of the newest such quote is the
live rate, shared by every feed of the producer process. Without a live rate (no venue lists
the market, its feed is down, or its last quote is older than ``max_age_ms``) the configured
fallback (``ARB_USDT_USD``, ``ARB_USDC_USD``) is used. Every record carries the rate it was
converted with (``fx_to_usd``), so a consumer can always recover the venue's own price.

Time is passed in (``now_ms``): the same class runs on the wall clock and in tests.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from services.common.exceptions import RecordError
from services.common.messages import Quote
from services.producer.connector import USDC, USDT

log = structlog.get_logger(__name__)

#: canonical symbol of a rate market -> the currency it prices in USD
FX_MARKETS: dict[str, str] = {"USDT-USD": USDT, "USDC-USD": USDC}
#: a stablecoin mid outside this band is a mis-mapped or broken market, not a rate
RATE_BAND = (0.5, 1.5)


class FxRates:
    """The newest live rate per currency, by source venue, with fallbacks."""

    def __init__(self, fallback: Mapping[str, float], max_age_ms: int = 60_000) -> None:
        if max_age_ms <= 0:
            raise ValueError("max_age_ms must be > 0")
        self.fallback = dict(fallback)
        self.max_age_ms = max_age_ms
        #: currency -> source exchange -> (rate, updated_ms)
        self._live: dict[str, dict[str, tuple[float, int]]] = {}
        self._table: dict[str, float] = dict(self.fallback)
        self._valid_until_ms = -1  # the cached table is recomputed at or after this time
        self._sources: dict[str, str] = {}  # currency -> "fallback" or the live source

    def on_quote(self, quote: Quote) -> bool:
        """Take the mid of a rate market's quote; False if ``quote`` is not a rate market.

        A mid outside :data:`RATE_BAND` raises RecordError ``bad_fx_rate``.
        """
        ccy = FX_MARKETS.get(quote.symbol)
        if ccy is None:
            return False
        mid = (quote.bid + quote.ask) / 2
        if not RATE_BAND[0] < mid < RATE_BAND[1]:
            raise RecordError("bad_fx_rate", f"{quote.symbol} mid={mid}")
        self._live.setdefault(ccy, {})[quote.exchange] = (mid, quote.recv_ts_ms)
        self._valid_until_ms = -1
        return True

    def forget(self, exchange: str) -> None:
        """A source venue disconnected: its rates are no longer live."""
        for by_source in self._live.values():
            by_source.pop(exchange, None)
        self._valid_until_ms = -1

    def shift(self, exchange: str, jump_ms: int) -> None:
        """Move one source venue's rate times by ``jump_ms`` (its feed saw the receive clock
        step): a rate keeps its true age on the new clock, instead of falling back at once
        after a step forward or staying live for the length of a step back after its
        source went quiet. Each feed moves only its own rates, so a step seen by every feed
        of the process moves each rate once."""
        for by_source in self._live.values():
            entry = by_source.get(exchange)
            if entry is not None:
                by_source[exchange] = (entry[0], entry[1] + jump_ms)
        self._valid_until_ms = -1

    def rate(self, ccy: str, now_ms: int) -> float:
        return self.table(now_ms)[ccy]

    def source(self, ccy: str, now_ms: int) -> str:
        """``fallback`` or the exchange whose quote gives the rate now."""
        self.table(now_ms)
        return self._sources.get(ccy, "fallback")

    def table(self, now_ms: int) -> dict[str, float]:
        """currency -> rate to USD now; cached until a rate changes or one goes stale."""
        if now_ms < self._valid_until_ms:
            return self._table
        table = dict(self.fallback)
        sources: dict[str, str] = {}
        valid_until_ms = now_ms + self.max_age_ms
        for ccy, by_source in self._live.items():
            fresh = [(updated_ms, rate, src) for src, (rate, updated_ms) in by_source.items()
                     if now_ms - updated_ms < self.max_age_ms]
            if not fresh:
                continue
            _, rate, src = max(fresh)
            table[ccy] = rate
            sources[ccy] = src
            valid_until_ms = min(valid_until_ms, min(u for u, _, _ in fresh) + self.max_age_ms)
        for ccy in self.fallback.keys() | sources.keys():
            was, now = self._sources.get(ccy, "fallback"), sources.get(ccy, "fallback")
            if was != now:
                event = "fx_rate_fallback" if now == "fallback" else "fx_rate_live"
                log.info(event, currency=ccy, source=now, rate=table.get(ccy), was=was)
        self._sources = sources
        self._table = table
        self._valid_until_ms = valid_until_ms
        return table
