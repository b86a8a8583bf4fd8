"""``python -m services.dashboard``: the Streamlit server with its metrics up from the start.

``streamlit run app.py`` runs the page script only when a browser connects, so ``/metrics``
(DESIGN.md, :8003) and the background reader would wait for the first visitor. This entry point
starts both first, in the same process, then hands over to Streamlit; the page finds them
through the same process-wide registry. Extra arguments go to ``streamlit run``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import structlog
from streamlit.web import cli as streamlit_cli

from services.common.config import DashboardSettings, KafkaSettings, describe, load_dotenv
from services.common.exceptions import ConfigError
from services.common.logging import configure_logging
from services.dashboard.live import shared_for
from services.dashboard.metrics import serve_metrics

APP = Path(__file__).resolve().parent / "app.py"
log = structlog.get_logger("services.dashboard")


def streamlit_argv(settings: DashboardSettings, extra: list[str]) -> list[str]:
    return [
        "streamlit", "run", str(APP),
        "--server.port", str(settings.port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal", *extra,
    ]


def main(argv: list[str] | None = None) -> int:
    load_dotenv()
    configure_logging("dashboard")
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
