"""Opportunity episodes: one opportunity of one symbol and direction, at tick resolution.

The tick path (:mod:`services.common.ticks`) evaluates a pair at every quote of either venue.
An episode **opens** at the first passing evaluation after the pair has not passed for more than
``ARB_EPISODE_GAP_MS`` (or ever), and **closes** once that much event time has gone by without a
pass. A pass lasts until the pair's next evaluation or until its older side goes stale, so a
spread flickering around the threshold every 50 ms is one episode, and Discord hears of a pair
at most once per gap plus the episode's own length.

The Flink job writes two records per episode to ``arbitrage-episodes``, both with the id
``symbol|buy|sell|start_ms``: the opened one as soon as the opening quote is processed (that
quote only) and the closed one when the episode is over. Fields (event time, epoch ms):
``start_ms`` = the opening quote's ``ts_ms``; ``end_ms`` = when the last pass ended (the next
evaluation, or the older side going stale when none came within reach); ``quotes`` = the
passing evaluations. ``executable_usd``/``_size``/``_profit_usd``: the opening quote's in the
opened record; in the closed one each the largest over the passing evaluations (null when none
had one), like the peaks, so the three need not come from the same quote.

Capturable: a trader acting on the quotes gets them a feed latency late and needs the
execution time on top, on both venues at once, so the spread must last at least
``required_ms`` = max(p99 feed latency of the buy venue, of the sell venue) + execution time.
The job uses configured latencies (``ARB_FEED_LATENCY_MS``); a reader that measured them (the
producer's ``arb_feed_latency_seconds``, or :func:`feed_latency_p99_ms` on recorded data) can
judge again with :func:`rejudge`.

:func:`episode_records` is the plain-Python reference of the job's episode statements: from the
reference's tick evaluations, every record a bounded run writes (at the end of the input every
episode closes).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from services.common.config import DetectionSettings
from services.common.messages import Episode, Quote, Trade, episode_id
from services.common.ticks import TickEvaluation

#: Quantile of the feed latency a capturable episode must outlast.
LATENCY_QUANTILE = 0.99


def required_ms(buy_latency_ms: float, sell_latency_ms: float, execution_ms: float) -> int:
    """How long a spread must last to be captured, in whole ms (rounded up)."""
    return math.ceil(max(buy_latency_ms, sell_latency_ms) + execution_ms)


def rejudge(episode: Episode, latency_ms: Mapping[str, float], execution_ms: float,
            fallback_latency_ms: float) -> Episode:
    """The same episode judged with other (e.g. measured) feed latencies per venue."""
    needed = required_ms(latency_ms.get(episode.buy_exchange, fallback_latency_ms),
                         latency_ms.get(episode.sell_exchange, fallback_latency_ms),
                         execution_ms)
    return replace(episode, required_ms=needed, capturable=episode.duration_ms >= needed)


@dataclass
class _Open:
    """An episode being collected: what the job's session window accumulates."""

    first: TickEvaluation
    passing: list[TickEvaluation] = field(default_factory=list)
    successor_end_ts_ms: list[int] = field(default_factory=list)


def _largest(values: Iterable[float | None]) -> float | None:
    """The largest non-null value, as SQL's MAX: None when there is none."""
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _record(symbol: str, buy: str, sell: str, start_ms: int, end_ms: int,
            passing: list[TickEvaluation], settings: DetectionSettings, *, is_open: bool,
            ) -> Episode:
    numbers = [e.numbers for e in passing if e.numbers is not None]
    profits = [n.est_profit_usd for n in numbers if n.est_profit_usd is not None]
    total = 0.0
    for n in numbers:  # in arrival order, as Flink's AVG accumulates
        total += n.net_spread_bps
    needed = required_ms(settings.latency_ms(buy), settings.latency_ms(sell),
                         settings.execution_ms)
    at_depth = [e.executable for e in passing if e.executable is not None]
    return Episode(
        id=episode_id(symbol, buy, sell, start_ms),
        symbol=symbol,
        buy_exchange=buy,
        sell_exchange=sell,
        start_ms=start_ms,
        end_ms=end_ms,
        duration_ms=end_ms - start_ms,
        quotes=len(passing),
        peak_net_spread_bps=max(n.net_spread_bps for n in numbers),
        mean_net_spread_bps=total / len(numbers),
        peak_spread_usd=max(n.spread_usd for n in numbers),
        peak_est_profit_usd=max(profits) if profits else None,
        required_ms=needed,
        capturable=end_ms - start_ms >= needed,
        is_open=is_open,
        newest_recv_ts_ms=max(e.newest_recv_ts_ms or 0 for e in passing),
        executable_usd=_largest(x.usd for x in at_depth),
        executable_size=_largest(x.size for x in at_depth),
        executable_profit_usd=_largest(x.profit_usd for x in at_depth),
    )


