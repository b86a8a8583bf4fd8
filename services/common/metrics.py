"""One HTTP endpoint per service: ``/metrics`` for Prometheus and ``/healthz`` for readiness.

prometheus-client's own server answers every path with metrics; compose healthchecks and the
launcher need a readiness signal that can say "not yet", so this small server adds it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

ReadyCheck = Callable[[], bool]

#: Buckets for latencies measured in seconds, from a loopback hop to a slow window.
LATENCY_BUCKETS_SECONDS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0,
    10.0, 15.0, 30.0,
)


class MetricsServer:
    """Serves metrics and readiness on a background thread; ``port=0`` picks a free port."""

    def __init__(
        self,
        port: int,
        ready: ReadyCheck = lambda: True,
        registry: CollectorRegistry = REGISTRY,
        host: str = "0.0.0.0",  # noqa: S104 - scraped by Prometheus from other hosts in compose
    ) -> None:
        self._ready = ready
        self._registry = registry
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, ctype, status = generate_latest(outer._registry), CONTENT_TYPE_LATEST, 200
                elif path in {"/healthz", "/ready"}:
                    ok = outer._safe_ready()
                    body = b"ok\n" if ok else b"not ready\n"
                    ctype, status = "text/plain", 200 if ok else 503
                else:
                    body, ctype, status = b"not found\n", "text/plain", 404
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # scrapes are not log events
                pass

        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True,
        )

    def _safe_ready(self) -> bool:
        try:
            return bool(self._ready())
        except Exception:  # noqa: BLE001 - a failing check means "not ready", never a crash
            return False

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
