"""One log stream: every line a process writes is structlog's, whichever library it comes from
(librdkafka, the standard library's loggers, Streamlit, warnings, uncaught exceptions), as JSON
or as console lines by LOG_FORMAT, at LOG_LEVEL."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.broker import LocalBroker, free_port
from services.common.config import KafkaSettings
from services.common.kafka import end_offsets
from tests.helpers import REPO
from tests.support.waiting import wait_until


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ARB_", "KAFKA_", "DISCORD_", "DEMO_", "LOG_"))}
    return {**env, **extra}


def python(code: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=clean_env(**env),
                          capture_output=True, text=True, timeout=60, check=False)


def records(text: str) -> list[dict]:
    """Every non-blank line as a JSON object; fails naming the first line that is not one."""
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        assert isinstance(record, dict), f"not a JSON object: {line!r}"
        found.append(record)
    return found


EVERY_SOURCE = """
import logging, threading, warnings
import structlog
from services.common.logging import configure_logging
configure_logging("demo")
structlog.get_logger("demo").info("own_event", answer=42)
logging.getLogger("websockets.client").info("a library at info")
logging.getLogger("urllib3.connectionpool").warning("a library at warning")
warnings.warn("a warning")
threading.Thread(target=lambda: 1 / 0, name="worker").start()
raise RuntimeError("nobody caught this")
"""


def test_every_source_is_one_json_stream() -> None:
    result = python(EVERY_SOURCE)

    lines = records(result.stderr)
    by_event = {r["event"]: r for r in lines}
    assert by_event["own_event"]["answer"] == 42
    assert by_event["a library at info"]["logger"] == "websockets.client"
    assert by_event["a library at warning"]["level"] == "warning"
    assert any(r["logger"] == "py.warnings" and "a warning" in r["event"] for r in lines)
    uncaught = [r for r in lines if r["event"] == "uncaught_exception"]
    assert {r.get("thread") for r in uncaught} == {"worker", None}
    assert "RuntimeError: nobody caught this" in uncaught[-1]["exception"]
    assert {r["service"] for r in lines} == {"demo"}


def test_log_level_applies_to_libraries_too() -> None:
    result = python(EVERY_SOURCE, LOG_LEVEL="warning")

    events = [r["event"] for r in records(result.stderr)]
    assert "own_event" not in events
    assert "a library at info" not in events
    assert "a library at warning" in events


def test_an_invalid_log_setting_exits_2_naming_it() -> None:
    result = python("from services.common.logging import configure_logging\n"
                    "configure_logging('demo')", LOG_LEVEL="loud")

    assert result.returncode == 2
    assert "LOG_LEVEL='loud' is invalid" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_format_is_readable_lines() -> None:
    result = python(EVERY_SOURCE, LOG_FORMAT="console")

    assert result.stderr.strip()
    assert not [line for line in result.stderr.splitlines() if line.startswith("{")]
    assert "own_event" in result.stderr
    assert "answer=42" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("rich") is not None,
                    reason="rich is installed: structlog formats tracebacks with it")
def test_auto_format_on_a_terminal_hands_tracebacks_to_the_pretty_formatter(
        tmp_path: Path) -> None:
    """On a terminal the renderer gets the exception itself, so rich or better-exceptions (a
    stand-in here) format it; pre-formatted text would bypass them."""
    (tmp_path / "better_exceptions.py").write_text(
        "def format_exception(*exc_info):\n    return ['PRETTY TRACEBACK\\n']\n")
    code = ("import structlog\n"
            "from services.common.logging import configure_logging\n"
            "configure_logging('demo')\n"
            "try:\n    1 / 0\n"
            "except ZeroDivisionError:\n    structlog.get_logger().exception('failed')\n")
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, stderr=terminal, stdout=subprocess.DEVNULL,
            env=clean_env(PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}"), timeout=60, check=False,
        )
        os.close(terminal)
        output = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
    text = output.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    assert "failed" in text and not text.lstrip().startswith("{")
    assert "PRETTY TRACEBACK" in text


def test_librdkafka_logs_through_the_logger_hook() -> None:
    """In process: a producer aimed at nothing logs its connection failures as records of the
    ``librdkafka`` logger, not as ``%3|...`` lines on stderr."""
    from services.common.kafka import make_producer

    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    logging.getLogger("librdkafka").addHandler(keep)
    try:
        producer = make_producer(f"127.0.0.1:{free_port()}")
        producer.produce("nowhere", b"x")
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            producer.poll(0.2)
        producer.purge()
        producer.flush(1)
    finally:
        logging.getLogger("librdkafka").removeHandler(keep)
    assert seen, "librdkafka logged nothing through the hook"
    assert any("Connection refused" in r.getMessage() or "FAIL" in r.getMessage() for r in seen)


# --- services against a broker that goes away ------------------------------------------------


def wait_for_line(log: Path, wanted: str, timeout_s: float) -> None:
    wait_until(lambda: log.exists() and wanted in log.read_text(errors="replace"), timeout_s,
               f"{wanted!r} in {log.name}")


def run_alerter(broker: LocalBroker, tmp_path: Path, stderr: Path) -> subprocess.Popen[bytes]:
    env = clean_env(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
                    ARB_HISTORY_DB=str(tmp_path / "alerts.db"), ARB_ALERTER_METRICS_PORT="0")
    with open(stderr, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "services.alerter"], cwd=tmp_path,
                                env=env, stdout=subprocess.DEVNULL, stderr=err)
    wait_for_line(stderr, '"partitions_assigned"', 60)
    return proc


def run_producer(broker: LocalBroker, tmp_path: Path, stderr: Path,
                 fixtures_dir: Path) -> subprocess.Popen[bytes]:
    env = clean_env(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
                    ARB_PRODUCER_METRICS_PORT="0", ARB_FIXTURES_DIR=str(fixtures_dir))
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.producer", "replay", "--speed", "5", "--loop"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err)
    topic = KafkaSettings().prices_topic
    wait_until(lambda: sum(end_offsets(broker.bootstrap_servers, topic).values()) > 100, 60,
               "the replay publishing")
    return proc


@pytest.mark.integration
@pytest.mark.parametrize("service", ["alerter", "producer"])
def test_every_stderr_line_is_json_while_the_broker_goes_away(
        service: str, tmp_path: Path, fixtures_dir: Path, output_dir: Path) -> None:
    stderr = output_dir / f"{service}.stderr"
    broker = LocalBroker(port=free_port(), topics=KafkaSettings().topics).start()
    try:
        if service == "alerter":
            proc = run_alerter(broker, tmp_path, stderr)
        else:
            proc = run_producer(broker, tmp_path, stderr, fixtures_dir)
    finally:
        broker.stop()
    try:
        # librdkafka's own "Connection refused" lines, and the service's graded warning.
        # (librdkafka may first report the broker's last connection closing: wait for both.)
        wait_for_line(stderr, '"logger": "librdkafka"', 30)
        wait_for_line(stderr, "Connection refused", 30)
        wait_for_line(stderr, '"kafka_broker_unreachable"', 30)
        assert proc.poll() is None, stderr.read_text()[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    lines = records(stderr.read_text())
    assert {r.get("service") for r in lines} == {service}
    librdkafka = [r for r in lines if r["logger"] == "librdkafka"]
    assert any("Connection refused" in r["event"] for r in librdkafka), librdkafka[:3]


@pytest.mark.integration
def test_the_dashboard_writes_only_json_streamlit_included(tmp_path: Path,
                                                          output_dir: Path) -> None:
    """Streamlit's loggers, its banner and uvicorn's logs are records like the rest."""
    stderr = output_dir / "dashboard.log"
    env = clean_env(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
                    ARB_DASHBOARD_PORT=str(free_port()), ARB_DASHBOARD_METRICS_PORT="0",
                    ARB_HISTORY_DB=str(tmp_path / "alerts.db"), HOME=str(tmp_path))
    with open(stderr, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.dashboard"], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_line(stderr, "You can now view your Streamlit app", 60)
        wait_for_line(stderr, '"dashboard_kafka_unavailable"', 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    lines = records(stderr.read_text())
    loggers = {r["logger"] for r in lines}
    assert {"streamlit", "services.dashboard"} <= loggers
    assert any(name.startswith(("uvicorn", "streamlit.web")) for name in loggers)
    assert {r["service"] for r in lines} == {"dashboard"}
