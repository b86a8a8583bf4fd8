"""The history store's tables, derived from the records they hold.

A table is one record class: the wire record's data fields (services.common.messages) and then
the store's own fields, each declared once on :class:`AlertRecord` / :class:`EpisodeRecord`.
The CREATE TABLE statements, the status CHECK and the writer's column lists are built from those
declarations; :func:`table_drift` compares a store on disk with them.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from services.common.exceptions import ArbError
from services.common.messages import Episode, Spread, column_drift, data_fields, record_fields

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
NO_WEBHOOK = "no_webhook"
#: Deliberately not sent: a recent alert for the same symbol and direction was delivered.
SUPPRESSED = "suppressed"
#: Every status an alert can have; the alerts table's CHECK is built from it.
STATUSES = (PENDING, DELIVERED, FAILED, NO_WEBHOOK, SUPPRESSED)
#: An episode's opening message not posted because the episode had already closed when the
#: alerter first saw it (a backlog or a replay): its closing message says everything.
SKIPPED = "skipped"
#: Which message of an episode: the one when it opens, the short update when it closes.
OPENED = "opened"
CLOSED = "closed"
#: How long a connection waits for a lock held by another process before giving up.
BUSY_TIMEOUT_MS = 5000

#: SQLite storage class of each declared field type (booleans are stored as 0/1).
SQLITE_TYPES: dict[type, str] = {str: "TEXT", int: "INTEGER", float: "REAL", bool: "INTEGER"}
_COLUMN = "sqlite"


class StoreSchemaError(ArbError):
    """The store on disk does not have the columns the records declare (a missing migration)."""


def store_field(*, sql_default: str | int | None = None,
                 check_in: tuple[str, ...] = ()) -> Any:
    """A field kept by the store only, with its column's DEFAULT and CHECK (IN) constraint."""
    return field(metadata={_COLUMN: (sql_default, check_in)})


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRecord(Spread):
    """One stored alert: the :class:`Spread` it was, plus its delivery state."""

    status: str = store_field(sql_default=PENDING, check_in=STATUSES)
    attempts: int = store_field(sql_default=0)
    received_ts_ms: int
    delivered_ts_ms: int | None
    last_error: str | None
    updated_ts_ms: int
    #: For a suppressed alert: the delivered alert whose cooldown it fell into.
    suppressed_by: str | None = None
    #: When a Discord request for this alert started ("sending"); while the status is still
    #: pending, a run ended mid-request and the message may or may not have been posted.
    sending_ts_ms: int | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AlertRecord:
        """Build from a row; columns a reader's older store lacks come back as their default."""
        return from_row(cls, row)

    def to_spread(self) -> Spread:
        return Spread(**{name: getattr(self, name) for name in data_fields(Spread)})


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodeRecord(Episode):
    """One stored episode: the :class:`Episode` (its latest state: closed once the closing
    record arrived) plus the state of its two Discord messages."""

    opened_status: str = store_field(sql_default=PENDING)
    closed_status: str = store_field(sql_default=PENDING)
    attempts: int = store_field(sql_default=0)
    last_error: str | None
    received_ts_ms: int
    updated_ts_ms: int
    #: "sending" marks of the two messages, as :attr:`AlertRecord.sending_ts_ms`.
    opened_sending_ts_ms: int | None = None
    closed_sending_ts_ms: int | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> EpisodeRecord:
        return from_row(cls, row)

    def to_episode(self) -> Episode:
        return Episode(**{name: getattr(self, name) for name in data_fields(Episode)})


Stored = TypeVar("Stored", AlertRecord, EpisodeRecord)


