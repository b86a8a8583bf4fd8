"""``python -m services.dashboard``: the Streamlit server with its metrics up from the start.

``streamlit run app.py`` runs the page script only when a browser connects, so ``/metrics``
(DESIGN.md, :8003) and the background reader would wait for the first visitor. This entry point
starts both first, in the same process, then hands over to Streamlit; the page finds them
through the same process-wide registry. Extra arguments go to ``streamlit run``.

Streamlit's own configuration stays in charge: the options below are only defaults, passed
for what neither ``.streamlit/config.toml`` nor a ``STREAMLIT_*`` variable sets; the port is
ARB_DASHBOARD_PORT's when that is set, and the address BIND_ADDRESS's (127.0.0.1 unless set,
like every other port here; Streamlit's own default is every interface).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import structlog
from streamlit import cli_util
from streamlit import config as streamlit_config
from streamlit import logger as streamlit_logger
from streamlit.string_util import to_snake_case
from streamlit.web import cli as streamlit_cli

from services.common.config import DashboardSettings, KafkaSettings, describe, load_dotenv
from services.common.exceptions import ConfigError
from services.common.logging import configure_logging
from services.common.metrics import bind_address
from services.dashboard.live import shared_for
from services.dashboard.metrics import serve_metrics

APP = Path(__file__).resolve().parent / "app.py"
#: Streamlit options set here unless Streamlit's configuration sets them.
STREAMLIT_DEFAULTS = {
    "server.headless": "true",
    "browser.gatherUsageStats": "false",
    "client.toolbarMode": "minimal",
}
log = structlog.get_logger("services.dashboard")


def streamlit_configured() -> set[str]:
    """Options set in a config.toml Streamlit reads (read here, not through Streamlit's
    config, whose second parse would warn that the server options changed)."""
    keys: set[str] = set()
    for path in streamlit_config.get_config_files("config.toml"):
        with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
            for section, values in tomllib.loads(Path(path).read_text()).items():
                if isinstance(values, dict):
                    keys |= {f"{section}.{name}" for name in values}
    return keys


def streamlit_argv(settings: DashboardSettings, extra: list[str]) -> list[str]:
    """``streamlit run`` with flags only for what config.toml and STREAMLIT_* leave unset
    (a flag would override them), and the port when ARB_DASHBOARD_PORT is set."""
    configured = streamlit_configured()
    wanted = {**STREAMLIT_DEFAULTS, "server.port": str(settings.port),
              "server.address": bind_address()}
    flags: list[str] = []
    for key, value in wanted.items():
        variable = "STREAMLIT_" + to_snake_case(key.replace(".", "_")).upper()
        if (key == "server.port" and "port" in settings.model_fields_set) or (
                key not in configured and variable not in os.environ):
            flags += [f"--{key}", value]
    return ["streamlit", "run", str(APP), *flags, *extra]


def route_streamlit_output() -> None:
    """Streamlit gives each of its loggers a handler of its own (and stops them propagating),
    and prints its banner with click: both go through the root handler instead, so the
    dashboard's output is one log stream like every service's."""
    said: list[str] = []
    streamlit_log = structlog.get_logger("streamlit")

    def setup_formatter(logger: logging.Logger) -> None:
        handler = getattr(logger, "streamlit_console_handler", None)
        if handler is not None:
            logger.removeHandler(handler)
        logger.propagate = True

    def print_to_cli(message: str, **kwargs: Any) -> None:
        said.append(message)
        if kwargs.get("nl", True):
            text = " ".join("".join(said).split())
            said.clear()
            if text:
                streamlit_log.info(text)

    streamlit_logger.setup_formatter = setup_formatter
    streamlit_logger.update_formatter()  # the loggers made so far
    cli_util.print_to_cli = print_to_cli
    # Uvicorn (Streamlit's server since 1.5x) applies this dictConfig at start: no handlers
    # of its own.
    with contextlib.suppress(ImportError):
        from uvicorn.config import LOGGING_CONFIG

        for logger in LOGGING_CONFIG["loggers"].values():
            logger.update(handlers=[], propagate=True)


def main(argv: list[str] | None = None) -> int:
    load_dotenv()
    configure_logging("dashboard")
    route_streamlit_output()
    try:
        settings = DashboardSettings.from_env()
        kafka = KafkaSettings.from_env()
    except ConfigError as exc:
        log.error("config_invalid", error=str(exc))
        return 2
    log.info("config", dashboard=describe(settings), kafka=describe(kafka))
    resources = shared_for(settings, kafka)
    serve_metrics(settings.metrics_port, ready=resources.reader.alive)
    sys.argv = streamlit_argv(settings, list(sys.argv[1:] if argv is None else argv))
    return streamlit_cli.main()


if __name__ == "__main__":
    sys.exit(main())
