"""The detection job: declare Kafka tables from configuration, run one statement set.

``python -m flink.job`` runs it in a local Flink MiniCluster (PyFlink); the same module is
what a job submitter runs against a Flink cluster in compose.

While the job runs, this process watches the source topic (:class:`SourceWatch`): a partition
whose end falls below what it was (the broker restarted empty, or truncated, or the topic was
recreated) is counted as ``arb_kafka_offsets_reset_total{service="flink-job"}`` on this
process's own metrics endpoint (``wrapper_metrics_port``; Flink's reporter cannot carry Python
metrics), and the job is cancelled and started again reading the topic from its earliest offset
without the old checkpoint: its offsets point past the end of the new topic, and Tansu answers a
fetch there with nothing (no OFFSET_OUT_OF_RANGE), so the old job would wait, silently, until
the new topic grew past them, having skipped everything before.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import structlog

from flink import detection
from flink.jars import ensure_jars
from services.common.config import DetectionSettings, KafkaSettings, load_dotenv
from services.common.exceptions import ConfigError
from services.common.kafka import client_config, end_offsets
from services.common.logging import configure_logging
from services.common.metrics import MetricsServer
from services.common.offsets import OffsetWatch, detect_reset

if TYPE_CHECKING:
    from pyflink.table import TableEnvironment

log = structlog.get_logger(__name__)

#: Where PyFlink keeps Flink's optional plugins (the Prometheus reporter among them).
PYFLINK_PLUGINS = Path(importlib.util.find_spec("pyflink").origin).parent / "plugins"
CHECKPOINT_INTERVAL = "execution.checkpointing.interval"
CHECKPOINT_DIR = "execution.checkpointing.dir"
RECOVERY_PATH = "execution.state-recovery.path"
SPREADS_TABLE = "spreads_sink"
ALERTS_TABLE = "alerts_sink"
EPISODES_TABLE = "episodes_sink"
#: the ``service`` label of this process's metrics
SERVICE = "flink-job"
#: how often the source topic's ends are looked up
WATCH_INTERVAL_S = 2.0


@dataclass(frozen=True)
class JobPlan:
    """Every statement of the job, in order; printable and testable without running Flink."""

    ddl: list[str]
    views: list[str]
    inserts: list[str]


def bounded_offsets(bootstrap_servers: str, topic: str) -> str:
    """The topic's current end offsets as Flink's ``specific-offsets`` string.

    Flink's own "latest-offset" bound inherits Tansu's short answer for the end of a
    partition (see services.common.kafka.end_offsets), so the ends are looked up here.
    """
    ends = end_offsets(bootstrap_servers, topic)
    return ";".join(f"partition:{p},offset:{end}" for p, end in sorted(ends.items()))


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint (a ``chk-N`` folder with ``_metadata``) of any earlier
    run under ``checkpoint_dir``, or None."""
    complete = [meta.parent for meta in checkpoint_dir.glob("*/chk-*/_metadata")]
    return max(complete, key=lambda p: p.stat().st_mtime, default=None)


def source_options(settings: DetectionSettings, kafka: KafkaSettings) -> dict[str, str]:
    options = {
        "connector": "kafka",
        "topic": kafka.prices_topic,
        "properties.bootstrap.servers": kafka.bootstrap_servers,
        "properties.group.id": settings.group_id,
        "properties.auto.offset.reset": "latest",
        "scan.startup.mode": settings.startup_mode,
        # on-event: a watermark per record (lowest latency, lateness a function of the input
        # alone); on-periodic: every pipeline.auto-watermark-interval (cheaper under load).
        "scan.watermark.emit.strategy": settings.watermark_emit,
        "scan.topic-partition-discovery.interval": "30 s",
        # The broker answers a fetch as soon as there is data, or after this wait: the Java
        # default of 500 ms would sit on every quiet moment.
        "properties.fetch.max.wait.ms": "20",
        "format": "json",
        "json.ignore-parse-errors": "true",
        "json.fail-on-missing-field": "false",
    }
    if settings.bounded:
        options["scan.bounded.mode"] = "specific-offsets"
        options["scan.bounded.specific-offsets"] = bounded_offsets(
            kafka.bootstrap_servers, kafka.prices_topic,
        )
    return options


