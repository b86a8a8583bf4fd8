"""librdkafka statistics, read for what the services export: consumer lag per partition.

Pure functions over the JSON document a consumer's ``stats_cb`` receives every
``statistics.interval.ms``; the alerter and the dashboard's reader both turn it into
``arb_kafka_consumer_lag_records{topic,partition,group}``.

On Tansu the figures are approximate: it answers "latest offset" with the base offset of the
last record batch + 1 (see ``services.common.kafka.end_offsets``), so the high watermark that
librdkafka sees can be short by the rest of that batch and the lag reads low by as much
(clamped at 0). On Apache Kafka they are exact.
"""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry, Gauge


def consumer_lags(stats_json: str) -> dict[str, dict[int, int]]:
    """``{topic: {partition: lag}}`` from a librdkafka statistics document.

    librdkafka's ``consumer_lag`` counts from the committed offset, so it is unknown (-1) for a
    consumer that never commits (the spread gauges): then the lag counts from the position
    handed to the application (``app_offset``, else the fetch position ``next_offset``).
    Partitions whose lag is unknown, and the internal partition -1, are left out.
    """
    try:
        stats = json.loads(stats_json)
    except ValueError:
        return {}
    lags: dict[str, dict[int, int]] = {}
    for topic, info in (stats.get("topics") or {}).items():
        for key, part in (info.get("partitions") or {}).items():
            partition = int(key)
            lag = _lag(part)
            if partition >= 0 and lag is not None:
                lags.setdefault(topic, {})[partition] = lag
    return lags


def _lag(part: dict[str, Any]) -> int | None:
    committed_lag = part.get("consumer_lag", -1)
    if isinstance(committed_lag, int) and committed_lag >= 0:
        return committed_lag
    end = part.get("ls_offset", -1)
    end = end if isinstance(end, int) and end >= 0 else part.get("hi_offset", -1)
    position = part.get("app_offset", -1)
    position = position if isinstance(position, int) and position >= 0 else part.get(
        "next_offset", -1,
    )
    if not isinstance(end, int) or not isinstance(position, int) or end < 0 or position < 0:
        return None
    return max(0, end - position)


def brokers_up(stats_json: str) -> int | None:
    """How many real brokers (not the bootstrap placeholders) the client is connected to;
    None when the document does not parse."""
    try:
        stats = json.loads(stats_json)
    except ValueError:
        return None
    brokers = (stats.get("brokers") or {}).values()
    return sum(
        1 for broker in brokers
        if isinstance(broker, dict) and broker.get("nodeid", -1) >= 0
        and broker.get("state") == "UP"
    )


def consumer_lag_gauge(registry: CollectorRegistry) -> Gauge:
    """``arb_kafka_consumer_lag_records``: the one definition every consuming service exports
    (``_records``: the unit, as the threshold ``arb:threshold:consumer_lag_records`` names it)."""
    return Gauge(
        "arb_kafka_consumer_lag_records",
        "Records between the consumer's position and the partition end (librdkafka stats)",
        ["topic", "partition", "group"],
        registry=registry,
    )


def set_consumer_lags(gauge: Gauge, stats_json: str, group: str) -> None:
    """Set the lag gauge from one librdkafka statistics document."""
    for topic, lags in consumer_lags(stats_json).items():
        for partition, lag in lags.items():
            gauge.labels(topic, str(partition), group).set(lag)
