"""Sequence checks on the numbers venues put on their messages: gaps, duplicates, stale updates.

Two kinds of numbered stream reach the producer, and they allow different checks:

- **dense**: consecutive per symbol, so a jump means lost messages. Trade ids are dense on
  Coinbase (``trade_id`` of ``match``), Binance (``t`` of ``trade``) and OKX (``tradeId``; an
  aggregated trade carries the last id and ``count``). A gap is counted as
  ``arb_feed_errors_total{reason="sequence_gap"}`` and logged; the record is still published.
- **increasing**: only ordered, with holes by design, because the channel shows a subset of the
  venue's events (Binance bookTicker ``u``, Coinbase ticker ``sequence``). Holes say nothing;
  a number at or below the last one is an older update and is dropped (``out_of_order``).

For both, a number seen before is a ``duplicate`` and dropped: that is what makes the overlap of
two connections during a planned reconnect (see ``feed.py``) free of double records.

Across an unplanned reconnect (:meth:`SequenceTracker.reconnect`) the last number of each dense
stream is kept: trade ids are the venue's, not the connection's, so the first trade after the
reconnect tells how many were missed while the feed was away (:meth:`SequenceTracker.carried`
says the gap spans a reconnect). Increasing streams start over, as they may be renumbered per
connection.

Pure state, no I/O: the feed decides what to count and log.
"""

from __future__ import annotations

from collections.abc import Hashable

#: check() outcomes besides a gap (a gap is the positive number of missing ids)
OK = 0
STALE = -1
#: the venue restarted its numbering (many stale numbers in a row): accepted as a new baseline
RESYNC = -2


class SequenceTracker:
    """Last sequence number per stream key, e.g. ``("trade", "BTCUSDT")``."""

    def __init__(self, resync_after: int = 100) -> None:
        if resync_after < 1:
            raise ValueError("resync_after must be >= 1")
        #: this many stale numbers in a row on one key mean the venue renumbered
        self.resync_after = resync_after
        self._last: dict[Hashable, int] = {}
        self._stale_runs: dict[Hashable, int] = {}
        #: keys checked as dense, whose numbers survive a reconnect
        self._dense: set[Hashable] = set()
        #: dense keys whose last number came over a reconnect and has not moved since
        self._carried: set[Hashable] = set()
        #: the number the last RESYNC replaced (for its log line)
        self.resynced_from: int | None = None

    def check(self, key: Hashable, first: int, last: int, *, dense: bool) -> int:
        """Record ``first..last`` for ``key``: OK, STALE, RESYNC, or the count of missing ids.

        The first number seen for a key (after :meth:`reset`) is accepted as the baseline.
        """
        prev = self._last.get(key)
        if prev is None:
            self._last[key] = last
            if dense:
                self._dense.add(key)
            return OK
        if last <= prev:
            run = self._stale_runs.get(key, 0) + 1
            if run < self.resync_after:
                self._stale_runs[key] = run
                return STALE
            self._stale_runs.pop(key, None)
            self._last[key] = last
            self._carried.discard(key)
            self.resynced_from = prev
            return RESYNC
        if self._stale_runs:
            self._stale_runs.pop(key, None)
        if self._carried:
            self._carried.discard(key)
        self._last[key] = last
        if dense and first > prev + 1:
            return first - prev - 1
        return OK

    def last(self, key: Hashable) -> int | None:
        return self._last.get(key)

    def carried(self, key: Hashable) -> bool:
        """True while ``key``'s last number is the one from before a reconnect: a gap found
        now spans the time the feed was away."""
        return key in self._carried

    def reconnect(self) -> None:
        """An unplanned reconnect: increasing streams start over, dense ones (trade ids) keep
        their last number so the first trade after it counts what was missed."""
        self._last = {k: v for k, v in self._last.items() if k in self._dense}
        self._carried = set(self._last)
        self._stale_runs.clear()

    def reset(self) -> None:
        """Forget every stream: a new numbering (a replay starting its loop again)."""
        self._last.clear()
        self._stale_runs.clear()
        self._dense.clear()
        self._carried.clear()
