"""The writer's side of the alert history: the schema on disk, its migrations, the alerter's
writes.

The primary key of an alert is its deterministic id (``symbol|window_end|buy|sell``), so a
redelivered Kafka record or a replayed window never creates a second row and the alerter can
see it was already delivered. The schema carries a version (``PRAGMA user_version``); a store
written by an older alerter is migrated in place, in one transaction, the first time a newer
alerter opens it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from services.common.clock import now_ts_ms
from services.common.history.faults import check_integrity, guard_store_errors
from services.common.history.reads import (
    open_episode_counts,
    recent_alerts,
    recent_episodes,
    status_counts,
)
from services.common.history.schema import (
    ALERTS,
    CLOSED,
    DELIVERED,
    EPISODE_COLUMNS,
    EPISODES,
    FAILED,
    NO_WEBHOOK,
    OPENED,
    PENDING,
    SPREAD_COLUMNS,
    SUPPRESSED,
    TABLES,
    AlertRecord,
    EpisodeRecord,
    StoreSchemaError,
    Table,
    connect,
    stored_checks,
    table_drift,
)
from services.common.messages import Episode, Spread

#: Version 1 added the ``suppressed`` status and the ``suppressed_by`` column; version 2 the
#: window path's ``episodes`` table; version 3 the tick path's (version 2's kept aside).
#: What follows from the declarations needs no new version: opening adds the column of a new
#: optional (or defaulted) field and rebuilds a table whose CHECK lists other statuses.
SCHEMA_VERSION = 3
#: Longest ``last_error`` kept; an error body from a webhook could be large.
MAX_ERROR_CHARS = 500

#: Indexes per table (a table rebuild drops them with the old table).
_INDEXES = {
    ALERTS.name: (
        "CREATE INDEX IF NOT EXISTS alerts_newest "
        "ON alerts (window_end_ms DESC, received_ts_ms DESC)",
        "CREATE INDEX IF NOT EXISTS alerts_direction "
        "ON alerts (symbol, buy_exchange, sell_exchange, window_end_ms)",
    ),
    EPISODES.name: ("CREATE INDEX IF NOT EXISTS episodes_newest ON episodes (start_ms DESC)",),
}
#: Episode columns a closing record updates (the opening record knows the opening quote only).
_EPISODE_STATS = tuple(c for c in EPISODE_COLUMNS if c not in {
    "id", "symbol", "buy_exchange", "sell_exchange", "start_ms"})


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


def _create(conn: sqlite3.Connection, table: Table) -> None:
    conn.execute(table.create(if_not_exists=True))
    for statement in _INDEXES[table.name]:
        conn.execute(statement)


def _rebuild(conn: sqlite3.Connection, table: Table) -> None:
    """Copy a table's rows into a new table of the declared shape: SQLite cannot change a
    CHECK constraint in place (the documented rebuild: create, copy, drop, rename)."""
    declared = {c.name for c in table.columns()}
    kept = ", ".join(r["name"] for r in conn.execute(f"PRAGMA table_info({table.name})")
                     if r["name"] in declared)
    conn.execute(table.create(f"{table.name}_migrating"))
    conn.execute(
        f"INSERT INTO {table.name}_migrating ({kept}) SELECT {kept} FROM {table.name}",  # noqa: S608 - names from the store's own schema
    )
    conn.execute(f"DROP TABLE {table.name}")
    conn.execute(f"ALTER TABLE {table.name}_migrating RENAME TO {table.name}")
    _create(conn, table)  # the indexes


def _add_declared_columns(conn: sqlite3.Connection, table: Table) -> None:
    """Add the columns of fields declared since the store was written, where SQLite can (a
    nullable column, or one with a default); anything else is left for the drift check."""
    present = {r["name"] for r in conn.execute(f"PRAGMA table_info({table.name})")}
    for column in table.columns():
        addable = not column.primary_key and (not column.not_null or column.default is not None)
        if column.name not in present and addable:
            conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {column.ddl()}")


def _ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the tables, or bring an older store to :data:`SCHEMA_VERSION`, in one
    transaction; then bring every table to its declaration where that needs no decision (new
    nullable or defaulted columns, a changed status list) and refuse a store that still
    differs.

    ``BEGIN IMMEDIATE`` takes the write lock before the version is read, so two writers
    starting together migrate once.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if 2 <= version < 3 and _table_exists(conn, EPISODES.name):
            # Version 2's episodes were runs of alert windows; the tick path's have other
            # fields. Kept, under another name, not read.
            conn.execute("DROP INDEX IF EXISTS episodes_newest")
            conn.execute("ALTER TABLE episodes RENAME TO window_episodes")
        for table in TABLES:
            if not _table_exists(conn, table.name):
                _create(conn, table)
                continue
            _add_declared_columns(conn, table)
            checks = stored_checks(conn, table.name)
            if any(checks.get(c.name, ()) != c.check_in for c in table.columns()):
                _rebuild(conn, table)  # e.g. version 0 -> 1: the suppressed status
        drift = [problem for table in TABLES for problem in table_drift(conn, table)]
        if drift:
            raise StoreSchemaError(
                "the history store does not match the declared records (a migration in "
                f"services.common.history.store is missing): {'; '.join(drift)}")
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _clip_error(error: str | None) -> str | None:
    if error is None:
        return None
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 3] + "..."


@guard_store_errors
class AlertHistory:
    """The writer's handle (the alerter): creates the file and tables if needed.

    WAL mode lets this one writer and any number of reader processes work at once: readers see
    the last committed state and never block the writer. One instance per thread;
    ``check_same_thread`` stays on so misuse fails loudly. A store that is locked, full,
    corrupt (checked at open), read-only or missing raises
    :class:`~services.common.exceptions.HistoryUnavailable` (reason, path, what to do).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect(self.path)
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across process crashes in WAL mode; only a power cut may lose
            # the last commits, and those alerts are then redelivered from Kafka (offset not
            # committed).
            self._conn.execute("PRAGMA synchronous = NORMAL")
            check_integrity(self._conn, self.path)
            _ensure_schema(self._conn)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> AlertHistory:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- alerts --------------------------------------------------------------------------------
    def record(self, spread: Spread, received_ts_ms: int | None = None) -> StoreResult:
        """Store an alert once; a second call with the same id changes nothing and says so."""
        received_ts_ms = now_ts_ms() if received_ts_ms is None else received_ts_ms
        values = asdict(spread)
        columns = (*SPREAD_COLUMNS, "status", "attempts", "received_ts_ms", "updated_ts_ms")
        params = [values[name] for name in SPREAD_COLUMNS]
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

    def counts(self) -> dict[str, int]:
        return status_counts(self._conn)

    # -- episodes ------------------------------------------------------------------------------
    def record_episode(self, episode: Episode, received_ts_ms: int | None = None,
                       ) -> EpisodeRecord:
        """Store an episode record: the opening one creates the row, the closing one creates it
        or brings it to its final numbers. Idempotent; a late opening record never undoes a
        close."""
        received_ts_ms = now_ts_ms() if received_ts_ms is None else received_ts_ms
        values = asdict(episode)
        columns = (*EPISODE_COLUMNS, "received_ts_ms", "updated_ts_ms")
        params = [values[name] for name in EPISODE_COLUMNS] + [received_ts_ms, received_ts_ms]
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
        return open_episode_counts(self._conn)

    # -- "sending" marks: a Discord request in flight ------------------------------------------
    def mark_sending(self, alert_id: str, sending_ts_ms: int | None = None) -> None:
        """A request for this alert is about to start; None clears the mark (no request was
        made after all). A pending alert still marked after a restart may have been posted."""
        self._set_sending("alerts", "sending_ts_ms", alert_id, sending_ts_ms)

    def mark_episode_sending(self, episode_id: str, message: str,
                             sending_ts_ms: int | None = None) -> None:
        """:meth:`mark_sending` for an episode's ``opened`` or ``closed`` message."""
        if message not in (OPENED, CLOSED):
            raise ValueError(f"message must be {OPENED!r} or {CLOSED!r}")
        self._set_sending("episodes", f"{message}_sending_ts_ms", episode_id, sending_ts_ms)

    def _set_sending(self, table: str, column: str, row_id: str,
                     sending_ts_ms: int | None) -> None:
        with self._conn:
            cursor = self._conn.execute(
                f"UPDATE {table} SET {column} = ? WHERE id = ?",  # noqa: S608 - constant names
                (sending_ts_ms, row_id),
            )
        if cursor.rowcount != 1:
            raise KeyError(row_id)
