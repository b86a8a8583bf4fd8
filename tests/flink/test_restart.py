"""The job crashes mid-stream and restarts from its last checkpoint: no alert is lost, and the
alerts it emits again are suppressed by the alerter's id dedup (delivered exactly once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from services.common.config import DetectionSettings
from services.common.kafka import ensure_topics
from services.common.messages import parse_spread, to_json
from services.common.reference import detect
from services.producer.replay import build_replay
from tests.flink.scenarios import T0, quote
from tests.helpers import REPO, flink_env, produce_raw, read_topic
from tests.support.discord_standin import DiscordStandIn

pytestmark = [pytest.mark.integration, pytest.mark.faults]  # minutes: make test-faults


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_restart_from_checkpoint_loses_nothing_and_delivers_once(
    broker, unique: str, output_dir: Path, fixtures_dir: Path, tmp_path: Path,
) -> None:
    topics = {k: f"{k}-{unique}" for k in ("prices", "spreads", "alerts")}
    ensure_topics(broker.bootstrap_servers, topics.values(), partitions=1)
    records = [to_json(r) for r in build_replay(fixtures_dir, start_ms=T0)]
    last_ts = json.loads(records[-1])["ts_ms"] - T0
    records.append(quote("coinbase", "ZZZ-USD", 1.0, 1.1, last_ts + 5000))  # closes the windows
    part1, part2 = records[: len(records) * 3 // 5], records[len(records) * 3 // 5:]
    checkpoints = tmp_path / "checkpoints"
    env = flink_env(broker.bootstrap_servers, topics, DEMO_MODE="TRUE",
                    ARB_CHECKPOINT_INTERVAL_MS="10000", ARB_CHECKPOINT_DIR=str(checkpoints))
    expected = detect(records, DetectionSettings.from_env({"DEMO_MODE": "TRUE"})).alerts
    expected_ids = {a.id for a in expected}
    assert len(expected_ids) > 20

    def alert_ids() -> list[str]:
        return [parse_spread(v).id for v, _ in
                read_topic(broker.bootstrap_servers, topics["alerts"])]

    with DiscordStandIn() as discord:
        alerter_env = {**env, "DISCORD_WEBHOOK_URL": discord.url,
                       "ARB_HISTORY_DB": str(tmp_path / "alerts.db"),
                       "ARB_ALERTER_GROUP_ID": f"alerter-{unique}", "ARB_ALERTER_METRICS_PORT": "0",
                       # Every window alerts here: test the id dedup, not the cooldown.
                       "ARB_ALERT_COOLDOWN_SECONDS": "0", "ARB_DISCORD_MESSAGES": "alerts"}
        alerter = start([sys.executable, "-m", "services.alerter"], alerter_env,
                        output_dir / "alerter.log")
        job = start([sys.executable, "-m", "flink.job"], env, output_dir / "flink-1.log")
        try:
            # A checkpoint taken before any data, then part 1, then a crash before the next
            # checkpoint: the restart must replay part 1 and emit its alerts a second time.
            wait_until(lambda: len(list(checkpoints.glob("*/chk-*/_metadata"))) > 0, 90,
                       "a completed checkpoint")
            produce_raw(broker.bootstrap_servers, topics["prices"], part1)
            wait_until(lambda: len(alert_ids()) > 5, 60, "first alerts")
            first = set(alert_ids())
            os.killpg(job.pid, signal.SIGKILL)  # a crash: no cancel, no final checkpoint
            job.wait(30)
            assert len(list(checkpoints.glob("*/chk-*/_metadata"))) == 1

            produce_raw(broker.bootstrap_servers, topics["prices"], part2)
            job = start([sys.executable, "-m", "flink.job"], env, output_dir / "flink-2.log")
            wait_until(lambda: expected_ids <= set(alert_ids()), 150, "every expected alert")
            posted = discord.wait_for(len(expected_ids), timeout_s=60)
            time.sleep(2)  # any duplicate delivery would arrive now
            posted = discord.received
        finally:
            for proc in (job, alerter):
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(30)

    restored = (output_dir / "flink-2.log").read_text()
    assert "flink_job_restoring" in restored, "the second run did not restore a checkpoint"
    emitted = Counter(alert_ids())
    assert set(emitted) == expected_ids  # nothing lost, nothing invented
    assert first < expected_ids  # the crash really came mid-stream
    assert len(posted) == len(expected_ids)  # every alert delivered exactly once
    duplicates = sum(n - 1 for n in emitted.values())
    assert duplicates >= len(first)  # replayed after the restore, and not delivered twice
    print(f"alerts: {len(expected_ids)}, emitted again after restore: {duplicates}")
