"""What the dashboard shows, computed without Streamlit so it can be tested on its own.

Reads the alerter's history store read-only; a store that does not exist yet is an empty view,
not an error (the dashboard may start before the first alert). Filters from the sidebar become
an :class:`~services.common.history.reads.AlertQuery`; the live parts (spread chart, feed
health) are built from a :class:`~services.dashboard.live.LiveSnapshot`. Times are epoch ms,
shown in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.common.exceptions import HistoryUnavailable
from services.common.history.faults import RUNBOOK_ANCHOR, unavailable
from services.common.history.reads import (
    AlertQuery,
    HistoryOptions,
    HistorySummary,
    open_reader,
    options,
    recent_alerts,
    recent_episodes,
    summarize,
    utc_day_start_ts_ms,
)
from services.common.history.schema import AlertRecord, EpisodeRecord
from services.dashboard.live import LiveSnapshot, SpreadPoint, VenueActivity

#: Table columns, in display order; units are in the names.
COLUMNS = (
    "Window end (UTC)",
    "Symbol",
    "Buy on",
    "Buy ask $",
    "Sell on",
    "Sell bid $",
    "Spread $",
    "Spread bps",
    "Net bps",
    "Max size",
    "Est. profit $",
    "Executable $",
    "Executable size",
    "Executable profit $",
    "Quote age ms",
    "Status",
    "Attempts",
    "Delivered after ms",
    "Detail",
    "Id",
)

#: Episode table columns, in display order.
EPISODE_COLUMNS = (
    "Start (UTC)",
    "Symbol",
    "Buy on",
    "Sell on",
    "State",
    "Duration ms",
    "Passing quotes",
    "Needs ms",
    "Capturable",
    "Peak net bps",
    "Mean net bps",
    "Peak est. profit $",
    "Executable $",
    "Executable size",
    "Executable profit $",
    "Discord",
    "Id",
)

ALL_TIME = "All time"
TODAY = "Today (UTC)"
#: Time-range choices and how far back each reaches (None: see :func:`since_ts_ms`).
TIME_RANGES: dict[str, int | None] = {
    "Last 15 minutes": 15 * 60_000,
    "Last hour": 3_600_000,
    "Last 24 hours": 86_400_000,
    TODAY: None,
    "Last 7 days": 7 * 86_400_000,
    ALL_TIME: None,
}
#: Chart measures: label -> SpreadPoint field. The executable ones have gaps where no ladder
#: size passes or a venue sends no book depth.
MEASURES = {
    "Net bps": "net_spread_bps",
    "Spread bps": "spread_bps",
    "Spread $": "spread_usd",
    "Executable $": "executable_usd",
    "Executable profit $": "executable_profit_usd",
}
#: What the executable columns mean, for the tables' column help.
EXECUTABLE_HELP = {
    "Executable $": "Largest order size of the depth ladder (ARB_DEPTH_NOTIONALS_USD) that still "
                    "passes the alert rule at both venues' volume-weighted prices; empty when "
                    "none passes or a venue sends no book depth",
    "Executable size": "That order size in the base asset (BTC for BTC-USD)",
    "Executable profit $": "Estimated profit at that size, net of both taker fees",
}
PAIR_ARROW = " → "
#: The runbook section on history faults, on the dashboard's own Runbook page (relative, so
#: it works under a base URL path too).
HISTORY_RUNBOOK_LINK = f"runbook#{RUNBOOK_ANCHOR}"


def pair_label(buy_exchange: str, sell_exchange: str) -> str:
    """'coinbase → binance': buy on the left, sell on the right."""
    return f"{buy_exchange}{PAIR_ARROW}{sell_exchange}"


def parse_pair_label(label: str) -> tuple[str, str]:
    buy, _, sell = label.partition(PAIR_ARROW)
    return buy, sell


def since_ts_ms(time_range: str, now_ts_ms: int) -> int | None:
    """Where a time range starts; None for all time. Unknown labels mean all time."""
    if time_range == TODAY:
        return utc_day_start_ts_ms(now_ts_ms)
    span = TIME_RANGES.get(time_range)
    return None if span is None else now_ts_ms - span


@dataclass(frozen=True, slots=True)
class Filters:
    """The sidebar's choices; empty selections mean "all"."""

    symbols: tuple[str, ...] = ()
    pairs: tuple[str, ...] = ()  # pair labels
    time_range: str = ALL_TIME
    min_net_bps: float | None = None
    measure: str = "Net bps"

    def query(self, now_ts_ms: int) -> AlertQuery:
        return AlertQuery(
            symbols=self.symbols,
            pairs=tuple(parse_pair_label(label) for label in self.pairs),
            since_ts_ms=since_ts_ms(self.time_range, now_ts_ms),
            min_net_bps=self.min_net_bps,
        )

    def wants(self, symbol: str, buy_exchange: str, sell_exchange: str) -> bool:
        return ((not self.symbols or symbol in self.symbols)
                and (not self.pairs or pair_label(buy_exchange, sell_exchange) in self.pairs))


