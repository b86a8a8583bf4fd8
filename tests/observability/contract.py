"""The metric names dashboards and rules may use, and where the observability files live.

``arb_*`` names are DESIGN.md's metrics contract (checked against DESIGN.md when it is found);
``flink_*`` names were read from the :9249 endpoint of a Flink 2.3 MiniCluster running a
windowed SQL job with the built-in Prometheus reporter.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
PROMETHEUS_CONFIGS = (PROMETHEUS_DIR / "prometheus.yml", PROMETHEUS_DIR / "prometheus.compose.yml")
GRAFANA_DIR = REPO / "grafana" / "provisioning"
RUNBOOK = REPO / "docs" / "runbook.md"

DATASOURCE_UID = "arb-prometheus"
EXPRESSION_UID = "__expr__"
DATASOURCE_REF = {"type": "prometheus", "uid": DATASOURCE_UID}

#: Metric families by type, as DESIGN.md lists them per service.
COUNTERS = frozenset({
    "arb_feed_messages_total", "arb_feed_errors_total", "arb_feed_reconnects_total",
    "arb_kafka_produced_total", "arb_kafka_produce_errors_total",
    "arb_alerts_received_total", "arb_alerts_sent_total", "arb_alerts_failed_total",
    "arb_alerts_suppressed_total",
    # Not in DESIGN.md's list: the alerter counts records it could not parse ("counted and
    # skipped", DESIGN.md's Messages section).
    "arb_records_invalid_total",
    # Not in DESIGN.md's list either: opportunity episodes (docs/decisions.md).
    "arb_episodes_received_total", "arb_episodes_closed_total",
    "arb_episode_messages_sent_total", "arb_episode_messages_failed_total",
    # Not in DESIGN.md's list either: what a slow broker costs the producer (docs/decisions.md).
    "arb_quotes_dropped_total", "arb_trades_dropped_total",
    # DESIGN.md's second round (depth): order-book health, per venue.
    "arb_book_resyncs_total", "arb_book_gaps_total", "arb_book_checksum_failures_total",
    "arb_book_crossed_total", "arb_book_rejected_total",
    # Issue #19 (docs/reliability.md): what a fault cost, where it is physically unavoidable.
    "arb_history_store_errors_total", "arb_dashboard_history_errors_total",
    "arb_alerts_uncertain_total", "arb_kafka_offsets_reset_total",
    "arb_kafka_records_lost_total",
})
GAUGES = frozenset({
    "arb_feed_connected", "arb_feed_last_message_timestamp_seconds",
    "arb_best_bid_usd", "arb_best_ask_usd",
    "arb_spread_usd", "arb_spread_bps", "arb_net_spread_bps",
    "arb_kafka_consumer_lag_records", "arb_dashboard_sessions",
    # Not in DESIGN.md's list: the producer's backlog in front of Kafka (docs/decisions.md).
    "arb_kafka_backlog_records",
    # Not in DESIGN.md's list either: the tick path's open opportunities (docs/decisions.md).
    "arb_episodes_open",
    # Second round (depth): book age and levels (producer), executable size and profit of the
    # latest window per pair (alerter, next to the spread gauges).
    "arb_book_age_seconds", "arb_book_levels", "arb_executable_usd", "arb_executable_profit_usd",
    # Issue #19: 1 while the alerter's history store works.
    "arb_history_store_ok",
})
HISTOGRAMS = frozenset({
    "arb_feed_latency_seconds", "arb_kafka_delivery_latency_seconds",
    "arb_alert_delivery_latency_seconds", "arb_detection_latency_seconds",
    "arb_episode_duration_seconds", "arb_tick_detection_latency_seconds",
})
#: Families exported although DESIGN.md does not list them by name.
NOT_IN_DESIGN = frozenset({
    "arb_records_invalid_total",
    "arb_episodes_received_total", "arb_episodes_closed_total", "arb_episode_duration_seconds",
    "arb_episode_messages_sent_total", "arb_episode_messages_failed_total",
    "arb_quotes_dropped_total", "arb_trades_dropped_total", "arb_kafka_backlog_records",
    "arb_episodes_open", "arb_tick_detection_latency_seconds",
    # Named in DESIGN.md's second round, not in its Metrics section.
    "arb_book_resyncs_total", "arb_book_gaps_total", "arb_book_checksum_failures_total",
    "arb_book_crossed_total", "arb_book_rejected_total", "arb_book_age_seconds",
    "arb_book_levels", "arb_executable_usd", "arb_executable_profit_usd",
    "arb_history_store_errors_total", "arb_dashboard_history_errors_total",
    "arb_alerts_uncertain_total", "arb_kafka_offsets_reset_total",
    "arb_kafka_records_lost_total", "arb_history_store_ok",
})

#: DESIGN.md's name -> the name exported, for a family renamed to state its unit
#: (docs/decisions.md, "Metric renames").
RENAMED_FROM_DESIGN: dict[str, str] = {
    "arb_kafka_consumer_lag": "arb_kafka_consumer_lag_records",
}

FLINK_METRICS = frozenset({
    "flink_jobmanager_numRunningJobs",
    "flink_jobmanager_job_uptime",
    "flink_jobmanager_job_numRestarts",
    "flink_jobmanager_job_lastCheckpointDuration",
    "flink_jobmanager_job_numberOfCompletedCheckpoints",
    "flink_jobmanager_job_numberOfFailedCheckpoints",
    "flink_taskmanager_job_task_numRecordsInPerSecond",
    "flink_taskmanager_job_task_numRecordsOutPerSecond",
    "flink_taskmanager_job_task_operator_numRecordsInPerSecond",
    "flink_taskmanager_job_task_operator_numRecordsOutPerSecond",
    "flink_taskmanager_job_task_operator_currentInputWatermark",
    "flink_taskmanager_job_task_operator_currentOutputWatermark",
})

#: A metric name where PromQL or prose mentions one (not inside a recording rule's name).
METRIC_NAME = re.compile(r"(?<![\w:])(arb_[a-z_]+|flink_[a-zA-Z_]+)")
#: A recording rule's name, level:metric:operations.
RECORDING_NAME = re.compile(r"(?<![\w:])([a-z_]+:[a-z0-9_]+:[a-z0-9_]+)")


def known_series_names() -> frozenset[str]:
    """Every series name the exporters can produce for the families above."""
    suffixes = ("_bucket", "_sum", "_count")
    histogram_series = frozenset(f"{h}{suffix}" for h in HISTOGRAMS for suffix in suffixes)
    return COUNTERS | GAUGES | histogram_series | FLINK_METRICS


def family(series: str) -> str:
    """The metric family a series belongs to (a histogram's _bucket/_sum/_count folded in)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if series.endswith(suffix) and series.removesuffix(suffix) in HISTOGRAMS:
            return series.removesuffix(suffix)
    return series


def design_doc() -> Path | None:
    """DESIGN.md, wherever this checkout keeps it: $ARB_DESIGN_DOC, docs/ or ../shared/."""
    candidates = [
        os.environ.get("ARB_DESIGN_DOC", ""),
        REPO / "docs" / "DESIGN.md",
        REPO.parent / "shared" / "DESIGN.md",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None