def sink_options(topic: str, kafka: KafkaSettings) -> dict[str, str]:
    return {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": kafka.bootstrap_servers,
        "properties.linger.ms": "0",
        # At-least-once: a replay after a restart re-emits the same deterministic ids, which the
        # alerter deduplicates; exactly-once would hold alerts back until each checkpoint.
        "sink.delivery-guarantee": "at-least-once",
        "key.format": "raw",
        "key.fields": "symbol",
        "value.format": "json",
        "value.fields-include": "ALL",
    }


def plan(settings: DetectionSettings, kafka: KafkaSettings) -> JobPlan:
    return JobPlan(
        ddl=[
            detection.source_statement(settings, source_options(settings, kafka)),
            detection.sink_statement(SPREADS_TABLE, sink_options(kafka.spreads_topic, kafka)),
            detection.sink_statement(ALERTS_TABLE, sink_options(kafka.alerts_topic, kafka)),
            detection.episode_sink_statement(
                EPISODES_TABLE, sink_options(kafka.episodes_topic, kafka),
            ),
        ],
        views=detection.view_statements(settings),
        inserts=detection.insert_statements(settings),
    )


def table_environment(
    settings: DetectionSettings, job_name: str = "arb-detector", metrics_port: int = 0,
) -> TableEnvironment:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    # A Flink cluster image has the connector in its lib/ and the reporter in its plugins/
    # (FLINK_LIB_DIR set before PyFlink starts, which sets it itself otherwise); a local
    # MiniCluster loads no plugins, so it gets the connector and the reporter as job jars.
    jars_in_lib = bool(settings.flink_lib_dir)
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = env.get_config()
    if not jars_in_lib:
        jars = ensure_jars()
        if metrics_port:
            jars += sorted(PYFLINK_PLUGINS.glob("metrics-prometheus/*.jar"))
        conf.set("pipeline.jars", ";".join(p.resolve().as_uri() for p in jars))
    conf.set("pipeline.name", job_name)
    conf.set("table.local-time-zone", "UTC")
    conf.set("table.exec.source.idle-timeout", f"{settings.idle_timeout_ms} ms")
    conf.set("pipeline.auto-watermark-interval", f"{settings.watermark_interval_ms} ms")
    # SQL operators do not keep references to records they have emitted.
    conf.set("pipeline.object-reuse", "true")
    # Flush network buffers between operators every 5 ms instead of every 100 ms: the job
    # has several hash exchanges and each would otherwise add up to a tenth of a second.
    conf.set("execution.buffer-timeout.interval", "5 ms")
    if metrics_port:
        # Set here, not in a copied config.yaml, which a local MiniCluster does not read.
        conf.set("metrics.reporter.prom.factory.class",
                 "org.apache.flink.metrics.prometheus.PrometheusReporterFactory")
        conf.set("metrics.reporter.prom.port", str(metrics_port))
    # A local MiniCluster reads no config.yaml: what it holds (parallelism = the machine's
    # cores) is PyFlink's guess, nobody's setting.
    local = conf.get("execution.target", "local") == "local"
    for key, value in runtime_options(settings, lambda k: None if local else conf.get(k, None),
                                      ).items():
        conf.set(key, value)
        if key == RECOVERY_PATH:
            log.info("flink_job_restoring", checkpoint=value)
    return env


