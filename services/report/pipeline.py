"""Run recorded data through the real pipeline at maximum speed and collect what came out.

A private Tansu broker on a free port, the producer's ``replay --speed max`` (the same parsers
and quote book as live), the Flink detection job bounded to what the replay wrote, then every
topic read back. Each piece runs as its own process, started by module name like ``arb
start`` does, so the report depends on their command lines only.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from confluent_kafka import Consumer, TopicPartition

from services.common.broker import LocalBroker, free_port
from services.common.clock import now_ts_ms
from services.common.config import DetectionSettings, KafkaSettings
from services.common.episodes import feed_latency_p99_ms, latest_by_id, rejudge
from services.common.exceptions import ArbError, RecordError
from services.common.kafka import client_config, end_offsets
from services.common.messages import (
    Episode,
    PriceRecord,
    Spread,
    parse_episode,
    parse_price_record,
    parse_spread,
)
from services.report.progress import Progress
from services.report.render import LatencyUsed, ReportData

log = structlog.get_logger(__name__)

REPO = Path(__file__).resolve().parents[2]
#: How often a running child is checked and the bar redrawn.
POLL_S = 0.25
#: Written by the producer's record mode beside the files it recorded together.
RECORDING_MANIFEST = "recording.json"
RECORDED_NOTE = (
    "Recorded together by the producer's record mode: the venues keep their real relative "
    "timing and prices, so spreads here are what the feeds showed."
)
ALIGNMENT_NOTE = (
    "The replay aligns recordings to a common start time and price level (see "
    "services/producer/replay.py). Unless the files were recorded together, any spread here "
    "comes from that alignment or from injected shocks, not from the market."
)


class ReportError(ArbError):
    """A step of the report run failed; the message names the step and its log file."""


@dataclass(frozen=True)
class ReportOptions:
    """What to replay and where to put the results."""

    fixtures_dir: Path
    out_dir: Path
    shocks: Sequence[str] = ()
    producer_timeout_s: float = 600.0
    flink_timeout_s: float = 1800.0


@dataclass
class Collected:
    """The topics' contents after the run."""

    prices: list[PriceRecord] = field(default_factory=list)
    invalid_prices: int = 0
    spreads: list[Spread] = field(default_factory=list)
    alerts: list[Spread] = field(default_factory=list)
    episode_records: list[Episode] = field(default_factory=list)


def read_topic(bootstrap: str, topic: str,
               on_record: Callable[[bytes], None] | None = None) -> list[bytes]:
    """Every record value of ``topic`` from the start to the end it has now."""
    ends = end_offsets(bootstrap, topic)
    consumer = Consumer(client_config(bootstrap, **{
        "group.id": f"arb-report-{uuid.uuid4()}", "enable.auto.commit": False,
        "fetch.wait.max.ms": 50}))
    values: list[bytes] = []
    try:
        pending = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in pending])
        deadline = time.monotonic() + 60
        while pending:
            if time.monotonic() > deadline:
                raise ReportError(f"reading {topic}: did not reach the end offsets {ends}")
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            value = msg.value() or b""
            values.append(value)
            if on_record is not None:
                on_record(value)
            if msg.offset() + 1 >= ends[msg.partition()]:
                pending.discard(msg.partition())
        return values
    finally:
        consumer.close()


def child_env(kafka: KafkaSettings, fixtures_dir: Path, group_id: str) -> dict[str, str]:
    """The user's environment (thresholds, fees, DEMO_MODE ...) pointed at the private broker,
    with every port, checkpoint and offset setting a one-off bounded run needs."""
    env = dict(os.environ)
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "ARB_PRICES_TOPIC": kafka.prices_topic,
        "ARB_SPREADS_TOPIC": kafka.spreads_topic,
        "ARB_ALERTS_TOPIC": kafka.alerts_topic,
        "ARB_EPISODES_TOPIC": kafka.episodes_topic,
        "ARB_TOPIC_PARTITIONS": "1",
        "ARB_FIXTURES_DIR": str(fixtures_dir),
        "ARB_PRODUCER_METRICS_PORT": "0",
        "ARB_FLINK_METRICS_PORT": "0",
        "ARB_CHECKPOINT_INTERVAL_MS": "0",
        "ARB_RESTORE_CHECKPOINT": "false",
        "ARB_STARTUP_MODE": "earliest-offset",
        "ARB_BOUNDED": "true",
        "ARB_FLINK_GROUP_ID": group_id,
    })
    return env


