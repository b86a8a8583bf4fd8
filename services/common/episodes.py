"""Opportunity episodes: consecutive alert windows of one symbol and direction, as one record.

A one-window alert says a spread existed; an episode says how long it lasted. Alert windows of
the same symbol, buy venue and sell venue whose window ends are at most
``episode_gap_windows`` windows apart belong to one episode. The Flink job writes two records
per episode to ``arbitrage-episodes``: one when it opens (``is_open`` true, the first window
only) and one when it closes (``is_open`` false, every window), both with the same ``id``:
``symbol|buy|sell|first_window_end_ms``.

The record is :class:`services.common.messages.Episode`. Times (epoch ms, event time):
``start_ms`` is the first alert window's start, ``end_ms`` the last one's end, ``duration_ms`` =
end - start (windows covered). ``confirmed_ms`` = last window end - first window end is how
long the spread was *seen* to last: each window is judged on its last quotes, so a one-window
episode confirms nothing beyond one moment, whatever the window length.

Capturable: a trader acting on the quotes gets them a feed latency late and needs the
execution time on top, on both venues at once, so the spread must last at least
``required_ms`` = max(p99 feed latency of the buy venue, of the sell venue) + execution time.
The job uses configured latencies (``ARB_FEED_LATENCY_MS``); a reader that measured them (the
producer's ``arb_feed_latency_seconds``, or :func:`feed_latency_p99_ms` on recorded data) can
judge again with :func:`rejudge`.

This module is also the plain-Python reference of the job's episode pipeline:
:func:`episode_records` computes, from the reference alerts, every record a bounded run of the
job writes (at the end of the input every episode closes).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from services.common.config import DetectionSettings
from services.common.messages import Episode, Quote, Spread, Trade, episode_id

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
    return replace(episode, required_ms=needed, capturable=episode.confirmed_ms >= needed)


def _episode(run: Sequence[Spread], settings: DetectionSettings, *, is_open: bool) -> Episode:
    first, last = run[0], run[-1]
    needed = required_ms(settings.latency_ms(first.buy_exchange),
                         settings.latency_ms(first.sell_exchange), settings.execution_ms)
    profits = [s.est_profit_usd for s in run if s.est_profit_usd is not None]
    total = 0.0
    for spread in run:  # in window order, as Flink's AVG accumulates
        total += spread.net_spread_bps
    confirmed = last.window_end_ms - first.window_end_ms
    return Episode(
        id=episode_id(first.symbol, first.buy_exchange, first.sell_exchange,
                      first.window_end_ms),
        symbol=first.symbol,
        buy_exchange=first.buy_exchange,
        sell_exchange=first.sell_exchange,
        start_ms=first.window_start_ms,
        first_window_end_ms=first.window_end_ms,
        end_ms=last.window_end_ms,
        duration_ms=last.window_end_ms - first.window_start_ms,
        windows=len(run),
        confirmed_ms=confirmed,
        peak_net_spread_bps=max(s.net_spread_bps for s in run),
        mean_net_spread_bps=total / len(run),
        peak_spread_usd=max(s.spread_usd for s in run),
        peak_est_profit_usd=max(profits) if profits else None,
        required_ms=needed,
        capturable=confirmed >= needed,
        is_open=is_open,
        newest_recv_ts_ms=max(s.newest_recv_ts_ms for s in run),
    )


def group_alerts(alerts: Iterable[Spread], settings: DetectionSettings) -> list[list[Spread]]:
    """Alerts split into episodes: per direction, in window order, a new episode after a gap
    of more than ``episode_gap_windows`` windows. Sorted by (first window end, direction)."""
    by_direction: dict[tuple[str, str, str], list[Spread]] = defaultdict(list)
    for alert in alerts:
        by_direction[(alert.symbol, alert.buy_exchange, alert.sell_exchange)].append(alert)
    runs: list[list[Spread]] = []
    for direction_alerts in by_direction.values():
        direction_alerts.sort(key=lambda s: s.window_end_ms)
        run: list[Spread] = []
        for alert in direction_alerts:
            if run and alert.window_end_ms - run[-1].window_end_ms > settings.episode_gap_ms:
                runs.append(run)
                run = []
            run.append(alert)
        if run:
            runs.append(run)
    runs.sort(key=lambda r: (r[0].window_end_ms, r[0].symbol, r[0].buy_exchange,
                             r[0].sell_exchange))
    return runs


def build_episodes(alerts: Iterable[Spread], settings: DetectionSettings) -> list[Episode]:
    """The closed episodes of these alerts (every one closed: the input is complete)."""
    return [_episode(run, settings, is_open=False) for run in group_alerts(alerts, settings)]


def episode_records(alerts: Iterable[Spread], settings: DetectionSettings) -> list[Episode]:
    """Every record a bounded run of the job writes: per episode, its opened record (first
    window only) and its closed record."""
    records = []
    for run in group_alerts(alerts, settings):
        records.append(_episode(run[:1], settings, is_open=True))
        records.append(_episode(run, settings, is_open=False))
    return records


def latest_by_id(records: Iterable[Episode]) -> list[Episode]:
    """One record per episode: the closed one when there is one, else the opened one.

    Readers of the topic use this: the two records of an episode may arrive in either order.
    """
    best: dict[str, Episode] = {}
    for record in records:
        held = best.get(record.id)
        if held is None or (held.is_open and not record.is_open):
            best[record.id] = record
    return sorted(best.values(), key=lambda e: (e.first_window_end_ms, e.direction))


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