@dataclass(frozen=True, slots=True)
class AlertsView:
    """One refresh of the history part: matching alerts as rows, their numbers, the choices."""

    store_exists: bool
    rows: list[dict[str, Any]]
    summary: HistorySummary
    options: HistoryOptions


def utc(ts_ms: int | None) -> datetime | None:
    return None if ts_ms is None else datetime.fromtimestamp(ts_ms / 1000, tz=UTC)


def _detail(alert: AlertRecord) -> str:
    if alert.suppressed_by:
        return f"cooldown after {alert.suppressed_by}"
    return alert.last_error or ""


def to_row(alert: AlertRecord) -> dict[str, Any]:
    """One table row; delivery latency counts from the newest contributing quote's receipt."""
    delivered_after_ms = (
        None if alert.delivered_ts_ms is None
        else alert.delivered_ts_ms - alert.newest_recv_ts_ms
    )
    values = (
        utc(alert.window_end_ms),
        alert.symbol,
        alert.buy_exchange,
        alert.buy_ask,
        alert.sell_exchange,
        alert.sell_bid,
        alert.spread_usd,
        alert.spread_bps,
        alert.net_spread_bps,
        alert.max_size,
        alert.est_profit_usd,
        alert.executable_usd,
        alert.executable_size,
        alert.executable_profit_usd,
        alert.quote_age_ms,
        alert.status,
        alert.attempts,
        delivered_after_ms,
        _detail(alert),
        alert.id,
    )
    return dict(zip(COLUMNS, values, strict=True))


def load_view(
    db_path: str | Path, limit: int, query: AlertQuery | None = None,
    today_start_ts_ms: int | None = None,
) -> AlertsView:
    """The newest ``limit`` matching alerts (newest first), their summary and the filter
    choices, from one consistent read."""
    query = query or AlertQuery()
    with open_reader(db_path) as conn:
        if conn is None:
            return AlertsView(False, [], summarize(None), options(None))
        conn.execute("BEGIN")  # one snapshot for the rows and the numbers
        try:
            alerts = recent_alerts(conn, limit, query)
            summary = summarize(conn, query, today_start_ts_ms)
            choices = options(conn)
        finally:
            conn.rollback()
    return AlertsView(True, [to_row(a) for a in alerts], summary, choices)


def load_options(db_path: str | Path) -> HistoryOptions:
    """Symbols and venue pairs the store holds, for the sidebar's choices."""
    with open_reader(db_path) as conn:
        return options(conn)


def choices(
    stored: Sequence[str], live: Iterable[str], selected: Sequence[str] = (),
) -> list[str]:
    """Filter choices: what the store holds, what the live feed shows, and anything already
    selected (so a choice never disappears under the user), sorted, once each."""
    return sorted({*stored, *live, *selected})


def live_symbols(snapshot: LiveSnapshot) -> set[str]:
    return {p.symbol for p in snapshot.spreads}


def live_pairs(snapshot: LiveSnapshot) -> set[str]:
    return {pair_label(p.buy_exchange, p.sell_exchange) for p in snapshot.spreads}


