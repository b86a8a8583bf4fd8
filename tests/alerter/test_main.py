"""``python -m services.alerter`` as a real child process against Tansu and a Discord stand-in:
metrics and clean shutdown, a malformed webhook URL, and SIGKILL in the middle of a batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import TracebackType

import pytest

from services.common.broker import free_port
from services.common.history import DELIVERED, NO_WEBHOOK, PENDING, read_counts, read_recent
from services.common.messages import Spread, to_json
from tests.alerter.conftest import Topics
from tests.support.alerts import WINDOW_END_MS, make_spread
from tests.support.discord_standin import WEBHOOK_PATH, DiscordStandIn, Reply
from tests.support.waiting import http_body, http_status, wait_until

#: The token part of the stand-in URL: it must never reach a log.
TOKEN = WEBHOOK_PATH.rsplit("/", 1)[-1]


def alerter_env(topics: Topics, tmp_path: Path, unique: str, webhook_url: str | None,
                **extra: str) -> dict[str, str]:
    """The child's environment: this test's topics and store, nothing inherited from ARB_*."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ARB_", "DISCORD_", "DEMO_", "KAFKA_"))}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": topics.broker.bootstrap_servers,
        "ARB_ALERTS_TOPIC": topics.kafka.alerts_topic,
        "ARB_SPREADS_TOPIC": topics.kafka.spreads_topic,
        "ARB_HISTORY_DB": str(tmp_path / "alerts.db"),
        "ARB_ALERTER_GROUP_ID": f"alerter-{unique}",
        "ARB_ALERTER_METRICS_PORT": "0",
        "ARB_DISCORD_MESSAGES": "alerts",  # these tests are about alert windows
    })
    if webhook_url is not None:
        env["DISCORD_WEBHOOK_URL"] = webhook_url
    env.update(extra)
    return env


