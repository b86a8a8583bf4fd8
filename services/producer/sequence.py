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
        #: the number the last RESYNC replaced (for its log line)
        self.resynced_from: int | None = None

    def check(self, key: Hashable, first: int, last: int, *, dense: bool) -> int:
        """Record ``first..last`` for ``key``: OK, STALE, RESYNC, or the count of missing ids.

        The first number seen for a key (after :meth:`reset`) is accepted as the baseline.
        """
        prev = self._last.get(key)
        if prev is None:
            self._last[key] = last
            return OK
        if last <= prev:
            run = self._stale_runs.get(key, 0) + 1
            if run < self.resync_after:
                self._stale_runs[key] = run
                return STALE
            self._stale_runs.pop(key, None)
            self._last[key] = last
            self.resynced_from = prev
            return RESYNC
        if self._stale_runs:
            self._stale_runs.pop(key, None)
        self._last[key] = last
        if dense and first > prev + 1:
            return first - prev - 1
        return OK

    def last(self, key: Hashable) -> int | None:
        return self._last.get(key)

    def reset(self) -> None:
        """Forget every stream: after an unplanned reconnect the next numbers are a new start."""
        self._last.clear()
        self._stale_runs.clear()
