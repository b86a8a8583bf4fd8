"""The whole pipeline under faults: a real broker (Tansu), the Flink job (checkpoints in a tmp
dir), the alerter (SQLite history) posting to the Discord stand-in, and a producer publishing a
fixed, finite input paced in event time, so the plain-Python reference knows exactly which
messages must reach Discord. Faults are injected while that input flows.

A run ends in a :class:`RunResult`: what Discord accepted as a Counter of message keys (the
embed footers: ``alert <id>``, ``episode <id> opened``, ``episode <id> closed``), what the
reference expects for the same input, and the lost / doubled / unexpected keys between them.

The producer is the project's own :class:`KafkaPublisher` (``block=True``, as a replay runs it,
with librdkafka's stated message timeout) in a child process (``python -m tests.faults.harness
publish ...``), so a paused or restarted broker meets the real retry and timeout behaviour.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from services.common.broker import LocalBroker, free_port
from services.common.config import DetectionSettings
from services.common.episodes import episode_records
from services.common.kafka import end_offsets, ensure_topics
from services.common.messages import Quote, parse_price_record, to_json
from services.common.reference import detect
from services.common.ticks import evaluate_ticks
from services.producer.replay import Shock, build_replay
from tests.helpers import REPO, flink_env, read_topic
from tests.support.discord_standin import DiscordStandIn
from tests.support.waiting import http_body, http_status

#: Event-time origin of every run (a window boundary): runs of the same input are identical.
T0_MS = 1_700_000_000_000
#: Four 2 s shocks, one every ~10 s of the 45 s replay, each well over the $50 default: every
#: phase of a fault (before, during, after) has opportunities to lose or double.
SHOCKS = ("binance:BTC-USD:+300@5:2", "coinbase:BTC-USD:-250@15:2",
          "binance:BTC-USD:+300@25:2", "coinbase:BTC-USD:-250@35:2")
#: After the input, one quote this much later in event time: the watermark then passes every
#: window and every episode's gap, so each of them fires, as at the end of a bounded run.
CLOSER_AFTER_MS = 10_000
#: The detection settings the job runs with (the defaults, no cooldown), also the reference's.
SETTINGS_ENV = {"ARB_ALERT_COOLDOWN_SECONDS": "0", "ARB_DISCORD_MESSAGES": "both"}
CHECKPOINT_INTERVAL_MS = 2000


def scenario_records(fixtures_dir: Path, shocks: Sequence[str] = SHOCKS) -> list[bytes]:
    """The fixed input: the aligned replay of the recordings (about 4,700 records over 45 s of
    event time) with the shocks, then the closing quote; serialised as the producer sends it."""
    records = build_replay(fixtures_dir, start_ms=T0_MS, shocks=[Shock.parse(s) for s in shocks])
    last_ts_ms = records[-1].ts_ms + CLOSER_AFTER_MS
    closer = Quote(exchange="coinbase", symbol="ZZZ-USD", venue_symbol="ZZZUSD", bid=1.0,
                   bid_size=1.0, ask=1.1, ask_size=1.0, quote_ccy="USD", fx_to_usd=1.0,
                   ts_ms=last_ts_ms, recv_ts_ms=last_ts_ms, exchange_ts_ms=None, refresh=False)
    return [to_json(r) for r in [*records, closer]]


def detection_settings() -> DetectionSettings:
    return DetectionSettings.from_env(SETTINGS_ENV)


def expected_messages(raw_records: Iterable[bytes], settings: DetectionSettings,
                      ) -> Counter[str]:
    """What Discord must show for this input, one key per message: every alert window and the
    opening and closing message of every episode (ARB_DISCORD_MESSAGES=both, no cooldown)."""
    records = list(raw_records)
    keys: Counter[str] = Counter(f"alert {a.id}" for a in detect(records, settings).alerts)
    for episode in episode_records(evaluate_ticks(records, settings), settings):
        keys[f"episode {episode.id} {'opened' if episode.is_open else 'closed'}"] += 1
    return keys


def footer(payload: Any) -> str:
    try:
        return str(payload["embeds"][0]["footer"]["text"])
    except (KeyError, IndexError, TypeError):
        return f"<no footer: {str(payload)[:80]}>"


@dataclass
class RunResult:
    """Discord's messages against the reference's, key by key."""

    received: Counter[str]
    expected: Counter[str]
    producer: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> set[str]:
        return set(self.expected) - set(self.received)

    @property
    def doubled(self) -> set[str]:
        return {k for k, n in self.received.items() if n > 1}

    @property
    def unexpected(self) -> set[str]:
        return set(self.received) - set(self.expected)

    def summary(self) -> str:
        return (f"expected {sum(self.expected.values())} messages, received "
                f"{sum(self.received.values())}: lost {len(self.lost)}, doubled "
                f"{len(self.doubled)}, unexpected {len(self.unexpected)}; producer "
                f"{ {k: v for k, v in self.producer.items() if k != 'metrics'} }")


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child in its own process group, so a kill reaches the JVM Flink starts too."""
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM,
          timeout_s: float = 30) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


