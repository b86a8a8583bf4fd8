"""History store faults on real files: a corrupt, locked, full, read-only or missing store is a
:class:`HistoryUnavailable` with its reason, the file and what to do, for the writer (the
alerter) and the readers (the dashboard) alike; :func:`classify` names each one."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from services.common.exceptions import HistoryUnavailable
from services.common.history import AlertHistory, read_counts, read_episodes, read_recent
from services.common.history import schema as schema_module
from services.common.history.faults import (
    ADVICE,
    CORRUPT,
    FULL,
    LOCKED,
    MISSING,
    OTHER,
    READONLY,
    REASONS,
    classify,
    unavailable,
)
from tests.support.alerts import WINDOW_END_MS, make_spread

#: A lock wait short enough for a test (the store's own is seconds).
SHORT_BUSY_MS = 50


@pytest.fixture
def short_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema_module, "BUSY_TIMEOUT_MS", SHORT_BUSY_MS)


def populated(path: Path, alerts: int = 300) -> Path:
    """A store with enough rows to span several pages, checkpointed into the main file."""
    with AlertHistory(path) as history:
        for i in range(alerts):
            history.record(make_spread(window_end_ms=WINDOW_END_MS + i * 1000))
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def garbage(path: Path) -> Path:
    path.write_bytes(b"this is not an SQLite file\n" * 200)
    return path


def damaged(path: Path) -> Path:
    """A real store with pages in the middle overwritten: its header is intact, so only a
    check (or the query that reads those pages) finds it."""
    populated(path)
    with open(path, "r+b") as file:
        file.seek(2 * 4096)
        file.write(bytes(range(256)) * 48)  # 3 pages of a pattern no b-tree page has
    return path


@contextmanager
def exclusive_holder(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection holding the store's write lock (BEGIN EXCLUSIVE) and,
    in exclusive locking mode, keeping readers out too (as a backup tool or a shell might)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("UPDATE alerts SET attempts = attempts")
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


# -- classify: pure ------------------------------------------------------------------------------

def coded(kind: type[sqlite3.Error], message: str, code: int) -> sqlite3.Error:
    exc = kind(message)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(("exc", "reason"), [
    (coded(sqlite3.OperationalError, "database is locked", 5), LOCKED),
    (coded(sqlite3.OperationalError, "database table is locked", 6), LOCKED),
    (coded(sqlite3.OperationalError, "database or disk is full", 13), FULL),
    (coded(sqlite3.DatabaseError, "database disk image is malformed", 11), CORRUPT),
    (coded(sqlite3.DatabaseError, "file is not a database", 26), CORRUPT),
    (coded(sqlite3.OperationalError, "attempt to write a readonly database", 8), READONLY),
    (coded(sqlite3.OperationalError, "attempt to write a readonly database", 8 | 6 << 8),
     READONLY),  # SQLITE_READONLY_DIRECTORY: an extended code keeps the primary one low
    (coded(sqlite3.OperationalError, "unable to open database file", 14), MISSING),
    (coded(sqlite3.OperationalError, "no such table: alerts", 1), OTHER),
    (coded(sqlite3.IntegrityError, "UNIQUE constraint failed: alerts.id", 1555), OTHER),
    # Without a code (raised by hand, an older driver): from the words.
    (sqlite3.OperationalError("database is locked"), LOCKED),
    (sqlite3.OperationalError("database or disk is full"), FULL),
    (sqlite3.DatabaseError("file is not a database"), CORRUPT),
    (sqlite3.OperationalError("attempt to write a readonly database"), READONLY),
    (sqlite3.OperationalError("unable to open database file"), MISSING),
    (sqlite3.OperationalError("near 'SELEC': syntax error"), OTHER),
    (OSError(errno.ENOSPC, "No space left on device"), FULL),
    (OSError(errno.EROFS, "Read-only file system"), READONLY),
    (PermissionError(errno.EACCES, "Permission denied"), READONLY),
    (FileNotFoundError(errno.ENOENT, "No such file"), MISSING),
    (ValueError("not a store error"), OTHER),
    (HistoryUnavailable(FULL, "/x.db", "database or disk is full"), FULL),
])
def test_classify(exc: BaseException, reason: str) -> None:
    assert classify(exc) == reason
    assert reason in REASONS


def test_unavailable_names_reason_file_and_fix() -> None:
    exc = unavailable(sqlite3.DatabaseError("file is not a database"), Path("/data/alerts.db"))
    assert (exc.reason, exc.path, exc.detail) == (CORRUPT, "/data/alerts.db",
                                                 "file is not a database")
    assert exc.advice == ADVICE[CORRUPT] and "move the file aside" in str(exc)
    assert "/data/alerts.db" in str(exc)
    # Still a DatabaseError: the alerter's retry loop (except sqlite3.Error) waits it out.
    assert isinstance(exc, sqlite3.DatabaseError)
    assert unavailable(exc, "/elsewhere") is exc


def test_every_reason_has_advice() -> None:
    assert set(ADVICE) == set(REASONS)
    assert all(ADVICE.values())


# -- the writer ----------------------------------------------------------------------------------

def test_opening_garbage_is_corrupt(tmp_path: Path) -> None:
    path = garbage(tmp_path / "alerts.db")
    with pytest.raises(HistoryUnavailable) as raised:
        AlertHistory(path)
    assert raised.value.reason == CORRUPT
    assert raised.value.path == str(path)
    assert "not a database" in raised.value.detail
    assert "move the file aside" in str(raised.value)


def test_opening_a_damaged_store_is_corrupt_at_once(tmp_path: Path) -> None:
    path = damaged(tmp_path / "alerts.db")
    with pytest.raises(HistoryUnavailable) as raised:
        AlertHistory(path)  # the header is fine: quick_check at open finds the pages
    assert raised.value.reason == CORRUPT
    assert raised.value.path == str(path)


def test_a_store_moved_aside_is_started_anew(tmp_path: Path) -> None:
    """The runbook's fix for a corrupt store, done: the next open creates an empty one."""
    path = garbage(tmp_path / "alerts.db")
    with pytest.raises(HistoryUnavailable):
        AlertHistory(path)
    path.rename(tmp_path / "alerts.db.corrupt")
    with AlertHistory(path) as history:
        assert history.record(make_spread()).inserted


