"""One log stream per process: structlog renders every line, the standard library's too.

websockets, py4j, urllib3, Streamlit and librdkafka (through the Kafka clients' ``logger`` hook,
services/common/kafka.py) log through :mod:`logging`; the root handler installed here renders
their records with the same processors as structlog's own events, so a log pipeline reads one
JSON object per line, and a terminal gets readable lines with pretty tracebacks. ``LOG_LEVEL``
and ``LOG_FORMAT`` (services/common/config.py) choose the level and the renderer.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from types import TracebackType
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from services.common.config import process_settings
from services.common.exceptions import ConfigError

#: Libraries whose INFO records are start-up chatter: WARNING and above unless LOG_LEVEL=DEBUG.
CHATTY = ("apache_beam", "pyflink.fn_execution")


def log_format(stream: TextIO | None = None, setting: str | None = None) -> str:
    """``json`` or ``console``: LOG_FORMAT, with ``auto`` decided by whether ``stream``
    (default stderr) is a terminal."""
    chosen = process_settings().log_format if setting is None else setting
    if chosen != "auto":
        return chosen
    stream = sys.stderr if stream is None else stream
    return "console" if _isatty(stream) else "json"


def configure_logging(
    service: str, *, json: bool | None = None, level: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the standard library's logging once per process.

    ``json`` and ``level`` given in code win over LOG_FORMAT and LOG_LEVEL; ``stream`` is where
    every line goes (default stderr). An invalid LOG_* value is logged and exits with code 2,
    as every other invalid setting does at start.
    """
    stream = sys.stderr if stream is None else stream
    try:
        settings = process_settings()
    except ConfigError as exc:
        _install(service, json=not _isatty(stream) if json is None else json,
                 level=level or "INFO", stream=stream)
        structlog.get_logger(__name__).error("config_invalid", error=str(exc))
        raise SystemExit(2) from None
    use_json = log_format(stream, settings.log_format) == "json" if json is None else json
    _install(service, json=use_json, level=level or settings.log_level, stream=stream)


def truncate(text: str | bytes, limit: int = 200) -> str:
    """Shorten raw input for a log line, so one bad frame cannot flood the log."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False


def _install(service: str, *, json: bool, level: str, stream: TextIO) -> None:
    threshold = logging.getLevelNamesMapping()[level.upper()]

    def add_service(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        """A processor, not a context variable: threads started later have the field too."""
        event.setdefault("service", service)
        return event

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_service,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.set_name("arb")
    handler.setLevel(threshold)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *_renderers(json, stream)],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "arb"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    quiet = threshold if threshold <= logging.DEBUG else max(threshold, logging.WARNING)
    for name in CHATTY:
        logging.getLogger(name).setLevel(quiet)
    logging.captureWarnings(True)  # warnings.warn() becomes a py.warnings record
    _log_uncaught_exceptions()


def _renderers(json: bool, stream: TextIO) -> list[Processor]:
    if json:
        return [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    # No format_exc_info here: the renderer formats exc_info itself, with rich or
    # better-exceptions when installed, else as a plain traceback.
    colors = (_isatty(stream) or bool(os.environ.get("FORCE_COLOR"))) \
        and not os.environ.get("NO_COLOR")
    return [structlog.dev.ConsoleRenderer(colors=colors)]


def _log_uncaught_exceptions() -> None:
    """An exception nobody caught is a log line too, not a bare traceback on stderr."""
    log = structlog.get_logger("uncaught")

    def on_main(kind: type[BaseException], exc: BaseException,
                tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            log.info("interrupted")
            return
        log.critical("uncaught_exception", exc_info=(kind, exc, tb))

    def on_thread(args: Any) -> None:
        if args.exc_type is SystemExit:
            return
        log.critical("uncaught_exception", thread=getattr(args.thread, "name", None),
                     exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = on_main
    threading.excepthook = on_thread
