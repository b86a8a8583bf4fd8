"""The dashboard's Prometheus metrics (DESIGN.md, dashboard :8003), one set per server process.

Streamlit runs the page script once per browser session and rerun, so nothing here may be
created per run: the metrics, the session tracker and the HTTP endpoint are process-wide
singletons, made on first use (or at start by ``python -m services.dashboard``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from services.common.history.faults import REASONS
from services.common.kafka_stats import consumer_lag_gauge, set_consumer_lags
from services.common.metrics import MetricsServer

log = structlog.get_logger(__name__)


class DashboardMetrics:
    """Open browser sessions, what the shared background reader read and how far behind, and
    the history reads that failed."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.sessions = Gauge(
            "arb_dashboard_sessions", "Browser sessions connected to this Streamlit server",
            registry=registry,
        )
        self.records_read = Counter(
            "arb_dashboard_records_read_total",
            "Records the dashboard's shared background reader read, by topic",
            ["topic"],
            registry=registry,
        )
        self.records_invalid = Counter(
            "arb_records_invalid_total",
            "Records that did not parse and were skipped",
            ["topic", "reason"],
            registry=registry,
        )
        self.consumer_lag = consumer_lag_gauge(registry)
        self.history_errors = Counter(
            "arb_dashboard_history_errors_total",
            "Reads of the alert history store that failed, by reason (locked, full, corrupt, "
            "readonly, missing, other); the page says what is wrong instead",
            ["reason"],
            registry=registry,
        )
        for reason in REASONS:  # every series exists from the start, so rate() sees the first
            self.history_errors.labels(reason)

    def record_lags(self, stats_json: str, group: str) -> None:
        set_consumer_lags(self.consumer_lag, stats_json, group)


class SessionTracker:
    """Counts open browser sessions: each page run registers its session id; a session the
    Streamlit runtime no longer knows (tab closed) is dropped at the next count.

    ``is_active`` answers for one id; without a runtime (AppTest, bare mode) every registered
    session counts.
    """

    def __init__(self, is_active: Callable[[str], bool] | None = None) -> None:
        self._is_active = is_active or _runtime_session_active
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def touch(self, session_id: str) -> None:
        with self._lock:
            self._ids.add(session_id)

    def count(self) -> int:
        with self._lock:
            self._ids = {sid for sid in self._ids if self._is_active(sid)}
            return len(self._ids)


def _runtime_session_active(session_id: str) -> bool:
    try:
        from streamlit.runtime import Runtime

        return not Runtime.exists() or Runtime.instance().is_active_session(session_id)
    except Exception:  # noqa: BLE001 - a private detail changed: count the session rather than fail
        return True


_lock = threading.Lock()
_metrics: DashboardMetrics | None = None
_tracker: SessionTracker | None = None
_server: MetricsServer | None = None
_server_tried = False


def process_metrics() -> tuple[DashboardMetrics, SessionTracker]:
    """The process's metrics (default registry, with the process collectors) and sessions."""
    global _metrics, _tracker
    with _lock:
        if _metrics is None or _tracker is None:
            _metrics = DashboardMetrics()
            _tracker = SessionTracker()
            _metrics.sessions.set_function(_tracker.count)
        return _metrics, _tracker


def serve_metrics(port: int, ready: Callable[[], bool] = lambda: True) -> MetricsServer | None:
    """Start ``/metrics`` and ``/healthz`` once per process; a busy port is logged, not fatal
    (the page matters more than its metrics). Later calls return the first server."""
    global _server, _server_tried
    process_metrics()
    with _lock:
        if not _server_tried:
            _server_tried = True
            try:
                _server = MetricsServer(port, ready=ready).start()
            except OSError as exc:
                log.warning("dashboard_metrics_unavailable", port=port, error=str(exc))
                return None
            log.info("metrics_listening", port=_server.port)
        return _server
