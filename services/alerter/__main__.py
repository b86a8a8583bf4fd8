"""``python -m services.alerter``: run until SIGTERM/SIGINT, then leave the group cleanly."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import structlog

from services.alerter.faults import KillPoints
from services.alerter.metrics import AlerterMetrics
from services.alerter.service import AlerterService
from services.common.config import AlerterSettings, KafkaSettings, describe, load_dotenv
from services.common.exceptions import ConfigError
from services.common.logging import configure_logging
from services.common.metrics import MetricsServer

log = structlog.get_logger("services.alerter")


def main(delivery: str | None = None) -> int:
    """``delivery`` overrides the delivery mode setting (the crash tests run both modes)."""
    load_dotenv()
    configure_logging("alerter")
    try:
        settings = AlerterSettings.from_env()
        kafka = KafkaSettings.from_env()
    except ConfigError as exc:
        log.error("config_invalid", error=str(exc))
        return 2
    log.info("config", alerter=describe(settings), kafka=describe(kafka))

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    try:
        service = AlerterService(settings, kafka, metrics=AlerterMetrics(), stop=stop,
                                 delivery=delivery, kill_points=KillPoints.from_env())
    except ValueError as exc:
        log.error("config_invalid", error=str(exc))
        return 2
    server = MetricsServer(settings.metrics_port, ready=service.ready).start()
    log.info("metrics_listening", port=server.port)
    try:
        service.run()
    except Exception:
        log.exception("alerter_crashed")  # uncommitted records are redelivered on restart
        return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
