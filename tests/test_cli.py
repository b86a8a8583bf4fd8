"""``arb start`` as a user runs it (replay, demo threshold): alerts reach the history within a
minute, Ctrl-C stops every child, and one child dying stops the rest."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, start_env

pytestmark = pytest.mark.integration


def children_of(marker: str) -> list[int]:
    """Processes whose environment carries ``marker`` (every child of one test's launcher)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def alert_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
    except sqlite3.Error:
        return 0


def start_stack(tmp_path: Path, fixtures_dir: Path, log: Path,
                log_format: str = "console") -> tuple[subprocess.Popen, Path]:
    """``arb start --replay`` as on a terminal (console lines), or as under a log collector."""
    db = tmp_path / "alerts.db"
    env = start_env(tmp_path)
    env.update({"DEMO_MODE": "TRUE", "ARB_FIXTURES_DIR": str(fixtures_dir),
                "LOG_FORMAT": log_format})
    out = open(log, "wb")  # noqa: SIM115 - closed with the process below
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "start", "--replay", "--no-prometheus"],
        cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
    )
    return proc, db


def stop_stack(proc: subprocess.Popen, marker: str) -> None:
    """After a failure too: Ctrl-C as a user would, then kill what is left of this test's
    processes (the services run in their own process groups, so killing ``arb`` alone would
    leave them running)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
    for pid in children_of(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_for_alerts(proc: subprocess.Popen, db: Path, log: Path, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        assert proc.poll() is None, log.read_text()[-3000:]
        if alert_count(db) > 0:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"no alert within {timeout_s} s:\n{log.read_text()[-3000:]}")


def test_start_shows_alerts_and_ctrl_c_stops_everything(tmp_path: Path, fixtures_dir: Path,
                                                        output_dir: Path) -> None:
    log = output_dir / "arb-start.log"
    proc, db = start_stack(tmp_path, fixtures_dir, log)
    try:
        took_s = wait_for_alerts(proc, db, log, timeout_s=60)
        assert took_s < 60
        assert len(children_of(str(tmp_path))) >= 4  # flink, alerter, dashboard, producer
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=40) == 0
        deadline = time.monotonic() + 10
        while children_of(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert children_of(str(tmp_path)) == []
    finally:
        stop_stack(proc, str(tmp_path))
    text = log.read_text()
    for name in ("flink", "alerter", "dashboard", "producer"):
        assert f"{name:<10}|" in text, f"no prefixed output from {name}"
    assert "Traceback" not in text
    # Console lines only: no child's JSON, no librdkafka's raw lines.
    foreign = [line for line in text.splitlines()
               if line.partition("| ")[2].startswith(("{", "%")) or line.startswith("{")]
    assert foreign == []


def test_start_in_json_mode_prints_only_json(tmp_path: Path, fixtures_dir: Path,
                                             output_dir: Path) -> None:
    """What a log collector reads: one JSON object per line, from every piece, unprefixed."""
    log = output_dir / "arb-start.log"
    proc, db = start_stack(tmp_path, fixtures_dir, log, log_format="json")
    try:
        wait_for_alerts(proc, db, log, timeout_s=60)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=40) == 0
    finally:
        stop_stack(proc, str(tmp_path))
    services = set()
    for line in log.read_text().splitlines():
        if line.strip():
            record = json.loads(line)  # fails on the first line that is not JSON
            assert isinstance(record, dict), line
            services.add(record.get("service"))
    assert {"arb", "flink-job", "alerter", "dashboard", "producer"} <= services


def test_a_dying_child_stops_the_rest(tmp_path: Path, fixtures_dir: Path,
                                      output_dir: Path) -> None:
    log = output_dir / "arb-start.log"
    proc, _ = start_stack(tmp_path, fixtures_dir, log)
    try:
        deadline = time.monotonic() + 60
        alerter = []
        while not alerter and time.monotonic() < deadline:
            alerter = [pid for pid in children_of(str(tmp_path))
                       if b"services.alerter" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            time.sleep(0.2)
        assert alerter, "alerter never started"
        os.kill(alerter[0], signal.SIGKILL)
        assert proc.wait(timeout=40) == 1
        deadline = time.monotonic() + 10
        while children_of(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert children_of(str(tmp_path)) == []
    finally:
        stop_stack(proc, str(tmp_path))
    assert "alerter exited with code -9; stopping everything" in log.read_text()