def _run_child(name: str, argv: list[str], env: Mapping[str, str], log_file: Path,
               timeout_s: float, on_tick: Callable[[], None]) -> None:
    """Run one piece to completion, calling ``on_tick`` while it runs; fail with its log."""
    with open(log_file, "wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - argv is built here, not from input
            argv, cwd=REPO, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise ReportError(f"{name} did not finish within {timeout_s:.0f} s "
                                      f"(log: {log_file})")
                on_tick()
                time.sleep(POLL_S)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    if proc.returncode != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-5:]
        raise ReportError(f"{name} exited with code {proc.returncode} (log: {log_file}):\n"
                          + "\n".join(tail))


def _replay_total(log_file: Path) -> int | None:
    """The record count the producer announces in its ``replay_started`` log line."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if '"replay_started"' not in line and "replay_started" not in line:
            continue
        try:
            return int(json.loads(line).get("records"))
        except (ValueError, TypeError, AttributeError):
            continue
    return None


def _high_watermark(consumer: Consumer, topic: str) -> int:
    """Records in partition 0 of ``topic`` as the broker reports it (a progress estimate)."""
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=1.0)[1]
    except Exception:  # noqa: BLE001 - only a progress estimate
        return 0


def replay(options: ReportOptions, kafka: KafkaSettings, env: Mapping[str, str],
           logs: Path, progress: Progress) -> None:
    argv = [sys.executable, "-m", "services.producer", "replay", "--speed", "max",
            "--fixtures-dir", str(options.fixtures_dir)]
    for shock in options.shocks:
        argv += ["--shock", shock]
    log_file = logs / "producer.log"
    probe = Consumer(client_config(kafka.bootstrap_servers,
                                   **{"group.id": f"arb-report-probe-{uuid.uuid4()}"}))
    progress.phase("replay", detail="building the replay")

    def tick() -> None:
        total = _replay_total(log_file)
        sent = _high_watermark(probe, kafka.prices_topic)
        progress.update(min(sent, total) if total else sent, total,
                        detail=f"{sent:,} records published")

    try:
        _run_child("producer replay", argv, env, log_file, options.producer_timeout_s, tick)
    finally:
        probe.close()


def detect(options: ReportOptions, kafka: KafkaSettings, env: Mapping[str, str], logs: Path,
           progress: Progress, first_ts_ms: int, last_ts_ms: int) -> None:
    """The bounded Flink job; progress is event time: the newest window end on the spreads
    topic against the replay's time span."""
    span_ms = max(1, last_ts_ms - first_ts_ms)
    watcher = Consumer(client_config(kafka.bootstrap_servers, **{
        "group.id": f"arb-report-watch-{uuid.uuid4()}", "enable.auto.commit": False,
        "fetch.wait.max.ms": 50}))
    watcher.assign([TopicPartition(kafka.spreads_topic, 0, 0)])
    newest = [first_ts_ms]
    progress.phase("detect", total=span_ms / 1000, detail="starting Flink")

    def tick() -> None:
        while (msg := watcher.poll(0)) is not None:
            if msg.error():
                continue
            try:
                newest[0] = max(newest[0], parse_spread(msg.value() or b"").window_end_ms)
            except RecordError:
                continue
        covered_s = min(span_ms, newest[0] - first_ts_ms) / 1000
        progress.update(covered_s, detail=f"{covered_s:,.0f} of {span_ms / 1000:,.0f} s "
                                          "of event time")

    try:
        _run_child("flink job", [sys.executable, "-m", "flink.job"], env, logs / "flink.log",
                   options.flink_timeout_s, tick)
    finally:
        watcher.close()


def collect_prices(kafka: KafkaSettings, collected: Collected) -> None:
    for value in read_topic(kafka.bootstrap_servers, kafka.prices_topic):
        try:
            collected.prices.append(parse_price_record(value))
        except RecordError:
            collected.invalid_prices += 1


def collect_outputs(kafka: KafkaSettings, collected: Collected) -> None:
    for topic, target, parse in (
        (kafka.spreads_topic, collected.spreads, parse_spread),
        (kafka.alerts_topic, collected.alerts, parse_spread),
        (kafka.episodes_topic, collected.episode_records, parse_episode),
    ):
        for value in read_topic(kafka.bootstrap_servers, topic):
            try:
                target.append(parse(value))
            except RecordError as exc:
                log.warning("report_record_skipped", topic=topic, reason=exc.reason)


def judged_latencies(prices: Sequence[PriceRecord], settings: DetectionSettings,
                     venues: Sequence[str]) -> list[LatencyUsed]:
    """Per venue: the p99 feed latency measured on the replayed records when the venue sends
    its own timestamps (clamped at 0: a negative p99 is recorder clock error), else the
    configured one."""
    measured = feed_latency_p99_ms(prices)
    used = []
    for venue in sorted(set(venues) | set(measured)):
        if venue in measured:
            raw = measured[venue]
            used.append(LatencyUsed(venue, max(0.0, raw), "measured", raw))
        else:
            used.append(LatencyUsed(venue, float(settings.latency_ms(venue)), "configured"))
    return used


def build_data(options: ReportOptions, settings: DetectionSettings, collected: Collected,
               elapsed_s: dict[str, float]) -> ReportData:
    prices = collected.prices
    venues = sorted({p.exchange for p in prices})
    latencies = judged_latencies(prices, settings, venues)
    table = {lat.venue: lat.p99_ms for lat in latencies}
    episodes = [rejudge(e, table, settings.execution_ms, settings.default_feed_latency_ms)
                for e in latest_by_id(collected.episode_records)]
    recorded = (options.fixtures_dir / RECORDING_MANIFEST).is_file()
    notes = [RECORDED_NOTE if recorded else ALIGNMENT_NOTE]
    if options.shocks:
        notes.append("Injected price shocks: " + ", ".join(options.shocks) + ".")
    if collected.invalid_prices:
        notes.append(f"{collected.invalid_prices} price records did not parse and were skipped.")
    return ReportData(
        source=f"{options.fixtures_dir} ({', '.join(venues) or 'no venues'})",
        settings=settings,
        prices=len(prices),
        first_ts_ms=min((p.ts_ms for p in prices), default=0),
        last_ts_ms=max((p.ts_ms for p in prices), default=0),
        spreads=collected.spreads,
        alerts=collected.alerts,
        episodes=episodes,
        latencies=latencies,
        notes=notes,
        generated_ts_ms=now_ts_ms(),
        elapsed_s=elapsed_s,
    )


def run_pipeline(options: ReportOptions, progress: Progress) -> ReportData:
    """Broker, replay, detection, collection: the data of one report."""
    settings = DetectionSettings.from_env()
    names = KafkaSettings.from_env()
    logs = options.out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    elapsed: dict[str, float] = {}
    started = time.monotonic()
    broker = LocalBroker(port=free_port(), topics=names.topics, partitions=1,
                         log_file=logs / "broker.log")
    with broker:
        kafka = names.replace(bootstrap_servers=broker.bootstrap_servers, partitions=1)
        env = child_env(kafka, options.fixtures_dir, f"arb-report-{uuid.uuid4().hex[:8]}")
        replay(options, kafka, env, logs, progress)
        collected = Collected()
        collect_prices(kafka, collected)
        # Whatever the last tick saw (a fast replay can end before the first one): all of it.
        progress.update(len(collected.prices), len(collected.prices))
        elapsed["replay"] = progress.finish(detail=f"{len(collected.prices):,} records")
        if not collected.prices:
            raise ReportError(f"the replay published nothing (log: {logs / 'producer.log'})")
        first = min(p.ts_ms for p in collected.prices)
        last = max(p.ts_ms for p in collected.prices)
        detect(options, kafka, env, logs, progress, first, last)
        collect_outputs(kafka, collected)
        elapsed["detect"] = progress.finish(
            detail=f"{len(collected.spreads):,} spreads, {len(collected.alerts):,} alerts, "
                   f"{len(latest_by_id(collected.episode_records)):,} episodes")
    elapsed["total"] = time.monotonic() - started
    return build_data(options, settings, collected, {k: round(v, 1) for k, v in elapsed.items()
                                                     if math.isfinite(v)})
