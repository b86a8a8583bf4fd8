"""The services' HTTP endpoint: prometheus-client's exposition (gzip, OpenMetrics) at /metrics,
readiness beside it, and loopback unless BIND_ADDRESS opens it."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest
import requests
from prometheus_client import CollectorRegistry, Counter

from services.common.metrics import MetricsServer


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("arb_test_events_total", "Events", ["kind"], registry=registry).labels("a").inc(3)
    return registry


@pytest.fixture
def server(registry: CollectorRegistry) -> Iterator[MetricsServer]:
    server = MetricsServer(0, registry=registry).start()
    yield server
    server.stop()


def _url(server: MetricsServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def test_metrics_in_the_text_format_by_default(server: MetricsServer) -> None:
    response = requests.get(_url(server, "/metrics"), timeout=5,
                            headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'arb_test_events_total{kind="a"} 3.0' in response.text


def test_metrics_gzipped_when_the_scraper_accepts_it(server: MetricsServer) -> None:
    response = requests.get(_url(server, "/metrics"), timeout=5, stream=True,
                            headers={"Accept-Encoding": "gzip"})
    assert response.headers.get("Content-Encoding") == "gzip"
    body = gzip.decompress(response.raw.read())
    assert b'arb_test_events_total{kind="a"} 3.0' in body


def test_metrics_in_openmetrics_when_asked(server: MetricsServer) -> None:
    response = requests.get(_url(server, "/metrics"), timeout=5,
                            headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert response.text.endswith("# EOF\n")
    assert 'arb_test_events_total{kind="a"} 3.0' in response.text


def test_name_filter_of_the_library(server: MetricsServer) -> None:
    response = requests.get(_url(server, "/metrics"), timeout=5,
                            params={"name[]": "arb_test_events_total"})
    assert "arb_test_events_total" in response.text
    assert "python_info" not in response.text


@pytest.mark.parametrize("path", ["/healthz", "/ready"])
def test_readiness_says_ok_or_not_yet(registry: CollectorRegistry, path: str) -> None:
    answers = iter([True, False])

    def broken() -> bool:
        raise RuntimeError("check failed")

    for check, status in ((lambda: next(answers), 200), (lambda: next(answers), 503),
                          (broken, 503)):
        server = MetricsServer(0, ready=check, registry=registry).start()
        try:
            assert requests.get(_url(server, path), timeout=5).status_code == status
        finally:
            server.stop()


def test_other_paths_are_not_found(server: MetricsServer) -> None:
    assert requests.get(_url(server, "/"), timeout=5).status_code == 404
    assert requests.get(_url(server, "/metricsx"), timeout=5).status_code == 404


def test_listens_on_loopback_unless_bind_address_says_otherwise(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BIND_ADDRESS", raising=False)
    server = MetricsServer(0, registry=registry)
    try:
        assert server.host == "127.0.0.1"
        assert server._server.server_address[0] == "127.0.0.1"
    finally:
        server.stop()
    monkeypatch.setenv("BIND_ADDRESS", "0.0.0.0")
    server = MetricsServer(0, registry=registry)
    try:
        assert server._server.server_address[0] == "0.0.0.0"
    finally:
        server.stop()
