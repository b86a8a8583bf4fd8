"""Why the history store failed, in one word a metric can carry, and what to do about it.

SQLite reports every fault as an exception whose primary result code says what happened (busy,
full, corrupt, ...). :func:`classify` turns it into one of :data:`REASONS`, the label of
``arb_history_store_errors_total{reason}`` and ``arb_dashboard_history_errors_total{reason}``;
:func:`unavailable` wraps it into a :class:`HistoryUnavailable` naming the file and the fix.
The writer's methods raise that error for the faults below and leave the rest (a constraint, a
programming error) as SQLite raised them; the readers raise it for every error.
"""

from __future__ import annotations

import errno
import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from services.common.exceptions import HistoryUnavailable

#: Another connection holds the write lock past the busy timeout.
LOCKED = "locked"
#: The disk (or the store's page limit) is full.
FULL = "full"
#: Not a database, or a damaged one.
CORRUPT = "corrupt"
#: The file or its folder cannot be written.
READONLY = "readonly"
#: The file or its folder cannot be opened at all.
MISSING = "missing"
OTHER = "other"
#: Every reason, in the order the runbook lists them; metrics are created with each at 0.
REASONS = (LOCKED, FULL, CORRUPT, READONLY, MISSING, OTHER)
#: The runbook section (docs/runbook.md heading HistoryStoreFailing) for every reason.
RUNBOOK_ANCHOR = "historystorefailing"

#: Primary result codes (https://sqlite.org/rescode.html): extended codes keep them in the low
#: byte.
_BY_CODE = {
    5: LOCKED,  # SQLITE_BUSY
    6: LOCKED,  # SQLITE_LOCKED
    13: FULL,  # SQLITE_FULL
    11: CORRUPT,  # SQLITE_CORRUPT
    26: CORRUPT,  # SQLITE_NOTADB
    8: READONLY,  # SQLITE_READONLY
    3: READONLY,  # SQLITE_PERM
    14: MISSING,  # SQLITE_CANTOPEN
}
#: The same, from the message, for an error raised without a code.
_BY_MESSAGE = (
    ("is locked", LOCKED),
    ("disk is full", FULL),
    ("malformed", CORRUPT),
    ("not a database", CORRUPT),
    ("readonly", READONLY),
    ("unable to open", MISSING),
)
_BY_ERRNO = {
    errno.ENOSPC: FULL,
    errno.EDQUOT: FULL,
    errno.EACCES: READONLY,
    errno.EPERM: READONLY,
    errno.EROFS: READONLY,
    errno.ENOENT: MISSING,
    errno.ENOTDIR: MISSING,
}

#: What to do, per reason (the runbook says more).
ADVICE = {
    LOCKED: "Another process holds a write lock on it (an open sqlite3 shell, a backup tool): "
            "find it with `fuser <file>` and end it; the alerter retries and loses nothing.",
    FULL: "Free disk space on its volume (`df -h <folder>`); the alerter retries and loses "
          "nothing, its alerts stay uncommitted in Kafka until stored.",
    CORRUPT: "Stop the alerter, move the file aside with its -wal and -shm files "
             "(`mv alerts.db alerts.db.corrupt`); the alerter starts a new one and the records "
             "still uncommitted in Kafka are written again.",
    READONLY: "Make the file and its folder writable by the alerter's user (a read-only "
              "volume or file mode); the alerter retries.",
    MISSING: "Check ARB_HISTORY_DB and that its folder exists and is mounted.",
    OTHER: "See the message and the alerter's history_store_error log lines.",
}

T = TypeVar("T")


def classify(exc: BaseException) -> str:
    """The reason label of a store failure: one of :data:`REASONS`; pure."""
    if isinstance(exc, HistoryUnavailable):
        return exc.reason
    if isinstance(exc, OSError):
        return _BY_ERRNO.get(exc.errno or 0, OTHER)
    if not isinstance(exc, sqlite3.Error):
        return OTHER
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _BY_CODE:
        return _BY_CODE[code & 0xFF]
    text = str(exc).lower()
    return next((reason for needle, reason in _BY_MESSAGE if needle in text), OTHER)


def unavailable(exc: BaseException, path: str | Path) -> HistoryUnavailable:
    """``exc`` as a :class:`HistoryUnavailable` with its reason, the file and what to do."""
    if isinstance(exc, HistoryUnavailable):
        return exc
    reason = classify(exc)
    return HistoryUnavailable(reason, str(path), str(exc) or type(exc).__name__, ADVICE[reason])


def check_integrity(conn: sqlite3.Connection, path: str | Path) -> None:
    """``PRAGMA quick_check``: a damaged store is refused when opened, not found by the query
    that reads its broken page. Raises :class:`HistoryUnavailable` (corrupt)."""
    rows = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    if rows != ["ok"]:
        detail = "; ".join(" ".join(str(row).split()) for row in rows)[:300]
        raise HistoryUnavailable(CORRUPT, str(path), f"quick_check: {detail}", ADVICE[CORRUPT])


def guard_store_errors(cls: type[T]) -> type[T]:
    """Wrap every public method of a store class (and ``__init__``) so the faults
    :func:`classify` names leave it as :class:`HistoryUnavailable` with ``self.path``; other
    SQLite errors (a constraint) pass unchanged."""
    for name, method in list(vars(cls).items()):
        if callable(method) and (name == "__init__" or not name.startswith("_")):
            setattr(cls, name, _guarded(method))
    return cls


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except HistoryUnavailable:
            raise
        except sqlite3.Error as exc:
            if classify(exc) == OTHER:
                raise
            raise unavailable(exc, getattr(self, "path", "?")) from exc

    return call
