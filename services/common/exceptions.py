"""One exception family for the whole project, so callers can catch ArbError alone."""

from __future__ import annotations

import sqlite3


class ArbError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(ArbError):
    """A setting is missing or invalid; the message names the environment variable."""


class RecordError(ArbError):
    """A record or exchange message could not be used; ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class BrokerError(ArbError):
    """The local broker could not be started or did not answer."""


class HistoryUnavailable(ArbError, sqlite3.DatabaseError):  # noqa: N818 - the name its callers use: the state, not a bug
    """The alert history store cannot be used: ``reason`` is a short metric label (locked,
    full, corrupt, readonly, missing, other), ``path`` the file, ``detail`` SQLite's own words
    and ``advice`` what to do.

    Also a :class:`sqlite3.DatabaseError`, so code that already waits out store errors (the
    alerter retries until the store works again, its Kafka offset uncommitted) keeps doing so.
    """

    def __init__(self, reason: str, path: str, detail: str, advice: str = "") -> None:
        self.reason = reason
        self.path = path
        self.detail = detail
        self.advice = advice
        message = f"alert history {path} unavailable ({reason}): {detail}"
        super().__init__(f"{message}. {advice}" if advice else message)
