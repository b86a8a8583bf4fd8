"""The tick path: every quote checked, when it arrives, against the latest quote of every other
venue. The plain-Python reference of ``flink/sql/view_tick_*.sql``.

Records are taken in the order one Kafka partition delivers them. A symbol's records all share
one partition (the key is the symbol), so that order is the log's and replays identically;
nothing waits for a watermark. Time is event time all the same: ``ts_ms`` of the quote being
checked (the *tick*) is the clock against which every other venue's latest quote is judged.

For a valid quote of a configured venue (``ARB_VENUES``) the venue's latest quote is replaced,
then every ordered pair that includes the venue is evaluated, buy side first:

- **live**: both venues have a quote whose ``ts_ms`` is within ``ARB_STALE_MS`` of the tick's, in
  either direction. A venue whose clock or receive times jump (back or forward) is not live
  against the others, so it cannot pair at all, let alone open a phantom opportunity.
- the pair arithmetic of :func:`services.common.spread.pair_numbers`, and **passing** = live and
  the alert rule (:func:`services.common.spread.passes_rule`, the bad-quote guard included).
- **stale_until_ms**: when the older of the two quotes goes stale (its ``ts_ms`` + stale).
- **executable**: :func:`services.common.spread.executable` over the two quotes' ladders (each
  venue's latest quote's own ladder: a quote without one leaves the venue without depth).

A passing evaluation holds until the pair's next evaluation or until ``stale_until_ms``,
whichever comes first; ``previous_end_ms`` on an evaluation is that end for the one before it,
when that one passed. Episodes are built from these in :mod:`services.common.episodes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from services.common.config import DetectionSettings
from services.common.exceptions import RecordError
from services.common.messages import Quote, parse_price_record
from services.common.spread import Executable, PairNumbers, executable, pair_numbers, passes_rule


@dataclass(frozen=True, slots=True)
class TickEvaluation:
    """One ordered venue pair, evaluated at one quote (the tick)."""

    symbol: str
    buy_exchange: str
    sell_exchange: str
    tick_ts_ms: int
    live: bool
    passing: bool
    numbers: PairNumbers | None
    newest_recv_ts_ms: int | None
    stale_until_ms: int | None
    previous_passing: bool
    previous_end_ms: int | None
    previous_tick_ts_ms: int | None
    executable: Executable | None = None

    @property
    def direction(self) -> tuple[str, str, str]:
        return (self.symbol, self.buy_exchange, self.sell_exchange)


def ordered_pairs(venues: Iterable[str]) -> list[tuple[str, str]]:
    """Every (buy, sell) of two distinct venues, in the order the SQL lists them."""
    names = list(dict.fromkeys(venues))
    return [(buy, sell) for buy in names for sell in names if buy != sell]


def _live(tick_ts_ms: int, quote: Quote, stale_ms: int) -> bool:
    return abs(tick_ts_ms - quote.ts_ms) <= stale_ms


def evaluate_pair(tick_ts_ms: int, buy: Quote | None, sell: Quote | None,
                  settings: DetectionSettings,
                  ) -> tuple[bool, bool, PairNumbers | None, Executable | None]:
    """(live, passing, numbers, executable) of buying at ``buy`` and selling at ``sell`` at this
    tick."""
    if buy is None or sell is None:
        return False, False, None, None
    live = _live(tick_ts_ms, buy, settings.stale_ms) and _live(tick_ts_ms, sell, settings.stale_ms)
    buy_fee_bps, sell_fee_bps = settings.fee_bps(buy.exchange), settings.fee_bps(sell.exchange)
    numbers = pair_numbers(buy.ask, buy.ask_size, buy_fee_bps,
                           sell.bid, sell.bid_size, sell_fee_bps)
    passing = live and passes_rule(numbers.spread_usd, numbers.spread_bps,
                                   numbers.net_spread_bps, settings)
    return live, passing, numbers, executable(buy.depth, buy_fee_bps, sell.depth, sell_fee_bps,
                                              settings)


def evaluate_ticks(raw_records: Iterable[bytes | str], settings: DetectionSettings,
                   ) -> Iterator[TickEvaluation]:
    """Every pair evaluation the tick path makes over these records, in arrival order.

    Records that do not parse, trades, invalid quotes and venues outside ``settings.venues``
    are skipped, as the job's ``valid_quotes`` view skips them.
    """
    pairs = ordered_pairs(settings.venues)
    books: dict[str, dict[str, Quote]] = {}
    # per direction: (passing, stale_until_ms, tick_ts_ms) of its previous evaluation
    previous: dict[tuple[str, str, str], tuple[bool, int | None, int]] = {}
    for raw in raw_records:
        try:
            record = parse_price_record(raw)
        except RecordError:
            continue
        if not isinstance(record, Quote) or record.exchange not in settings.venues:
            continue
        book = books.setdefault(record.symbol, {})
        book[record.exchange] = record
        tick = record.ts_ms
        for buy_venue, sell_venue in pairs:
            if record.exchange not in (buy_venue, sell_venue):
                continue
            buy, sell = book.get(buy_venue), book.get(sell_venue)
            live, passing, numbers, at_depth = evaluate_pair(tick, buy, sell, settings)
            stale_until = newest = None
            if buy is not None and sell is not None:
                stale_until = min(buy.ts_ms, sell.ts_ms) + settings.stale_ms
                newest = max(buy.recv_ts_ms, sell.recv_ts_ms)
            key = (record.symbol, buy_venue, sell_venue)
            before = previous.get(key)
            previous_passing = before is not None and before[0]
            previous_end = None
            if before is not None and before[0] and before[1] is not None:
                previous_end = min(tick, before[1])
            yield TickEvaluation(
                symbol=record.symbol, buy_exchange=buy_venue, sell_exchange=sell_venue,
                tick_ts_ms=tick, live=live, passing=passing, numbers=numbers,
                newest_recv_ts_ms=newest, stale_until_ms=stale_until,
                previous_passing=previous_passing, previous_end_ms=previous_end,
                previous_tick_ts_ms=None if before is None else before[2],
                executable=at_depth,
            )
            previous[key] = (passing, stale_until, tick)
