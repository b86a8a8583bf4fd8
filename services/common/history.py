"""Durable alert history: one SQLite table, written by the alerter, read by the dashboard.

The seed's dashboard lost every alert on restart; this store keeps them, and its primary key is
the alert's deterministic id (``symbol|window_end|buy|sell``), so a redelivered Kafka record or
a replayed window never creates a second row and the alerter can see it was already delivered.

WAL mode lets one writer process and any number of reader processes work at once: readers see
the last committed state and never block the writer. Times are epoch ms on the local clock.

The schema carries a version (``PRAGMA user_version``); a store written by an older alerter is
migrated in place, in one transaction, the first time a newer alerter opens it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any

from services.common.clock import now_ts_ms
from services.common.messages import Episode, Spread

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
NO_WEBHOOK = "no_webhook"
#: Deliberately not sent: a recent alert for the same symbol and direction was delivered.
SUPPRESSED = "suppressed"
STATUSES = (PENDING, DELIVERED, FAILED, NO_WEBHOOK, SUPPRESSED)
#: Version 1 added the ``suppressed`` status and the ``suppressed_by`` column; version 2 the
#: ``episodes`` table.
SCHEMA_VERSION = 3
#: An episode's opening message not posted because the episode had already closed when the
#: alerter first saw it (a backlog or a replay): its closing message says everything.
SKIPPED = "skipped"
#: Which message of an episode: the one when it opens, the short update when it closes.
OPENED = "opened"
CLOSED = "closed"
#: Longest ``last_error`` kept; an error body from a webhook could be large.
MAX_ERROR_CHARS = 500
#: How long a connection waits for a lock held by another process before giving up.
BUSY_TIMEOUT_MS = 5000

_SPREAD_COLUMNS = tuple(f.name for f in fields(Spread) if f.name != "v")

_TABLE = """
CREATE TABLE {name} (
    id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    window_start_ms INTEGER NOT NULL,
    window_end_ms INTEGER NOT NULL,
    buy_exchange TEXT NOT NULL,
    buy_ask REAL NOT NULL,
    buy_size REAL,
    sell_exchange TEXT NOT NULL,
    sell_bid REAL NOT NULL,
    sell_size REAL,
    spread_usd REAL NOT NULL,
    spread_bps REAL NOT NULL,
    net_spread_bps REAL NOT NULL,
    max_size REAL,
    est_profit_usd REAL,
    quote_age_ms INTEGER NOT NULL,
    newest_recv_ts_ms INTEGER NOT NULL,
    detected_ts_ms INTEGER,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed', 'no_webhook', 'suppressed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    received_ts_ms INTEGER NOT NULL,
    delivered_ts_ms INTEGER,
    last_error TEXT,
    updated_ts_ms INTEGER NOT NULL,
    suppressed_by TEXT
)
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS alerts_newest ON alerts (window_end_ms DESC, received_ts_ms DESC);
CREATE INDEX IF NOT EXISTS alerts_direction
    ON alerts (symbol, buy_exchange, sell_exchange, window_end_ms);
