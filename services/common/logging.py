"""structlog set-up: JSON lines for services, readable colours on a terminal."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(service: str, *, json: bool | None = None, level: str = "INFO") -> None:
    """Configure structlog once per process; ``json=None`` picks JSON unless stderr is a TTY."""
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def truncate(text: str | bytes, limit: int = 200) -> str:
    """Shorten raw input for a log line, so one bad frame cannot flood the log."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"