def from_row(record: type[Stored], row: sqlite3.Row) -> Stored:
    """A stored record from its row: 0/1 back to booleans, absent columns left to defaults."""
    names = set(row.keys())
    values = {}
    for spec in record_fields(record):
        if spec.name in names:
            value = row[spec.name]
            values[spec.name] = bool(value) if spec.kind is bool and value is not None else value
    return record(**values)


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table, as declared; :meth:`ddl` is its CREATE TABLE line."""

    name: str
    sql_type: str
    not_null: bool
    primary_key: bool = False
    default: str | int | None = None
    check_in: tuple[str, ...] = ()

    def ddl(self) -> str:
        parts = [self.name, self.sql_type]
        if self.primary_key:
            parts.append("PRIMARY KEY")
        elif self.not_null:
            parts.append("NOT NULL")
        if self.default is not None:
            parts.append(f"DEFAULT {_literal(self.default)}")
        if self.check_in:
            parts.append(f"CHECK ({self.name} IN ({', '.join(map(_literal, self.check_in))}))")
        return " ".join(parts)


def _literal(value: str | int) -> str:
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class Table:
    """A stored record class and the table holding it (keyed by the record's ``id``)."""

    name: str
    record: type[AlertRecord] | type[EpisodeRecord]
    primary_key: str = "id"

    def columns(self) -> tuple[Column, ...]:
        """Every data field of the record, in declaration order (the header ``v`` is not
        stored: every stored record is of the version the store reads)."""
        constraints = {f.name: f.metadata.get(_COLUMN, (None, ())) for f in fields(self.record)}
        return tuple(
            Column(spec.name, SQLITE_TYPES[spec.kind], not spec.optional,
                   spec.name == self.primary_key, *constraints[spec.name])
            for spec in record_fields(self.record) if not spec.header
        )

    def create(self, name: str | None = None, *, if_not_exists: bool = False) -> str:
        """The CREATE TABLE statement, under ``name`` (a table being rebuilt) if given."""
        lines = ",\n    ".join(c.ddl() for c in self.columns())
        exists = "IF NOT EXISTS " if if_not_exists else ""
        return f"CREATE TABLE {exists}{name or self.name} (\n    {lines}\n)"


ALERTS = Table("alerts", AlertRecord)
EPISODES = Table("episodes", EpisodeRecord)
TABLES = (ALERTS, EPISODES)
#: Alert columns that come from the spread record (the rest are the store's).
SPREAD_COLUMNS = data_fields(Spread)
EPISODE_COLUMNS = data_fields(Episode)


def stored_columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    """(name, "TYPE [NOT NULL]") of a table on disk, in its order (PRAGMA table_info)."""
    return [(r["name"], r["type"] + (" NOT NULL" if r["notnull"] or r["pk"] else ""))
            for r in conn.execute(f"PRAGMA table_info({table})")]


def declared_columns(table: Table) -> list[tuple[str, str]]:
    """The same pairs as :func:`stored_columns`, from the declaration."""
    return [(c.name, c.sql_type + (" NOT NULL" if c.not_null else "")) for c in table.columns()]


def stored_checks(conn: sqlite3.Connection, table: str) -> dict[str, tuple[str, ...]]:
    """The ``CHECK (column IN (...))`` value lists of a table on disk, per column."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                       (table,)).fetchone()
    found = re.findall(r"CHECK\s*\(\s*(\w+)\s+IN\s*\(([^)]*)\)\s*\)", row[0] if row else "",
                       re.IGNORECASE)
    return {column: tuple(re.findall(r"'((?:[^']|'')*)'", values)) for column, values in found}


def table_drift(conn: sqlite3.Connection, table: Table) -> list[str]:
    """How a table on disk differs from its declaration: columns (order aside: the store names
    every column it reads or writes) and the value lists of its CHECKs."""
    problems = column_drift(declared_columns(table), stored_columns(conn, table.name),
                            table.name, ordered=False)
    checks = stored_checks(conn, table.name)
    problems += [f"{table.name}: {c.name} is checked against {checks.get(c.name, ())}, "
                 f"declared {c.check_in} (a table rebuild is needed)"
                 for c in table.columns() if checks.get(c.name, ()) != c.check_in]
    return problems


def connect(target: str | Path, *, uri: bool = False) -> sqlite3.Connection:
    """A connection with rows by name and the store's lock wait; the writer and readers add
    their own modes."""
    conn = sqlite3.connect(target, uri=uri, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn
