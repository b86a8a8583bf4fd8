"""Units follow the names: each Grafana panel's unit is the one its queries' names state, and an
alert compares a value with a threshold of the same unit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.observability.queries import dashboard_files, iter_panels, load_dashboard
from tests.observability.test_prometheus import rules_of
from tests.observability.units import (
    BPS,
    COUNT,
    GRAFANA_UNITS,
    PER_MINUTE,
    PER_SECOND,
    RECORDS,
    SECONDS,
    USD,
    expr_unit,
    name_unit,
)


@pytest.mark.parametrize(("expr", "unit"), [
    ("arb:feed_messages:rate1m", PER_SECOND),
    ("arb:alerts_sent:rate1m * 60", PER_MINUTE),
    ("sum(increase(arb_alerts_sent_total[1h]))", COUNT),
    ("sum by (le) (increase(arb_episode_duration_seconds_bucket[1h]))", COUNT),
    ("count by (symbol) (arb_spread_usd)", COUNT),
    ("rate(arb_feed_messages_total[1m])", PER_SECOND),
    ("sum by (job_name) (flink_taskmanager_job_task_numRecordsInPerSecond)", PER_SECOND),
    ("arb:detection_latency_seconds:p99", SECONDS),
    ("arb:threshold:quotes_superseded_per_second", PER_SECOND),
    ("arb:threshold:consumer_lag_records", RECORDS),
    ("arb:kafka_consumer_lag_records:sum", RECORDS),
    ("max(arb_net_spread_bps)", BPS),
    ('arb:net_spread_usd:max{symbol=~"$symbol"}', USD),
    ("arb:kafka_backlog_records:max", RECORDS),
    ("arb:feed_reconnects:increase15m", COUNT),
])
def test_expression_units(expr: str, unit: str) -> None:
    assert expr_unit(expr) == unit


def test_names_of_different_units_are_refused() -> None:
    with pytest.raises(ValueError, match="different units"):
        expr_unit("arb_net_spread_bps * arb_spread_usd")


def _panel_problems(panel: dict[str, Any]) -> list[str]:
    """What is wrong with one panel's units: each target's unit must be the panel's (or, in a
    table, that of the target's column)."""
    where = f"panel {panel['id']} {panel['title']!r}"
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    overrides = panel.get("fieldConfig", {}).get("overrides", [])
    column_units = {
        o["matcher"]["options"]: p["value"]
        for o in overrides if o["matcher"]["id"] == "byName"
        for p in o["properties"] if p["id"] == "unit"
    }
    renames: dict[str, str] = {}
    for transformation in panel.get("transformations", []):
        renames |= transformation.get("options", {}).get("renameByName", {})
    problems = []
    for target in panel.get("targets", []):
        unit = expr_unit(target["expr"])
        if panel["type"] == "table":
            column = renames.get(f"Value #{target['refId']}", f"Value #{target['refId']}")
            shown = column_units.get(column, defaults.get("unit", "none"))
            where_target = f"{where} column {column!r}"
        else:
            shown = defaults.get("unit", "none")
            where_target = f"{where} target {target['refId']}"
        if shown not in GRAFANA_UNITS[unit]:
            problems.append(f"{where_target}: unit {shown!r}, its query is in {unit} "
                            f"({' or '.join(sorted(GRAFANA_UNITS[unit]))})")
    if panel["type"] != "table" and column_units:
        problems.append(f"{where}: unit overrides by name {sorted(column_units)}")
    return problems


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_every_panel_unit_matches_its_queries(path: Path) -> None:
    problems = [p for panel in iter_panels(load_dashboard(path)) for p in _panel_problems(panel)]
    assert not problems, "\n".join(problems)


_COMPARED = re.compile(r"^(?P<lhs>.+?)\s*[<>]=?\s*scalar\((?P<threshold>arb:threshold:[a-z_]+)\)",
                       re.S)


def test_alerts_compare_values_with_thresholds_of_the_same_unit() -> None:
    """A threshold named ..._records is compared with a series named ..._records."""
    compared = 0
    for rule in rules_of("alert"):
        match = _COMPARED.match(rule["expr"].strip())
        if not match:
            continue
        compared += 1
        lhs, threshold = expr_unit(match["lhs"]), name_unit(match["threshold"])
        assert lhs == threshold, (
            f"{rule['alert']}: {match['lhs'].strip()!r} is in {lhs}, {match['threshold']} in "
            f"{threshold}: name both with the unit")
    assert compared >= 5
