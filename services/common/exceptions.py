"""One exception family for the whole project, so callers can catch ArbError alone."""

from __future__ import annotations


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