def _closed(episode: _Open, settings: DetectionSettings) -> Episode:
    """The closed record. The last pass ended at the next evaluation when one followed within
    reach (every pass then has a successor); else when its older side went stale."""
    first = episode.first
    if len(episode.successor_end_ts_ms) >= len(episode.passing):
        end_ms = max(episode.successor_end_ts_ms)
    else:
        end_ms = max(e.stale_until_ms or 0 for e in episode.passing)
    return _record(first.symbol, first.buy_exchange, first.sell_exchange, first.tick_ts_ms,
                   end_ms, episode.passing, settings, is_open=False)


def episode_records(evaluations: Iterable[TickEvaluation], settings: DetectionSettings,
                    ) -> list[Episode]:
    """Every record a bounded run of the job writes: per episode its opened record (the
    opening quote only), then, once the input is complete, its closed record."""
    reach_ms = settings.stale_ms + settings.episode_gap_ms
    #: per direction: when its last pass ended (event time)
    last_end_ts_ms: dict[tuple[str, str, str], int] = {}
    current: dict[tuple[str, str, str], _Open] = {}
    episodes: list[_Open] = []
    records: list[Episode] = []
    for e in evaluations:
        key = e.direction
        if e.previous_end_ms is not None:
            last_end_ts_ms[key] = e.previous_end_ms
        end_ts_ms = last_end_ts_ms.get(key)
        opens = e.passing and (end_ts_ms is None
                               or e.tick_ts_ms - end_ts_ms > settings.episode_gap_ms)
        if opens:
            current[key] = _Open(e)
            episodes.append(current[key])
            records.append(_record(e.symbol, e.buy_exchange, e.sell_exchange, e.tick_ts_ms,
                                   e.tick_ts_ms, [e], settings, is_open=True))
        episode = current.get(key)
        if episode is None:
            continue
        if e.passing:
            episode.passing.append(e)
        if (e.previous_end_ms is not None and not opens and e.previous_tick_ts_ms is not None
                and abs(e.tick_ts_ms - e.previous_tick_ts_ms) <= reach_ms):
            episode.successor_end_ts_ms.append(e.previous_end_ms)
    records.extend(_closed(episode, settings) for episode in episodes)
    return records


def build_episodes(evaluations: Iterable[TickEvaluation], settings: DetectionSettings,
                   ) -> list[Episode]:
    """The closed episodes of these evaluations (every one closed: the input is complete)."""
    return [r for r in episode_records(evaluations, settings) if not r.is_open]


def latest_by_id(records: Iterable[Episode]) -> list[Episode]:
    """One record per episode: the closed one when there is one, else the opened one.

    Readers of the topic use this: the two records of an episode may arrive in either order.
    """
    best: dict[str, Episode] = {}
    for record in records:
        held = best.get(record.id)
        if held is None or (held.is_open and not record.is_open):
            best[record.id] = record
    return sorted(best.values(), key=lambda e: (e.start_ms, e.direction))


def feed_latency_p99_ms(records: Iterable[Quote | Trade]) -> dict[str, float]:
    """Measured p99 feed latency (receive time - venue time, ms) per venue.

    Only records that carry a venue timestamp count, and refreshes are left out (they repeat
    an old update's times). The same quantity as the producer's ``arb_feed_latency_seconds``;
    negative values (recorder clock behind the venue's) count as they are.
    """
    samples: dict[str, list[int]] = defaultdict(list)
    for record in records:
        if record.exchange_ts_ms is None or getattr(record, "refresh", False):
            continue
        samples[record.exchange].append(record.recv_ts_ms - record.exchange_ts_ms)
    return {venue: float(_quantile(values, LATENCY_QUANTILE))
            for venue, values in sorted(samples.items())}


def _quantile(values: list[int], q: float) -> int:
    """Nearest-rank quantile: the smallest value with at least q of the samples at or below."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
