"""The readers' side of the alert history: the dashboard's queries, read-only.

A reader never creates the store: until the alerter has, every read is empty, so a reader
cannot race the writer's schema set-up. Queries also run on the writer's own connection
(:class:`~services.common.history.store.AlertHistory` delegates here). Times are epoch ms on
the local clock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.clock import now_ts_ms
from services.common.exceptions import HistoryUnavailable
from services.common.history.faults import ADVICE, MISSING, unavailable
from services.common.history.schema import STATUSES, AlertRecord, EpisodeRecord, connect

DAY_MS = 86_400_000


def utc_day_start_ts_ms(ts_ms: int) -> int:
    """Midnight UTC of the day holding ``ts_ms``: where "today" starts on the dashboard."""
    return ts_ms - ts_ms % DAY_MS


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """Which alerts a reader wants; empty or None criteria match everything.

    Times bound ``window_end_ms``: ``since_ts_ms`` inclusive, ``until_ts_ms`` exclusive.
    """

    symbols: tuple[str, ...] = ()
    #: Ordered (buy_exchange, sell_exchange) pairs.
    pairs: tuple[tuple[str, str], ...] = ()
    since_ts_ms: int | None = None
    until_ts_ms: int | None = None
    min_net_bps: float | None = None
    statuses: tuple[str, ...] = ()

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition (never empty) and its parameters; values are always bound."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.symbols:
            clauses.append(f"symbol IN ({', '.join('?' for _ in self.symbols)})")
            params += list(self.symbols)
        if self.pairs:
            clauses.append(
                "(" + " OR ".join("(buy_exchange = ? AND sell_exchange = ?)" for _ in self.pairs)
                + ")",
            )
            for buy, sell in self.pairs:
                params += [buy, sell]
        if self.since_ts_ms is not None:
            clauses.append("window_end_ms >= ?")
            params.append(self.since_ts_ms)
        if self.until_ts_ms is not None:
            clauses.append("window_end_ms < ?")
            params.append(self.until_ts_ms)
        if self.min_net_bps is not None:
            clauses.append("net_spread_bps >= ?")
            params.append(self.min_net_bps)
        if self.statuses:
            clauses.append(f"status IN ({', '.join('?' for _ in self.statuses)})")
            params += list(self.statuses)
        return (" AND ".join(clauses) or "1 = 1"), params


ALL = AlertQuery()


def recent_alerts(
    conn: sqlite3.Connection, limit: int = 100, query: AlertQuery = ALL,
) -> list[AlertRecord]:
    """Newest first: by window end, then by when the alerter received it."""
    where, params = query.where()
    rows = conn.execute(
        f"SELECT * FROM alerts WHERE {where} "  # noqa: S608 - the condition binds every value
        "ORDER BY window_end_ms DESC, received_ts_ms DESC, id LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [AlertRecord.from_row(row) for row in rows]


def status_counts(conn: sqlite3.Connection, query: AlertQuery = ALL) -> dict[str, int]:
    """Alerts per status, every status present (zero when none)."""
    where, params = query.where()
    counts = dict.fromkeys(STATUSES, 0)
    for row in conn.execute(
        f"SELECT status, COUNT(*) AS n FROM alerts WHERE {where} GROUP BY status",  # noqa: S608 - bound values
        params,
    ):
        counts[row["status"]] = int(row["n"])
    return counts


@dataclass(frozen=True, slots=True)
class HistorySummary:
    """Numbers for the dashboard's header over one query; None where there are no alerts.

    ``today`` counts the matching alerts whose window ended at or after the start of today;
    ``best`` is the matching alert with the highest net spread; ``total_est_profit_usd`` adds up
    the estimated profits that are known (an alert without sizes has none).
    """

    total: int
    by_status: dict[str, int]
    last_window_end_ts_ms: int | None
    max_spread_usd: float | None
    max_net_spread_bps: float | None
    today: int = 0
    total_est_profit_usd: float | None = None
    best: AlertRecord | None = None


def summarize(
    conn: sqlite3.Connection | None, query: AlertQuery = ALL,
    today_start_ts_ms: int | None = None,
) -> HistorySummary:
    if conn is None:
        return HistorySummary(0, dict.fromkeys(STATUSES, 0), None, None, None)
    where, params = query.where()
    today_from_ts_ms = (utc_day_start_ts_ms(now_ts_ms()) if today_start_ts_ms is None
                        else today_start_ts_ms)
    row = conn.execute(
        "SELECT COUNT(*) AS n, MAX(window_end_ms) AS last_end, MAX(spread_usd) AS max_usd, "  # noqa: S608 - bound values
        "MAX(net_spread_bps) AS max_net, SUM(est_profit_usd) AS profit, "
        "COALESCE(SUM(window_end_ms >= ?), 0) AS today "
        f"FROM alerts WHERE {where}",
        (today_from_ts_ms, *params),
    ).fetchone()
    best = conn.execute(
        f"SELECT * FROM alerts WHERE {where} "  # noqa: S608 - bound values
        "ORDER BY net_spread_bps DESC, window_end_ms DESC LIMIT 1",
        params,
    ).fetchone()
    return HistorySummary(
        total=int(row["n"]),
        by_status=status_counts(conn, query),
        last_window_end_ts_ms=row["last_end"],
        max_spread_usd=row["max_usd"],
        max_net_spread_bps=row["max_net"],
        today=int(row["today"]),
        total_est_profit_usd=row["profit"],
        best=AlertRecord.from_row(best) if best else None,
    )


@dataclass(frozen=True, slots=True)
class HistoryOptions:
    """What the store holds, for filter choices: symbols and ordered venue pairs, sorted."""

    symbols: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]


def options(conn: sqlite3.Connection | None) -> HistoryOptions:
    if conn is None:
        return HistoryOptions((), ())
    symbols = tuple(r[0] for r in conn.execute(
        "SELECT DISTINCT symbol FROM alerts ORDER BY symbol"))
    pairs = tuple((r[0], r[1]) for r in conn.execute(
        "SELECT DISTINCT buy_exchange, sell_exchange FROM alerts "
        "ORDER BY buy_exchange, sell_exchange"))
    return HistoryOptions(symbols, pairs)


def recent_episodes(conn: sqlite3.Connection, limit: int = 100) -> list[EpisodeRecord]:
    """Newest first by start (the opening quote); none from a store older than version 3."""
    try:
        rows = conn.execute(
            "SELECT * FROM episodes ORDER BY start_ms DESC, id LIMIT ?", (limit,),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if not _no_table(exc):
            raise
        return []  # a reader on a store the alerter has not migrated yet
    return [EpisodeRecord.from_row(row) for row in rows]


def open_episode_counts(conn: sqlite3.Connection) -> dict[tuple[str, str, str], int]:
    """Episodes stored open (no closing record yet), per (symbol, buy, sell)."""
    rows = conn.execute(
        "SELECT symbol, buy_exchange, sell_exchange, COUNT(*) FROM episodes "
        "WHERE is_open = 1 GROUP BY symbol, buy_exchange, sell_exchange",
    ).fetchall()
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def _no_table(exc: sqlite3.Error) -> bool:
    """A table the alerter has not created yet: not a fault, an empty store."""
    return isinstance(exc, sqlite3.OperationalError) and str(exc).startswith("no such table")


@contextmanager
def open_reader(path: str | Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection for the dashboard, or None while the alerter has not created the
    store yet. A store that cannot be read (locked, corrupt, ...), here or in the queries run
    on the connection, raises :class:`HistoryUnavailable` with the reason, file and fix."""
    file = Path(path)
    if not file.exists():
        yield None
        return
    if not file.is_file():
        raise HistoryUnavailable(MISSING, str(file), "not a file", ADVICE[MISSING])
    try:
        conn = connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise unavailable(exc, file) from exc
    with closing(conn):
        try:
            conn.execute("SELECT 1 FROM alerts LIMIT 1")
            created = True
        except sqlite3.Error as exc:
            if not _no_table(exc):
                raise unavailable(exc, file) from exc
            created = False  # the file exists, the alerter's tables not yet
        try:
            yield conn if created else None
        except HistoryUnavailable:
            raise
        except sqlite3.Error as exc:
            raise unavailable(exc, file) from exc


def read_recent(path: str | Path, limit: int = 100) -> list[AlertRecord]:
    """Newest alerts from a store that may not exist yet (then: none)."""
    with open_reader(path) as conn:
        return [] if conn is None else recent_alerts(conn, limit)


def read_counts(path: str | Path) -> dict[str, int]:
    with open_reader(path) as conn:
        return dict.fromkeys(STATUSES, 0) if conn is None else status_counts(conn)


def read_episodes(path: str | Path, limit: int = 100) -> list[EpisodeRecord]:
    """Newest episodes from a store that may not exist yet (then: none)."""
    with open_reader(path) as conn:
        return [] if conn is None else recent_episodes(conn, limit)