class AlerterProcess:
    """One run of the entry point; its output is appended to ``log_file``."""

    def __init__(self, env: dict[str, str], log_file: Path, cwd: Path) -> None:
        with open(log_file, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.alerter"], cwd=cwd, env=env,
                stdout=out, stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, no offset is committed on the way out."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout_s: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def __enter__(self) -> AlerterProcess:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.mark.integration
def test_module_entry_point_serves_metrics_and_stops_on_sigterm(
    topics: Topics, discord: DiscordStandIn, tmp_path: Path, unique: str,
) -> None:
    port = free_port()
    env = alerter_env(topics, tmp_path, unique, discord.url,
                      ARB_ALERTER_METRICS_PORT=str(port))
    topics.produce(topics.kafka.alerts_topic, [to_json(make_spread())])
    log_file = tmp_path / "alerter.log"

    with AlerterProcess(env, log_file, tmp_path) as alerter:
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/healthz") == 200, 30, "ready")
        discord.wait_for(1, timeout_s=30)
        wait_until(lambda: b"arb_alerts_sent_total{channel=\"discord\"} 1.0"
                   in http_body(f"http://127.0.0.1:{port}/metrics"), 30, "sent metric")
        assert alerter.terminate() == 0

    log_text = log_file.read_text()
    assert "alerter_stopped" in log_text
    assert TOKEN not in log_text
    assert read_recent(tmp_path / "alerts.db")[0].status == DELIVERED


@pytest.mark.integration
def test_malformed_webhook_url_is_a_clear_error_and_history_is_still_recorded(
    topics: Topics, tmp_path: Path, unique: str,
) -> None:
    malformed = f"discord.com/api/webhooks/123/{TOKEN}"  # no scheme
    port = free_port()
    env = alerter_env(topics, tmp_path, unique, malformed, ARB_ALERTER_METRICS_PORT=str(port))
    alerts = [make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(3)]
    topics.produce(topics.kafka.alerts_topic, [to_json(a) for a in alerts])
    log_file = tmp_path / "alerter.log"

    with AlerterProcess(env, log_file, tmp_path) as alerter:
        wait_until(lambda: read_counts(tmp_path / "alerts.db")[NO_WEBHOOK] == len(alerts), 30,
                   "history recorded")
        assert http_status(f"http://127.0.0.1:{port}/healthz") == 200
        assert alerter.terminate() == 0

    events = [json.loads(line) for line in log_file.read_text().splitlines()
              if line.startswith("{")]
    errors = [e for e in events if e["level"] == "error"]
    assert [e["event"] for e in errors] == ["discord_webhook_invalid"]
    assert "DISCORD_WEBHOOK_URL is invalid" in errors[0]["message"]
    assert TOKEN not in log_file.read_text()
    assert "123" not in errors[0]["message"]


def test_invalid_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "DISCORD_"))}
    env["ARB_ALERT_COOLDOWN_SECONDS"] = "-5"

    proc = subprocess.run([sys.executable, "-m", "services.alerter"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)

    assert proc.returncode == 2
    assert "ARB_ALERT_COOLDOWN_SECONDS" in proc.stderr


def batch() -> list[Spread]:
    """Two symbols, both directions, six windows: 24 alerts with distinct ids."""
    alerts = []
    for window in range(6):
        for symbol, ask, bid in (("BTC-USD", 67_000.0, 67_090.0), ("ETH-USD", 3500.0, 3504.5)):
            for buy, sell in (("coinbase", "binance"), ("binance", "coinbase")):
                alerts.append(make_spread(
                    symbol=symbol, window_end_ms=WINDOW_END_MS + window * 1000,
                    buy_exchange=buy, sell_exchange=sell, buy_ask=ask, sell_bid=bid + window,
                ))
    return alerts


@pytest.mark.integration
@pytest.mark.faults  # a kill and restart, half a minute: make test-faults
def test_sigkill_mid_batch_and_restart_deliver_every_alert_exactly_once(
    topics: Topics, discord: DiscordStandIn, tmp_path: Path, unique: str, output_dir: Path,
) -> None:
    alerts = batch()
    # A redelivered record (same id) and a broken one ride along, as they do on a real topic.
    records = [to_json(a) for a in alerts]
    records.insert(3, b"not json")
    records.insert(9, to_json(alerts[1]))
    records.insert(17, to_json(alerts[12]))
    topic = topics.kafka.alerts_topic
    topics.produce(topic, records)
    # Requests in arrival order. The first kill lands while a request hangs (the client's
    # 0.5 s timeout has not fired yet); the second while the alerter sits out a 60 s 429.
    first_run = [
        Reply(204),
        Reply.rate_limited(0.3), Reply(204),
        Reply(500), Reply(204),
        Reply.hang(1.0), Reply(204),
        Reply(204),
        Reply.hang(5.0),  # kill 1
    ]
    second_run = [
        Reply(502), Reply(204),
        Reply.rate_limited(0.2, in_body=False), Reply(204),
        Reply(204),
        Reply.rate_limited(60),  # kill 2
    ]
    third_run = [Reply(503), Reply.hang(1.0), Reply(204)]
    discord.script(*first_run, *second_run, *third_run)
    env = alerter_env(topics, tmp_path, unique, discord.url,
                      ARB_DISCORD_TIMEOUT_SECONDS="0.5", ARB_ALERT_COOLDOWN_SECONDS="0")
    log_file = output_dir / "alerter.log"
    log_file.unlink(missing_ok=True)
    db = tmp_path / "alerts.db"
    timings: dict[str, float] = {}

    def accepted_before_kill(run: list[Reply]) -> int:
        return sum(1 for r in run if r.status == 204)

    # Run 1: killed while a request is in flight.
    with AlerterProcess(env, log_file, tmp_path) as alerter:
        discord.wait_for(len(first_run), timeout_s=60)
        alerter.kill()
    delivered_1 = accepted_before_kill(first_run)
    assert discord.accepted_alert_ids == [a.id for a in alerts[:delivered_1]]
    assert read_counts(db)[DELIVERED] == delivered_1
    assert read_counts(db)[PENDING] == 1  # stored, in flight, not committed
    assert topics.committed_offset(env["ARB_ALERTER_GROUP_ID"], topic) < len(records)

    # Run 2: resumes from the committed offset; killed during a long Retry-After.
    restarted = time.monotonic()
    with AlerterProcess(env, log_file, tmp_path) as alerter:
        discord.wait_for(len(first_run) + 1, timeout_s=60)
        timings["restart_to_first_post_s"] = time.monotonic() - restarted
        discord.wait_for(len(first_run) + len(second_run), timeout_s=60)
        alerter.kill()
    delivered_2 = delivered_1 + accepted_before_kill(second_run)
    assert discord.accepted_alert_ids == [a.id for a in alerts[:delivered_2]]

    # Run 3: finishes the batch and stops cleanly.
    restarted = time.monotonic()
    with AlerterProcess(env, log_file, tmp_path) as alerter:
        wait_until(lambda: read_counts(db)[DELIVERED] == len(alerts), 90, "all delivered")
        wait_until(lambda: topics.committed_offset(env["ARB_ALERTER_GROUP_ID"], topic)
                   == len(records), 30, "every offset committed")
        timings["restart_to_batch_done_s"] = time.monotonic() - restarted
        time.sleep(0.5)  # nothing more may arrive
        assert alerter.terminate() == 0

    # Exactly once on the server, once in the store, in topic order.
    assert Counter(discord.accepted_alert_ids) == Counter(a.id for a in alerts)
    assert discord.accepted_alert_ids == [a.id for a in alerts]
    stored = read_recent(db, limit=1000)
    assert sorted(a.id for a in stored) == sorted(a.id for a in alerts)
    assert {a.status for a in stored} == {DELIVERED}
    statuses = Counter(discord.statuses)
    assert statuses[429] == 3 and statuses[504] == 3 and statuses[500] + statuses[502] == 2
    log_text = log_file.read_text()
    assert TOKEN not in log_text
    for reason in ("rate_limited", "server_error", "timeout"):
        assert f'"reason": "{reason}"' in log_text, reason
    timings["requests"] = len(discord.statuses)
    (output_dir / "timings.json").write_text(json.dumps(timings, indent=2))