def test_a_write_lock_held_past_the_busy_timeout_is_locked(tmp_path: Path,
                                                           short_busy: None) -> None:
    path = tmp_path / "alerts.db"
    with AlertHistory(path) as history:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(HistoryUnavailable) as raised:
                history.record(make_spread())
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert raised.value.reason == LOCKED
        assert "database is locked" in raised.value.detail
        assert history.record(make_spread()).inserted  # the lock gone, the same call works


def test_opening_a_locked_store_is_locked(tmp_path: Path, short_busy: None) -> None:
    path = populated(tmp_path / "alerts.db", alerts=3)
    with exclusive_holder(path), pytest.raises(HistoryUnavailable) as raised:
        AlertHistory(path)
    assert raised.value.reason == LOCKED


def test_a_full_store_is_full_and_keeps_what_it_had(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    with AlertHistory(path) as history:
        pages = history._conn.execute("PRAGMA page_count").fetchone()[0]
        history._conn.execute(f"PRAGMA max_page_count = {pages}")  # no room to grow
        stored = 0
        with pytest.raises(HistoryUnavailable) as raised:
            for i in range(10_000):
                history.record(make_spread(window_end_ms=WINDOW_END_MS + i * 1000))
                stored += 1
        assert raised.value.reason == FULL
        assert "full" in raised.value.detail
        assert history.counts()["pending"] == stored  # the failed insert was rolled back
        assert stored < 10_000


def test_a_read_only_store_is_readonly(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    AlertHistory(path).close()
    if os.geteuid() != 0:
        path.chmod(0o444)
        tmp_path.chmod(0o555)
        try:
            with pytest.raises(HistoryUnavailable) as raised, AlertHistory(path) as history:
                history.record(make_spread())
        finally:
            tmp_path.chmod(0o755)
            path.chmod(0o644)
    else:  # root writes through any file mode: make the connection refuse writes instead
        with AlertHistory(path) as history:
            history._conn.execute("PRAGMA query_only = ON")
            with pytest.raises(HistoryUnavailable) as raised:
                history.record(make_spread())
    assert raised.value.reason == READONLY
    assert raised.value.path == str(path)


def test_a_folder_in_the_files_place_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    path.mkdir()
    with pytest.raises(HistoryUnavailable) as raised:
        AlertHistory(path)
    assert raised.value.reason == MISSING


def test_constraint_errors_are_left_as_sqlite_raised_them(tmp_path: Path) -> None:
    """Not a store fault: a bug, which must not read as "the disk is full"."""
    with AlertHistory(tmp_path / "alerts.db") as history:
        spread = history.record(make_spread()).alert
        with pytest.raises(sqlite3.IntegrityError) as raised:
            history._update(spread.id, status="no-such-status")
    assert not isinstance(raised.value, HistoryUnavailable)


# -- the readers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("read", [read_recent, read_counts, read_episodes])
def test_reading_garbage_is_corrupt(tmp_path: Path, read: object) -> None:
    path = garbage(tmp_path / "alerts.db")
    with pytest.raises(HistoryUnavailable) as raised:
        read(path)  # type: ignore[operator]
    assert (raised.value.reason, raised.value.path) == (CORRUPT, str(path))


def test_reading_damaged_pages_is_corrupt(tmp_path: Path) -> None:
    path = damaged(tmp_path / "alerts.db")
    with pytest.raises(HistoryUnavailable) as raised:
        read_recent(path, limit=1000)
    assert raised.value.reason == CORRUPT


def test_reading_a_store_locked_against_readers_is_locked(tmp_path: Path,
                                                          short_busy: None) -> None:
    path = populated(tmp_path / "alerts.db", alerts=3)
    with exclusive_holder(path), pytest.raises(HistoryUnavailable) as raised:
        read_recent(path)
    assert raised.value.reason == LOCKED
    assert len(read_recent(path)) == 3  # and readable again once the lock is gone


def test_reading_a_folder_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    path.mkdir()
    with pytest.raises(HistoryUnavailable) as raised:
        read_recent(path)
    assert raised.value.reason == MISSING


def test_a_file_without_tables_is_still_an_empty_store(tmp_path: Path) -> None:
    """Not a fault: the alerter has created the file but not its tables yet."""
    path = tmp_path / "alerts.db"
    path.write_bytes(b"")
    assert read_recent(path) == []
    assert read_episodes(path) == []


def test_episodes_of_a_locked_store_are_not_read_as_none(tmp_path: Path,
                                                         short_busy: None) -> None:
    """A locked store must say so, not pass for a store without an episodes table."""
    path = populated(tmp_path / "alerts.db", alerts=3)
    with exclusive_holder(path), pytest.raises(HistoryUnavailable) as raised:
        read_episodes(path)
    assert raised.value.reason == LOCKED


def test_every_public_store_method_is_guarded() -> None:
    """A method added later gets the same treatment without anyone remembering to."""
    public = [name for name, value in vars(AlertHistory).items()
              if callable(value) and not name.startswith("_")]
    assert "record" in public and "mark_delivered" in public
    unguarded = [name for name in [*public, "__init__"]
                 if not hasattr(getattr(AlertHistory, name), "__wrapped__")]
    assert unguarded == []
