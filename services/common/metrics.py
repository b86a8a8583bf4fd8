"""One HTTP endpoint per service: ``/metrics`` for Prometheus and ``/healthz`` for readiness.

``/metrics`` is prometheus-client's own WSGI app, so the exposition is the library's: gzip when
the scraper accepts it, OpenMetrics when it asks for it (``Accept:
application/openmetrics-text``), ``name[]`` filters. Compose healthchecks and the launcher also
need a readiness signal that can say "not yet", which the library's server does not have (it
answers every path with metrics), so a small WSGI dispatcher puts ``/healthz`` beside it.

The endpoint listens on ``BIND_ADDRESS`` (default 127.0.0.1: this machine only); containers set
0.0.0.0 so that Prometheus can scrape them from another host.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

ReadyCheck = Callable[[], bool]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Buckets for latencies measured in seconds, from a loopback hop to a slow window.
LATENCY_BUCKETS_SECONDS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0,
    10.0, 15.0, 30.0,
)
METRICS_PATH = "/metrics"
READY_PATHS = frozenset({"/healthz", "/ready"})
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]


def service_app(ready: ReadyCheck, registry: CollectorRegistry = REGISTRY) -> WsgiApp:
    """``/metrics`` (prometheus-client's app), ``/healthz`` and ``/ready`` (200 ok or 503 not
    ready), 404 for anything else."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == METRICS_PATH:
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path in READY_PATHS:
            ok = _safe(ready)
            start_response("200 OK" if ok else "503 Service Unavailable", _TEXT)
            return [b"ok\n" if ok else b"not ready\n"]
        start_response("404 Not Found", _TEXT)
        return [b"not found\n"]

    return app


def _safe(ready: ReadyCheck) -> bool:
    try:
        return bool(ready())
    except Exception:  # noqa: BLE001 - a failing check means "not ready", never a crash
        return False


def bind_address() -> str:
    """``BIND_ADDRESS`` from the environment (127.0.0.1 unless set)."""
    from services.common.config import process_settings

    return process_settings().bind_address


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes are not log events


def _server_class(host: str, port: int) -> type[ThreadingWSGIServer]:
    """ThreadingWSGIServer (daemon threads) with the address family ``host`` needs (IPv6 for
    ``::``)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    return type("_Server", (ThreadingWSGIServer,), {"address_family": family})


class MetricsServer:
    """Serves metrics and readiness on a background thread; ``port=0`` picks a free port and
    ``host=None`` means ``BIND_ADDRESS``."""

    def __init__(
        self,
        port: int,
        ready: ReadyCheck = lambda: True,
        registry: CollectorRegistry = REGISTRY,
        host: str | None = None,
    ) -> None:
        self.host = bind_address() if host is None else host
        self._server = make_server(
            self.host, port, service_app(ready, registry),
            server_class=_server_class(self.host, port), handler_class=_QuietHandler,
        )
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True,
        )

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which must be running
            self._server.shutdown()
        self._server.server_close()