"""


_EPISODE_COLUMNS = tuple(f.name for f in fields(Episode) if f.name != "v")
#: Columns a closing record updates (the opening record knows the opening quote only).
_EPISODE_STATS = tuple(c for c in _EPISODE_COLUMNS if c not in {
    "id", "symbol", "buy_exchange", "sell_exchange", "start_ms"})

_EPISODES_TABLE = """
CREATE TABLE IF NOT EXISTS episodes (
    id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    buy_exchange TEXT NOT NULL,
    sell_exchange TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    quotes INTEGER NOT NULL,
    peak_net_spread_bps REAL NOT NULL,
    mean_net_spread_bps REAL NOT NULL,
    peak_spread_usd REAL NOT NULL,
    peak_est_profit_usd REAL,
    required_ms INTEGER NOT NULL,
    capturable INTEGER NOT NULL,
    is_open INTEGER NOT NULL,
    newest_recv_ts_ms INTEGER NOT NULL,
    detected_ts_ms INTEGER,
    opened_status TEXT NOT NULL DEFAULT 'pending',
    closed_status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    received_ts_ms INTEGER NOT NULL,
    updated_ts_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS episodes_newest ON episodes (start_ms DESC);
"""


def utc_day_start_ms(ts_ms: int) -> int:
    """Midnight UTC of the day holding ``ts_ms``: where "today" starts on the dashboard."""
    return ts_ms - ts_ms % 86_400_000


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRecord(Spread):
    """One stored alert: the :class:`Spread` it was, plus its delivery state."""

    status: str
    attempts: int
    received_ts_ms: int
    delivered_ts_ms: int | None
    last_error: str | None
    updated_ts_ms: int
    #: For a suppressed alert: the delivered alert whose cooldown it fell into.
    suppressed_by: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AlertRecord:
        """Build from a row; columns a reader's older store lacks come back as their default."""
        names = set(row.keys())
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in names})

    def to_spread(self) -> Spread:
        return Spread(**{name: getattr(self, name) for name in _SPREAD_COLUMNS})


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodeRecord(Episode):
    """One stored episode: the :class:`Episode` (its latest state: closed once the closing
    record arrived) plus the state of its two Discord messages."""

    opened_status: str
    closed_status: str
    attempts: int
    last_error: str | None
    received_ts_ms: int
    updated_ts_ms: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> EpisodeRecord:
        names = set(row.keys())
        values = {f.name: row[f.name] for f in fields(cls) if f.name in names}
        values["capturable"] = bool(values["capturable"])
        values["is_open"] = bool(values["is_open"])
        return cls(**values)

    def to_episode(self) -> Episode:
        return Episode(**{name: getattr(self, name) for name in _EPISODE_COLUMNS})


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What :meth:`AlertHistory.record` found: the stored row and whether this call created it."""

    alert: AlertRecord
    inserted: bool


def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,),
    ).fetchone()
    return row is not None


def _ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the table, or bring an older store to :data:`SCHEMA_VERSION`, in one transaction.

    SQLite cannot change a CHECK constraint in place, so version 0 -> 1 copies the rows into a
    new table (the documented rebuild: create, copy, drop, rename). ``BEGIN IMMEDIATE`` takes the
    write lock before the version is read, so two writers starting together migrate once.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version < 1:
            if _table_exists(conn, "alerts"):
                old = [r["name"] for r in conn.execute("PRAGMA table_info(alerts)")]
                conn.execute(_TABLE.format(name="alerts_migrating"))
                columns = ", ".join(old)
                conn.execute(
                    f"INSERT INTO alerts_migrating ({columns}) SELECT {columns} FROM alerts",  # noqa: S608 - names from the store's own schema
                )
                conn.execute("DROP TABLE alerts")
                conn.execute("ALTER TABLE alerts_migrating RENAME TO alerts")
            else:
                conn.execute(_TABLE.format(name="alerts"))
            for statement in _INDEXES.split(";"):
                if statement.strip():
                    conn.execute(statement)
        if 2 <= version < 3 and _table_exists(conn, "episodes"):
            # Version 2's episodes were runs of alert windows; the tick path's have other
            # fields. Kept, under another name, not read.
            conn.execute("DROP INDEX IF EXISTS episodes_newest")
            conn.execute("ALTER TABLE episodes RENAME TO window_episodes")
        if version < 3:  # a new table: nothing to copy
            for statement in _EPISODES_TABLE.split(";"):
                if statement.strip():
                    conn.execute(statement)
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
        )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not read_only:
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across process crashes in WAL mode; only a power cut may lose the
        # last commits, and those alerts are then redelivered from Kafka (offset not committed).
        conn.execute("PRAGMA synchronous = NORMAL")
        _ensure_schema(conn)
    return conn


def _clip_error(error: str | None) -> str | None:
    if error is None:
        return None
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 3] + "..."


class AlertHistory:
    """The writer's handle (the alerter): creates the file and table if needed.

    One instance per thread; ``check_same_thread`` stays on so misuse fails loudly.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = _connect(self.path, read_only=False)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> AlertHistory:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def record(self, spread: Spread, received_ts_ms: int | None = None) -> StoreResult:
        """Store an alert once; a second call with the same id changes nothing and says so."""
        received_ts_ms = now_ts_ms() if received_ts_ms is None else received_ts_ms
        values = asdict(spread)
        values.pop("v", None)
        columns = (*_SPREAD_COLUMNS, "status", "attempts", "received_ts_ms", "updated_ts_ms")
        params = [values[name] for name in _SPREAD_COLUMNS]
        params += [PENDING, 0, received_ts_ms, received_ts_ms]
        placeholders = ", ".join("?" for _ in columns)
        with self._conn:
            cursor = self._conn.execute(
                f"INSERT INTO alerts ({', '.join(columns)}) VALUES ({placeholders}) "  # noqa: S608 - column names are constants
                "ON CONFLICT(id) DO NOTHING",
                params,
            )
            inserted = cursor.rowcount == 1
        alert = self.get(spread.id)
        assert alert is not None  # noqa: S101 - just inserted or already there
        return StoreResult(alert=alert, inserted=inserted)

    def get(self, alert_id: str) -> AlertRecord | None:
        row = self._conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return AlertRecord.from_row(row) if row else None

    def _update(self, alert_id: str, add_attempts: int = 0, **changes: Any) -> AlertRecord:
        changes["updated_ts_ms"] = now_ts_ms()
        assignments = ", ".join([f"{name} = ?" for name in changes] + ["attempts = attempts + ?"])
        with self._conn:
            cursor = self._conn.execute(
                f"UPDATE alerts SET {assignments} WHERE id = ?",  # noqa: S608 - names are constants
                (*changes.values(), add_attempts, alert_id),
            )
        if cursor.rowcount != 1:
            raise KeyError(alert_id)
        alert = self.get(alert_id)
        assert alert is not None  # noqa: S101 - updated just now
        return alert

    def mark_delivered(
        self, alert_id: str, attempts: int, delivered_ts_ms: int | None = None,
    ) -> AlertRecord:
        """Discord accepted the message after ``attempts`` more HTTP attempts."""
        return self._update(
            alert_id,
            add_attempts=attempts,
            status=DELIVERED,
            delivered_ts_ms=now_ts_ms() if delivered_ts_ms is None else delivered_ts_ms,
            last_error=None,
        )

    def mark_failed(self, alert_id: str, attempts: int, error: str) -> AlertRecord:
        """Delivery gave up; ``error`` must already be free of secrets (it is shown on the page)."""
        return self._update(
            alert_id, add_attempts=attempts, status=FAILED, last_error=_clip_error(error),
        )

    def mark_no_webhook(self, alert_id: str) -> AlertRecord:
        """Recorded only: no webhook is configured."""
        return self._update(alert_id, status=NO_WEBHOOK)

    def mark_suppressed(self, alert_id: str, by_alert_id: str | None,
                        note: str | None = None) -> AlertRecord:
        """Deliberately not sent: ``by_alert_id`` was delivered within the cooldown, or (None)
        for the reason in ``note``, shown on the page."""
        return self._update(alert_id, status=SUPPRESSED, suppressed_by=by_alert_id,
                            last_error=_clip_error(note))

    def last_delivered(
        self, spread: Spread, within_ms: int,
    ) -> AlertRecord | None:
        """The newest delivered alert of the same symbol and direction whose window ended in
        ``(window_end - within_ms, window_end]``: the one a cooldown is counted from.

        Event time, not wall-clock time: a backlog read after an outage, or a replay, is thinned
        exactly as the same alerts would have been live, and the answer comes from the store
        alone, so it is the same after a restart.
        """
        row = self._conn.execute(
            "SELECT * FROM alerts WHERE symbol = ? AND buy_exchange = ? AND sell_exchange = ? "
            "AND status = ? AND id <> ? AND window_end_ms > ? AND window_end_ms <= ? "
            "ORDER BY window_end_ms DESC LIMIT 1",
            (spread.symbol, spread.buy_exchange, spread.sell_exchange, DELIVERED, spread.id,
             spread.window_end_ms - within_ms, spread.window_end_ms),
        ).fetchone()
        return AlertRecord.from_row(row) if row else None

    def recent(self, limit: int = 100) -> list[AlertRecord]:
        return recent_alerts(self._conn, limit)

    # -- episodes ------------------------------------------------------------------------------
    def record_episode(self, episode: Episode, received_ts_ms: int | None = None,
                       ) -> EpisodeRecord:
        """Store an episode record: the opening one creates the row, the closing one creates it
        or brings it to its final numbers. Idempotent; a late opening record never undoes a
        close."""
        received_ts_ms = now_ts_ms() if received_ts_ms is None else received_ts_ms
        values = asdict(episode)
        columns = (*_EPISODE_COLUMNS, "received_ts_ms", "updated_ts_ms")
        params = [values[name] for name in _EPISODE_COLUMNS] + [received_ts_ms, received_ts_ms]
        updates = ", ".join(f"{name} = excluded.{name}" for name in _EPISODE_STATS)
        with self._conn:
            self._conn.execute(
                f"INSERT INTO episodes ({', '.join(columns)}) "  # noqa: S608 - constant names
                f"VALUES ({', '.join('?' for _ in columns)}) "
                f"ON CONFLICT(id) DO UPDATE SET {updates}, updated_ts_ms = excluded.updated_ts_ms "
                "WHERE episodes.is_open = 1 AND excluded.is_open = 0",
                params,
            )
        stored = self.get_episode(episode.id)
        assert stored is not None  # noqa: S101 - just written
        return stored

    def get_episode(self, episode_id: str) -> EpisodeRecord | None:
        row = self._conn.execute("SELECT * FROM episodes WHERE id = ?", (episode_id,)).fetchone()
        return EpisodeRecord.from_row(row) if row else None

    def mark_episode_message(self, episode_id: str, message: str, status: str,
                             attempts: int = 0, error: str | None = None) -> EpisodeRecord:
        """The outcome of an episode's ``opened`` or ``closed`` message."""
        if message not in (OPENED, CLOSED):
            raise ValueError(f"message must be {OPENED!r} or {CLOSED!r}")
        with self._conn:
            cursor = self._conn.execute(
                f"UPDATE episodes SET {message}_status = ?, attempts = attempts + ?, "  # noqa: S608 - checked name
                "last_error = ?, updated_ts_ms = ? WHERE id = ?",
                (status, attempts, _clip_error(error), now_ts_ms(), episode_id),
            )
        if cursor.rowcount != 1:
            raise KeyError(episode_id)
        stored = self.get_episode(episode_id)
        assert stored is not None  # noqa: S101 - updated just now
        return stored

    def recent_episodes(self, limit: int = 100) -> list[EpisodeRecord]:
        return recent_episodes(self._conn, limit)

    def open_episode_counts(self) -> dict[tuple[str, str, str], int]:
        """Episodes stored open (no closing record yet), per (symbol, buy, sell)."""
        rows = self._conn.execute(
            "SELECT symbol, buy_exchange, sell_exchange, COUNT(*) FROM episodes "
            "WHERE is_open = 1 GROUP BY symbol, buy_exchange, sell_exchange",
        ).fetchall()
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    def counts(self) -> dict[str, int]:
        return status_counts(self._conn)


