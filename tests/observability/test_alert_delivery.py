"""Alerts reach Discord in the local run: a real Prometheus, configured by prometheus/prometheus.yml
(its ``alerting`` block included) and evaluating the FeedDown rule of prometheus/rules/alerts.yml,
scrapes a feed's metrics; a real Alertmanager, configured by the same function ``arb start``
calls, routes the alert to a Discord stand-in. Stop the feed and FeedDown arrives, with its
runbook link on ARB_RUNBOOK_URL.

The only changes from the real configuration are the waits, so the test takes seconds: scrapes
and evaluations every second, the rule's ``for`` 2 s instead of 1 min, the policy's group waits
1 s.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client import CollectorRegistry, Gauge

from services.common.alertmanager import TARGETS_FILE, find_binary, local_alertmanager
from services.common.metrics import MetricsServer
from tests.observability.contract import PROMETHEUS_CONFIGS, RULES_DIR
from tests.observability.prom_server import (
    PrometheusServer,
    free_port,
    in_ci,
    require_binary,
    retarget_config,
)
from tests.support.discord_standin import WEBHOOK_PATH, DiscordStandIn
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

RUNBOOK_URL = "http://runbook.test:8501/runbook"
FAST = {"group_wait": "1s", "group_interval": "1s"}


def _alert(name: str) -> dict[str, Any]:
    for group in yaml.safe_load((RULES_DIR / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return dict(rule)
    raise KeyError(name)


@pytest.fixture
def alertmanager_binary() -> str:
    binary = find_binary()
    if binary is None:
        message = "alertmanager not found (install the 'prometheus-alertmanager' apt package)"
        if in_ci():
            pytest.fail(f"{message}; CI is set, so this is a failure, not a skip")
        pytest.skip(message)
    return binary


@pytest.fixture
def feed() -> Iterator[tuple[Gauge, int]]:
    """A producer's arb_feed_connected for one venue, served by the services' endpoint."""
    registry = CollectorRegistry()
    connected = Gauge("arb_feed_connected", "1 while connected", ["exchange"], registry=registry)
    connected.labels("coinbase").set(1)
    server = MetricsServer(0, registry=registry, host="127.0.0.1").start()
    yield connected, server.port
    server.stop()


class _Process:
    """A child process with its output in a log file, stopped on exit."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _firing(prometheus: PrometheusServer) -> list[dict[str, Any]]:
    answer = requests.get(f"{prometheus.url}/api/v1/alerts", timeout=5).json()
    return [a for a in answer["data"]["alerts"] if a["state"] == "firing"]


def test_feed_down_reaches_discord_through_alertmanager(
    tmp_path: Path, alertmanager_binary: str, feed: tuple[Gauge, int],
) -> None:
    connected, feed_port = feed
    prometheus_binary = require_binary("prometheus")
    var = tmp_path  # arb start's var/: prometheus.yml and the Alertmanager files side by side
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [
        {"name": "feed", "rules": [{**_alert("FeedDown"), "for": "2s"}]},
    ]}))
    am_port = free_port()
    with DiscordStandIn() as discord:
        env = {"DISCORD_WEBHOOK_URL": discord.url, "ARB_ALERTMANAGER_PORT": str(am_port),
               "ARB_RUNBOOK_URL": RUNBOOK_URL, "BIND_ADDRESS": "127.0.0.1"}
        argv = local_alertmanager(env, var, timings=FAST)
        assert argv is not None
        assert (var / TARGETS_FILE).is_file()
        alertmanager = _Process(argv, tmp_path / "alertmanager.log")
        try:
            wait_until(lambda: _ready(f"http://127.0.0.1:{am_port}/-/ready"), 20,
                       "alertmanager ready")
            config = retarget_config(PROMETHEUS_CONFIGS[0],
                                     {"producer": [f"127.0.0.1:{feed_port}"]})
            assert config["alerting"], "prometheus.yml sends its alerts nowhere"
            config["rule_files"] = [str(rules)]
            with PrometheusServer(prometheus_binary, var, config) as prometheus:
                wait_until(lambda: _up(prometheus), 20, "the feed scraped")
                time.sleep(2)  # evaluated while connected: nothing fires
                assert not _firing(prometheus)
                assert discord.received == []

                connected.labels("coinbase").set(0)  # the feed stops
                (payload,) = discord.wait_for(1, timeout_s=30)
        finally:
            alertmanager.stop()

    (request,) = discord.requests
    assert request.path == WEBHOOK_PATH
    (embed,) = payload["embeds"]
    assert embed["title"] == "[FIRING] FeedDown (critical)"
    assert "**coinbase WebSocket feed is disconnected**" in embed["description"]
    assert f"Runbook: {RUNBOOK_URL}#feeddown" in embed["description"]
    assert "stand-in-secret-token" not in alertmanager.log(), "the webhook reached a log"


def _ready(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def _up(prometheus: PrometheusServer) -> bool:
    result = prometheus.query('up{job="producer"}').get("data", {}).get("result", [])
    return bool(result) and result[0]["value"][1] == "1"
