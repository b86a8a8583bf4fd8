"""Last quote per (exchange, symbol) and venue liveness, for DESIGN.md's quote refresh.

While a venue is live (any message, heartbeats included, within ``stale_ms``) each unchanged
best bid/ask is re-published every ``refresh_ms`` as a copy with ``refresh=True`` and ``ts_ms``
= now, keeping its original ``recv_ts_ms``/``exchange_ts_ms``. A quiet but live venue is then in
every detection window, and a silent one drops out instead of lingering with an old price.

Time is always passed in (``now_ms``), so the same class runs on the wall clock (live feed) and
on the virtual clock of a replay.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.common.messages import Quote

_Key = tuple[str, str]


@dataclass(slots=True)
class _Entry:
    quote: Quote
    #: when this quote is next re-published; None while its venue is silent (dormant)
    next_due_ms: int | None


class QuoteBook:
    """Pure state: feed it messages and quotes, ask it which refreshes are due."""

    def __init__(self, refresh_ms: int = 500, stale_ms: int = 2000) -> None:
        if refresh_ms <= 0 or stale_ms <= 0:
            raise ValueError("refresh_ms and stale_ms must be > 0")
        self.refresh_ms = refresh_ms
        self.stale_ms = stale_ms
        self._entries: dict[_Key, _Entry] = {}
        self._last_message_ms: dict[str, int] = {}
        #: exchanges with dormant quotes, so that a frame only looks at entries when it must
        self._dormant: set[str] = set()

    def on_message(self, exchange: str, now_ms: int) -> None:
        """Any frame from ``exchange`` proves it is live; dormant quotes resume refreshing."""
        last_ms = self._last_message_ms.get(exchange)
        if last_ms is None or now_ms > last_ms:
            self._last_message_ms[exchange] = now_ms
        if exchange in self._dormant:
            self._dormant.discard(exchange)
            for (ex, _), entry in self._entries.items():
                if ex == exchange and entry.next_due_ms is None:
                    entry.next_due_ms = now_ms + self.refresh_ms

    def on_quote(self, quote: Quote) -> None:
        """A fresh update replaces the last quote and restarts its refresh timer."""
        exchange, now_ms = quote.exchange, quote.ts_ms
        last_ms = self._last_message_ms.get(exchange)
        if last_ms is None or now_ms > last_ms:
            self._last_message_ms[exchange] = now_ms
        if exchange in self._dormant:
            self.on_message(exchange, now_ms)
        key = (exchange, quote.symbol)
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(quote, now_ms + self.refresh_ms)
        else:  # in place: one quote per key is updated on every frame
            entry.quote = quote
            entry.next_due_ms = now_ms + self.refresh_ms

    def forget(self, exchange: str) -> None:
        """Drop a venue's quotes (after a disconnect its old book must not come back)."""
        for key in [k for k in self._entries if k[0] == exchange]:
            del self._entries[key]
        self._last_message_ms.pop(exchange, None)
        self._dormant.discard(exchange)

    def shift(self, exchange: str, jump_ms: int) -> None:
        """Move one venue's times by ``jump_ms`` (the receive clock stepped): its last message
        time and its quotes' times, so their refreshes carry their true age on the new clock
        (each is due a refresh period after its own time: the next comes at once, then on the
        new clock)."""
        last_ms = self._last_message_ms.get(exchange)
        quotes = self.quotes(exchange)
        self.forget(exchange)
        if last_ms is not None:
            self.on_message(exchange, last_ms + jump_ms)
        for quote in quotes:
            self.on_quote(replace(quote, ts_ms=quote.ts_ms + jump_ms,
                                  recv_ts_ms=quote.recv_ts_ms + jump_ms))

    def is_live(self, exchange: str, now_ms: int) -> bool:
        last = self._last_message_ms.get(exchange)
        return last is not None and now_ms - last < self.stale_ms

    def last_message_ms(self, exchange: str) -> int | None:
        return self._last_message_ms.get(exchange)

    def last_quote(self, exchange: str, symbol: str) -> Quote | None:
        entry = self._entries.get((exchange, symbol))
        return entry.quote if entry else None

    def quotes(self, exchange: str) -> list[Quote]:
        """The last quote of every symbol of ``exchange``."""
        return [e.quote for (ex, _), e in self._entries.items() if ex == exchange]

    def next_due_ms(self) -> int | None:
        """Earliest pending refresh time, so a caller can sleep (or step virtual time) to it."""
        dues = [e.next_due_ms for e in self._entries.values() if e.next_due_ms is not None]
        return min(dues, default=None)

    def due(self, now_ms: int) -> list[Quote]:
        """Refresh copies of every quote due by ``now_ms`` whose venue is live at ``now_ms``.

        A quote of a silent venue is not re-published and goes dormant until the venue sends
        anything again.
        """
        out: list[Quote] = []
        for entry in self._entries.values():
            if entry.next_due_ms is None or entry.next_due_ms > now_ms:
                continue
            if self.is_live(entry.quote.exchange, now_ms):
                out.append(replace(entry.quote, refresh=True, ts_ms=now_ms))
                entry.next_due_ms = now_ms + self.refresh_ms
            else:
                entry.next_due_ms = None
                self._dormant.add(entry.quote.exchange)
        return out