def recent_episodes(conn: sqlite3.Connection, limit: int = 100) -> list[EpisodeRecord]:
    """Newest first by start (the opening quote); none from a store older than version 3."""
    try:
        rows = conn.execute(
            "SELECT * FROM episodes ORDER BY start_ms DESC, id LIMIT ?", (limit,),
        ).fetchall()
    except sqlite3.OperationalError:  # a reader on a store the alerter has not migrated yet
        return []
    return [EpisodeRecord.from_row(row) for row in rows]


def read_episodes(path: str | Path, limit: int = 100) -> list[EpisodeRecord]:
    """Newest episodes from a store that may not exist yet (then: none)."""
    with open_reader(path) as conn:
        return [] if conn is None else recent_episodes(conn, limit)


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """Which alerts a reader wants; empty or None criteria match everything.

    Times bound ``window_end_ms``: ``since_ms`` inclusive, ``until_ms`` exclusive.
    """

    symbols: tuple[str, ...] = ()
    #: Ordered (buy_exchange, sell_exchange) pairs.
    pairs: tuple[tuple[str, str], ...] = ()
    since_ms: int | None = None
    until_ms: int | None = None
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
        if self.since_ms is not None:
            clauses.append("window_end_ms >= ?")
            params.append(self.since_ms)
        if self.until_ms is not None:
            clauses.append("window_end_ms < ?")
            params.append(self.until_ms)
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

    ``today`` counts the matching alerts whose window ended at or after ``today_start_ms``;
    ``best`` is the matching alert with the highest net spread; ``total_est_profit_usd`` adds up
    the estimated profits that are known (an alert without sizes has none).
    """

    total: int
    by_status: dict[str, int]
    last_window_end_ms: int | None
    max_spread_usd: float | None
    max_net_spread_bps: float | None
    today: int = 0
    total_est_profit_usd: float | None = None
    best: AlertRecord | None = None


def summarize(
    conn: sqlite3.Connection | None, query: AlertQuery = ALL, today_start_ms: int | None = None,
) -> HistorySummary:
    if conn is None:
        return HistorySummary(0, dict.fromkeys(STATUSES, 0), None, None, None)
    where, params = query.where()
    today_from = utc_day_start_ms(now_ts_ms()) if today_start_ms is None else today_start_ms
    row = conn.execute(
        "SELECT COUNT(*) AS n, MAX(window_end_ms) AS last_end, MAX(spread_usd) AS max_usd, "  # noqa: S608 - bound values
        "MAX(net_spread_bps) AS max_net, SUM(est_profit_usd) AS profit, "
        "COALESCE(SUM(window_end_ms >= ?), 0) AS today "
        f"FROM alerts WHERE {where}",
        (today_from, *params),
    ).fetchone()
    best = conn.execute(
        f"SELECT * FROM alerts WHERE {where} "  # noqa: S608 - bound values
        "ORDER BY net_spread_bps DESC, window_end_ms DESC LIMIT 1",
        params,
    ).fetchone()
    return HistorySummary(
        total=int(row["n"]),
        by_status=status_counts(conn, query),
        last_window_end_ms=row["last_end"],
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


@contextmanager
def open_reader(path: str | Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection for the dashboard, or None while the alerter has not created the
    store yet: a reader never creates the file, so it cannot race the writer's schema set-up."""
    file = Path(path)
    if not file.is_file():
        yield None
        return
    try:
        conn = _connect(file, read_only=True)
    except sqlite3.OperationalError:
        yield None
        return
    with closing(conn):
        try:
            conn.execute("SELECT 1 FROM alerts LIMIT 1")
        except sqlite3.OperationalError:  # file exists but the table is not there yet
            yield None
            return
        yield conn


def read_recent(path: str | Path, limit: int = 100) -> list[AlertRecord]:
    """Newest alerts from a store that may not exist yet (then: none)."""
    with open_reader(path) as conn:
        return [] if conn is None else recent_alerts(conn, limit)


def read_summary(path: str | Path) -> HistorySummary:
    with open_reader(path) as conn:
        return summarize(conn)


def read_counts(path: str | Path) -> dict[str, int]:
    with open_reader(path) as conn:
        return dict.fromkeys(STATUSES, 0) if conn is None else status_counts(conn)


def read_ids(path: str | Path, statuses: Sequence[str] = ()) -> list[str]:
    """Every stored alert id (optionally of some statuses), oldest window first."""
    query = AlertQuery(statuses=tuple(statuses))
    with open_reader(path) as conn:
        return [] if conn is None else [a.id for a in reversed(recent_alerts(conn, -1, query))]