def chart_rows(
    points: Iterable[SpreadPoint], filters: Filters,
) -> dict[str, list[dict[str, Any]]]:
    """Per symbol, the chart's long-format rows: window end, venue pair, the chosen measure."""
    field_name = MEASURES.get(filters.measure, MEASURES["Net bps"])
    by_symbol: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        if not filters.wants(point.symbol, point.buy_exchange, point.sell_exchange):
            continue
        by_symbol.setdefault(point.symbol, []).append({
            "Window end (UTC)": utc(point.window_end_ms),
            "Pair": pair_label(point.buy_exchange, point.sell_exchange),
            filters.measure: getattr(point, field_name),
        })
    return dict(sorted(by_symbol.items()))


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """One venue in the feed strip: connected means a record newer than the stale limit."""

    venue: str
    connected: bool
    age_ms: int | None  # None: nothing read from this venue yet
    records: int


def feed_health(
    venues: Iterable[str], activity: dict[str, VenueActivity], stale_ms: int, now_ts_ms: int,
) -> list[FeedHealth]:
    """Configured venues first (in their order), then any other venue seen on the topic."""
    names = list(dict.fromkeys([*venues, *sorted(activity)]))
    health = []
    for venue in names:
        seen = activity.get(venue)
        if seen is None:
            health.append(FeedHealth(venue, False, None, 0))
            continue
        age_ms = max(0, now_ts_ms - seen.last_ts_ms)
        health.append(FeedHealth(venue, age_ms <= stale_ms, age_ms, seen.records))
    return health


def age_text(ts_ms: int | None, now_ts_ms: int) -> str:
    """'12 s ago', '5 min ago', '3 h ago', '2 d ago': how long since the last alert."""
    if ts_ms is None:
        return "never"
    seconds = max(0, (now_ts_ms - ts_ms) // 1000)
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def duration_text(age_ms: int | None) -> str:
    """A message age for the feed strip: '350 ms', '4.2 s', '3 min', or 'no data'."""
    if age_ms is None:
        return "no data"
    if age_ms < 1000:
        return f"{age_ms} ms"
    if age_ms < 60_000:
        return f"{age_ms / 1000:.1f} s"
    return age_text(0, age_ms).removesuffix(" ago")


def money(value: float | None) -> str:
    if value is None:
        return "n/a"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def episode_row(episode: EpisodeRecord) -> dict[str, Any]:
    """One episode: how long it lasted (ms), whether that was long enough to capture, what
    Discord got. An open episode shows its opening quote only, until its closing record
    arrives."""
    values = (
        utc(episode.start_ms),
        episode.symbol,
        episode.buy_exchange,
        episode.sell_exchange,
        "open" if episode.is_open else "closed",
        episode.duration_ms,
        episode.quotes,
        episode.required_ms,
        episode.capturable,
        episode.peak_net_spread_bps,
        episode.mean_net_spread_bps,
        episode.peak_est_profit_usd,
        episode.executable_usd,
        episode.executable_size,
        episode.executable_profit_usd,
        f"opened: {episode.opened_status}, closed: {episode.closed_status}",
        episode.id,
    )
    return dict(zip(EPISODE_COLUMNS, values, strict=True))


def load_episodes(db_path: str | Path, limit: int, filters: Filters, now_ts_ms: int,
                  ) -> list[dict[str, Any]]:
    """The newest ``limit`` episodes matching the sidebar's symbol, pair and time filters."""
    start_ts_ms = since_ts_ms(filters.time_range, now_ts_ms)
    with open_reader(db_path) as conn:
        episodes = [] if conn is None else recent_episodes(conn, limit)
    return [episode_row(e) for e in episodes
            if filters.wants(e.symbol, e.buy_exchange, e.sell_exchange)
            and (start_ts_ms is None or e.end_ms >= start_ts_ms)]


def history_problem(exc: BaseException, db_path: str | Path) -> HistoryUnavailable:
    """Any failed history read as a :class:`HistoryUnavailable` (reason, file, fix)."""
    return unavailable(exc, db_path)


def history_problem_text(problem: HistoryUnavailable) -> str:
    """The one line the page shows instead of the history: what is wrong, with which file,
    what to do, and where the runbook says more."""
    detail = problem.detail.rstrip(".")
    return (f"**Alert history unavailable ({problem.reason})**: `{problem.path}`: {detail}. "
            f"{problem.advice} Runbook: [HistoryStoreFailing]({HISTORY_RUNBOOK_LINK}).")