def wait_for(check: Any, timeout_s: float, what: str, every_s: float = 0.3) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class FaultStack:
    """Broker, Flink job, alerter and Discord stand-in for one run; a context manager that
    stops whatever is still running. Faults are its methods; the test calls them while the
    producer publishes."""

    def __init__(self, work_dir: Path, log_dir: Path, records: Sequence[bytes], *,
                 speed: float = 1.0, checkpoint_interval_ms: int = CHECKPOINT_INTERVAL_MS,
                 ) -> None:
        self.work_dir = work_dir
        self.log_dir = log_dir
        self.records = list(records)
        self.speed = speed
        self.checkpoints = work_dir / "checkpoints"
        self.topics = {k: f"{k}-faults" for k in ("prices", "spreads", "alerts", "episodes")}
        self.port = free_port()
        self.broker: LocalBroker | None = None
        self.discord = DiscordStandIn()
        self.flink_runs = 0
        self.flink: subprocess.Popen[bytes] | None = None
        self.alerter: subprocess.Popen[bytes] | None = None
        self.producer: subprocess.Popen[bytes] | None = None
        self.alerter_metrics_port = free_port()
        self.flink_metrics_port = free_port()
        self.flink_wrapper_port = free_port()
        self.input_file = work_dir / "input.jsonl"
        self.summary_file = work_dir / "producer-summary.json"
        self.env = flink_env(
            f"127.0.0.1:{self.port}", self.topics, **SETTINGS_ENV,
            ARB_CHECKPOINT_INTERVAL_MS=str(checkpoint_interval_ms),
            ARB_CHECKPOINT_DIR=str(self.checkpoints),
            ARB_HISTORY_DB=str(work_dir / "alerts.db"), ARB_ALERTER_GROUP_ID="alerter-faults",
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> FaultStack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Everything but the producer, each up and ready: the alerter in its group, the job
        running with one checkpoint done."""
        self.start_broker()
        self.discord.start()
        self.env["DISCORD_WEBHOOK_URL"] = self.discord.url
        self.alerter = _start(
            [sys.executable, "-m", "services.alerter"],
            {**self.env, "ARB_ALERTER_METRICS_PORT": str(self.alerter_metrics_port)},
            self.log_dir / "alerter.log")
        self.start_flink()
        wait_for(lambda: http_status(f"http://127.0.0.1:{self.alerter_metrics_port}/healthz")
                 == 200, 60, "the alerter to join its group")
        self.wait_checkpoint(1, 120)

    def close(self) -> None:
        for proc in (self.producer, self.flink, self.alerter):
            _stop(proc)
        self.discord.stop()
        if self.broker is not None:
            self.broker.stop()

    def start_broker(self) -> None:
        self.broker = LocalBroker(port=self.port, topics=self.topics.values(),
                                  log_file=self.log_dir / "broker.log").start()
        ensure_topics(self.broker.bootstrap_servers, self.topics.values(), partitions=1)

    def start_flink(self) -> None:
        self.flink_runs += 1
        self.flink = _start(
            [sys.executable, "-m", "flink.job"],
            {**self.env, "ARB_FLINK_METRICS_PORT": str(self.flink_metrics_port),
             "ARB_FLINK_WRAPPER_METRICS_PORT": str(self.flink_wrapper_port)},
            self.log_dir / f"flink-{self.flink_runs}.log")

    def flink_log(self, run: int) -> str:
        return (self.log_dir / f"flink-{run}.log").read_text(errors="replace")

    def newest_checkpoint(self) -> tuple[int, Path | None]:
        """(number, folder) of the newest completed checkpoint, (0, None) before any. Flink
        keeps only the newest, so the number, not a count of folders, says how many were
        taken."""
        done = [(int(meta.parent.name.removeprefix("chk-")), meta.parent)
                for meta in self.checkpoints.glob("*/chk-*/_metadata")]
        return max(done, default=(0, None), key=lambda d: d[0])  # a restore numbers on

    def wait_checkpoint(self, number: int, timeout_s: float) -> Path:
        """Wait for checkpoint ``number`` (or a later one) of the running job to complete."""
        def done() -> bool:
            if self.flink is not None and self.flink.poll() is not None:
                tail = self.flink_log(self.flink_runs)[-3000:]
                raise AssertionError(f"the Flink job exited {self.flink.returncode}:\n{tail}")
            return self.newest_checkpoint()[0] >= number
        wait_for(done, timeout_s, f"checkpoint {number}")
        found = self.newest_checkpoint()[1]
        assert found is not None
        return found

    # -- the producer --------------------------------------------------------------------------
    def start_producer(self) -> None:
        self.input_file.write_bytes(b"\n".join(self.records) + b"\n")
        self.summary_file.unlink(missing_ok=True)
        self.producer = _start(
            [sys.executable, "-m", "tests.faults.harness", "publish", str(self.input_file),
             "--bootstrap", f"127.0.0.1:{self.port}", "--topic", self.topics["prices"],
             "--speed", str(self.speed), "--summary", str(self.summary_file)],
            self.env, self.log_dir / "producer.log")
        self.producer_started_s = time.monotonic()

    def wait_input_s(self, event_s: float) -> None:
        """Sleep until the producer is ``event_s`` seconds of event time into the input."""
        due = self.producer_started_s + 1.0 + event_s / self.speed
        time.sleep(max(0.0, due - time.monotonic()))

    def wait_producer(self, timeout_s: float = 240) -> dict[str, Any]:
        assert self.producer is not None
        self.producer.wait(timeout_s)
        assert self.summary_file.exists(), (self.log_dir / "producer.log").read_text()[-3000:]
        return json.loads(self.summary_file.read_text())

    # -- faults --------------------------------------------------------------------------------
    def pause_broker(self, seconds: float) -> None:
        """A broker that hangs: no errors, no answers, then back as it was."""
        assert self.broker is not None and self.broker.pid is not None
        os.kill(self.broker.pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(self.broker.pid, signal.SIGCONT)

    def restart_broker_empty(self, down_s: float = 3.0) -> None:
        """A broker crash with memory storage: every topic and record it held is gone; it comes
        back on the same port with the topics recreated empty."""
        assert self.broker is not None and self.broker.pid is not None
        os.kill(self.broker.pid, signal.SIGKILL)
        self.broker.stop()
        time.sleep(down_s)
        self.start_broker()

    def kill_flink(self) -> None:
        """A crash: SIGKILL to the job and its JVM, no cancel, no final checkpoint."""
        _stop(self.flink, signal.SIGKILL)

    # -- reading back ----------------------------------------------------------------------------
    def topic_values(self, name: str) -> list[bytes]:
        assert self.broker is not None
        return [v for v, _ in read_topic(self.broker.bootstrap_servers, self.topics[name])]

    def topic_count(self, name: str) -> int:
        assert self.broker is not None
        return sum(end_offsets(self.broker.bootstrap_servers, self.topics[name]).values())

    def alerter_metrics(self) -> str:
        return http_body(f"http://127.0.0.1:{self.alerter_metrics_port}/metrics").decode()

    def flink_metrics(self) -> str:
        return http_body(f"http://127.0.0.1:{self.flink_metrics_port}/metrics").decode()

    def flink_wrapper_metrics(self) -> str:
        """The job wrapper's own metrics (ARB_FLINK_WRAPPER_METRICS_PORT, flink/job.py)."""
        return http_body(f"http://127.0.0.1:{self.flink_wrapper_port}/metrics").decode()

    def received(self) -> Counter[str]:
        return Counter(footer(p) for p in self.discord.accepted)

    def settle(self, expected: Counter[str], timeout_s: float = 120, quiet_s: float = 5.0,
               ) -> Counter[str]:
        """Wait until Discord shows every expected message, or until nothing new arrived for
        30 s (what is missing is not coming) or ``timeout_s``; then ``quiet_s`` more for any
        double. Fails if the job or the alerter died."""
        deadline = time.monotonic() + timeout_s
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            got = self.received()
            if set(expected) <= set(got):
                break
            total = sum(got.values())
            if total != last_count:
                last_count, last_change = total, time.monotonic()
            elif time.monotonic() - last_change > max(quiet_s, 30.0):
                break  # nothing for 30 s: what is missing is not coming
            time.sleep(0.3)
        time.sleep(quiet_s)
        for proc, name in ((self.alerter, "alerter"), (self.flink, "Flink job")):
            assert proc is not None and proc.poll() is None, f"the {name} died"
        return self.received()

    def result(self, expected: Counter[str], producer: dict[str, Any]) -> RunResult:
        return RunResult(self.settle(expected), expected, producer)


def metric_value(text: str, name: str) -> float | None:
    """The sum of every sample of ``name`` in a Prometheus exposition, or None if absent."""
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith((name + " ", name + "{"))]
    return sum(values) if values else None