def runtime_options(settings: DetectionSettings,
                    flink_value: Callable[[str], str | None]) -> dict[str, str]:
    """Parallelism and checkpointing. An ARB_* variable that is set wins; otherwise Flink's own
    configuration (``flink run -D``, config.yaml), read through ``flink_value``, does, and the
    setting's default fills in what it leaves unset."""
    options: dict[str, str] = {}

    def follow(key: str, value: str, field: str | None = None) -> None:
        if field in settings.model_fields_set or flink_value(key) is None:
            options[key] = value

    follow("parallelism.default", str(settings.parallelism), "parallelism")
    if settings.checkpoint_interval_ms:
        follow(CHECKPOINT_INTERVAL, f"{settings.checkpoint_interval_ms} ms",
               "checkpoint_interval_ms")
    if CHECKPOINT_INTERVAL not in options and flink_value(CHECKPOINT_INTERVAL) is None:
        return options  # checkpointing off
    follow(CHECKPOINT_DIR, Path(settings.checkpoint_dir).resolve().as_uri(), "checkpoint_dir")
    # Keep the last checkpoint when the job stops or crashes, so the next start resumes from
    # it (offsets and window state) instead of from the configured startup offsets.
    follow("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    if settings.restore and flink_value(RECOVERY_PATH) is None:  # not `flink run -s`
        where = urlparse(options.get(CHECKPOINT_DIR) or flink_value(CHECKPOINT_DIR) or "")
        restore = latest_checkpoint(Path(where.path)) if where.scheme == "file" else None
        if restore is not None:
            options[RECOVERY_PATH] = restore.as_uri()
    return options


class SourceWatch:
    """Looks up the source topic's partition ends every ``interval_s`` on a thread; a fall below
    an end seen before is a reset: counted, logged, and ``reset`` set for the job's loop.

    The ends are the true ones (``services.common.kafka.end_offsets``, by default): Tansu
    answers a watermark lookup short (the last batch's base offset + 1, so a small topic written
    in one batch "ends" at 1 before and after a restart) and, under load, has answered 0 for a
    partition holding records. A fall is looked up once more before it counts."""

    def __init__(self, bootstrap_servers: str, topic: str, watch: OffsetWatch, *,
                 interval_s: float = WATCH_INTERVAL_S,
                 true_ends: Callable[[str], Mapping[int, int]] | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.watch = watch
        self.interval_s = interval_s
        self._true_ends = true_ends or (lambda t: end_offsets(bootstrap_servers, t))
        self.reset = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="source-watch", daemon=True)

    def start(self) -> SourceWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def check(self, highs: Mapping[int, int], topic_id: str | None = None) -> bool:
        """One look at the partition ends (``highs``: partition -> end offset) and the topic's
        id; True if the topic was recreated or one of its partitions reset. The id catches a
        new topic that already outgrew the old one's ends."""
        found = self.watch.topic_id(self.topic, topic_id) is not None
        confirmed: Mapping[int, int] | None = None
        for partition, high in sorted(highs.items()):
            if detect_reset(self.watch.seen_end(self.topic, partition), high=high) is not None:
                if confirmed is None:
                    confirmed = self._true_ends(self.topic)
                high = max(high, confirmed.get(partition, high))
            if self.watch.high(self.topic, partition, high) is not None:
                found = True
        if found:
            self.reset.set()
        return found

    def _topic_id(self, admin: Any) -> str | None:
        """The topic's id (DescribeTopics; Tansu gives a new one to a recreated topic), None
        where the broker tells none."""
        from confluent_kafka import TopicCollection

        try:
            described = admin.describe_topics(TopicCollection([self.topic]))[self.topic]
            topic_id = described.result(self.interval_s + 3).topic_id
        except Exception:  # noqa: BLE001 - not every broker answers: the ends still tell
            return None
        return str(topic_id) if topic_id is not None else None

    def _run(self) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(client_config(self.bootstrap_servers))
        while not self._stop.wait(self.interval_s):
            try:
                self.check(self._true_ends(self.topic), self._topic_id(admin))
            except Exception as exc:  # noqa: BLE001 - a broker away: look again later
                log.debug("source_watch_lookup_failed", topic=self.topic, error=str(exc))


def after_reset(settings: DetectionSettings) -> DetectionSettings:
    """The settings of the job started again after a reset: the new topic from its start, and
    not the old checkpoint (its offsets and state belong to records that are gone)."""
    return settings.model_copy(update={"startup_mode": "earliest-offset", "restore": False})


def submit(settings: DetectionSettings, kafka: KafkaSettings, job_name: str = "arb-detector",
           metrics_port: int = 0) -> Any:
    """Declare the tables, submit the statement set; the running job's TableResult."""
    job = plan(settings, kafka)
    env = table_environment(settings, job_name, metrics_port)
    for statement in job.ddl + job.views:
        env.execute_sql(statement)
    statement_set = env.create_statement_set()
    for insert in job.inserts:
        statement_set.add_insert_sql(insert)
    if not detection.tick_pairs(settings):
        log.warning("tick_path_off", venues=list(settings.venues),
                    reason="ARB_VENUES names fewer than two venues: no episodes")
    log.info("flink_job_submitting", job=job_name, window_ms=settings.window_ms,
             watermark_ms=settings.watermark_ms, min_spread_usd=settings.min_spread_usd,
             tick_venues=list(settings.venues), stale_ms=settings.stale_ms,
             episode_gap_ms=settings.episode_gap_ms,
             demo_mode=settings.demo_mode, bounded=settings.bounded,
             prices_topic=kafka.prices_topic, startup_mode=settings.startup_mode)
    return statement_set.execute()


def wait_or_reset(result: Any, reset: threading.Event, poll_s: float = 1.0) -> bool:
    """Block until the job ends (False; a failure raises as before) or ``reset`` is set
    (True, the job still running)."""
    client = result.get_job_client()
    while client is not None:
        if reset.wait(poll_s):
            return True
        if client.get_job_status().result().is_globally_terminal_state():
            break
    result.wait()
    return False


def run(settings: DetectionSettings, kafka: KafkaSettings, job_name: str = "arb-detector",
        metrics_port: int = 0, wrapper_metrics_port: int = 0,
        watch_interval_s: float = WATCH_INTERVAL_S) -> None:
    """Submit the job and block until it ends (bounded input) or is cancelled; after a reset of
    the source topic, cancel it and submit it again from the topic's start.

    ``wrapper_metrics_port``: where this process serves its own metrics (0: nowhere)."""
    watch = OffsetWatch(SERVICE)
    watch.touch([kafka.prices_topic])
    server = None
    if wrapper_metrics_port:
        try:
            server = MetricsServer(wrapper_metrics_port).start()
        except OSError as exc:  # the job matters more than its wrapper's metrics
            log.error("flink_wrapper_metrics_unavailable", port=wrapper_metrics_port,
                      error=str(exc))
    watcher = None if settings.bounded else SourceWatch(
        kafka.bootstrap_servers, kafka.prices_topic, watch, interval_s=watch_interval_s).start()
    try:
        while True:
            result = submit(settings, kafka, job_name, metrics_port)
            if watcher is None:
                result.wait()
                break
            if not wait_or_reset(result, watcher.reset):
                break
            watcher.reset.clear()
            log.warning("flink_job_restarting_after_reset", job=job_name,
                        topic=kafka.prices_topic,
                        message="the source topic lost records: the job starts again from the "
                                "new topic's earliest offset, without the old checkpoint")
            result.get_job_client().cancel().result()
            settings = after_reset(settings)
    finally:
        if watcher is not None:
            watcher.stop()
        if server is not None:
            server.stop()
    log.info("flink_job_finished", job=job_name)


def _stop_now(signum: int, frame: object) -> None:
    """Leave at once: the local MiniCluster lives in the Java gateway, which exits when this
    driver does; unwinding through a pending py4j call would only print tracebacks. Progress
    is in the last checkpoint and the sinks are at-least-once with deterministic ids."""
    log.info("flink_job_stopping", signal=signal.Signals(signum).name)
    os._exit(0)


def main() -> int:
    load_dotenv()
    configure_logging("flink-job")
    try:
        settings = DetectionSettings.from_env()
        kafka = KafkaSettings.from_env()
        wrapper_metrics_port = settings.wrapper_port
    except ConfigError as exc:
        log.error("config_invalid", error=str(exc))
        return 2
    signal.signal(signal.SIGTERM, _stop_now)
    run(settings, kafka, metrics_port=settings.metrics_port,
        wrapper_metrics_port=wrapper_metrics_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
