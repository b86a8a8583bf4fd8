"""The detection job: declare Kafka tables from configuration, run one statement set.

``python -m flink.job`` runs it in a local Flink MiniCluster (PyFlink); the same module is
what a job submitter runs against a Flink cluster in compose.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import structlog

from flink import detection
from flink.jars import ensure_jars
from services.common.config import DetectionSettings, KafkaSettings, load_dotenv
from services.common.exceptions import ConfigError
from services.common.kafka import end_offsets
from services.common.logging import configure_logging

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


def run(settings: DetectionSettings, kafka: KafkaSettings, job_name: str = "arb-detector",
        metrics_port: int = 0) -> None:
    """Submit the job and block until it ends (bounded input) or is cancelled."""
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
             prices_topic=kafka.prices_topic)
    result = statement_set.execute()
    result.wait()
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
    except ConfigError as exc:
        log.error("config_invalid", error=str(exc))
        return 2
    signal.signal(signal.SIGTERM, _stop_now)
    run(settings, kafka, metrics_port=settings.metrics_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