# -- the producer child ----------------------------------------------------------------------------
def publish(input_file: Path, bootstrap: str, topic: str, speed: float,
            summary_file: Path) -> int:
    """Publish the input paced by ``ts_ms`` at ``speed`` x real time through KafkaPublisher,
    flush, write what it counted. SIGTERM stops early (the summary is still written)."""
    from prometheus_client import REGISTRY

    from services.producer.publisher import KafkaPublisher

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    records = [parse_price_record(line) for line in input_file.read_bytes().splitlines() if line]
    publisher = KafkaPublisher(bootstrap, topic, block=True)
    origin_ms = records[0].ts_ms
    start_s = time.monotonic()
    sent = 0
    for record in records:
        due_s = start_s + (record.ts_ms - origin_ms) / 1000 / speed
        while not stop.is_set() and (left_s := due_s - time.monotonic()) > 0:
            publisher._producer.poll(min(left_s, 0.05))  # delivery callbacks meanwhile
        if stop.is_set():
            break
        publisher.publish(record)
        sent += 1
    undelivered = publisher._producer.flush(60.0)
    metrics = {f"{s.name}{json.dumps(s.labels, sort_keys=True)}": s.value
               for m in REGISTRY.collect() for s in m.samples if s.name.startswith("arb_")}
    summary = {"sent": sent, "delivered": publisher.delivered, "failed": publisher.failed,
               "dropped": publisher.dropped, "undelivered": undelivered,
               "resets": publisher.resets, "metrics": metrics}
    summary_file.write_text(json.dumps(summary))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.harness")
    sub = parser.add_subparsers(dest="command", required=True)
    pub = sub.add_parser("publish", help="publish a JSON-lines input to Kafka, paced")
    pub.add_argument("input", type=Path)
    pub.add_argument("--bootstrap", required=True)
    pub.add_argument("--topic", required=True)
    pub.add_argument("--speed", type=float, default=1.0)
    pub.add_argument("--summary", type=Path, required=True)
    args = parser.parse_args(argv)
    return publish(args.input, args.bootstrap, args.topic, args.speed, args.summary)


if __name__ == "__main__":
    sys.exit(main())
