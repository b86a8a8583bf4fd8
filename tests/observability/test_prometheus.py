"""Prometheus configs and rules: promtool checks and unit tests, and house rules for alerts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.observability.contract import (
    PROMETHEUS_CONFIGS,
    REPO,
    RULE_TESTS_DIR,
    RULES_DIR,
)
from tests.observability.queries import load_yaml

SEVERITIES = {"critical", "warning", "info"}
CAMEL_CASE = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+$")
EXPECTED_JOBS = {"producer", "alerter", "dashboard", "flink", "prometheus"}
#: Jobs of the local run only: the Flink job wrapper runs the job itself there (under compose
#: the cluster runs it, and its reporter is the flink job).
LOCAL_ONLY_JOBS = {"flink-job"}


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*_test.yaml"))


def rules_of(kind: str) -> list[dict[str, Any]]:
    """Every rule with key ``kind`` ("alert" or "record") across the rule files."""
    return [
        rule
        for path in rule_files()
        for group in load_yaml(path).get("groups", [])
        for rule in group.get("rules", [])
        if kind in rule
    ]


def run_promtool(promtool: str, *args: str) -> None:
    """Runs promtool from the repository root; fails the test with promtool's own output."""
    result = subprocess.run(
        [promtool, *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"promtool {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}",
            pytrace=False,
        )


@pytest.mark.parametrize("config", PROMETHEUS_CONFIGS, ids=lambda p: p.name)
def test_promtool_check_config(promtool: str, config: Path) -> None:
    # Also checks the rule files the config loads; compose hostnames are not resolved.
    run_promtool(promtool, "check", "config", str(config.relative_to(REPO)))


def test_promtool_check_rules(promtool: str) -> None:
    assert rule_files(), f"no rule files in {RULES_DIR}"
    run_promtool(promtool, "check", "rules", *(str(p.relative_to(REPO)) for p in rule_files()))


def test_promtool_test_rules(promtool: str) -> None:
    assert rule_test_files(), f"no *_test.yaml in {RULE_TESTS_DIR}"
    run_promtool(promtool, "test", "rules", *(str(p.relative_to(REPO)) for p in rule_test_files()))


@pytest.mark.parametrize("config", PROMETHEUS_CONFIGS, ids=lambda p: p.name)
def test_config_scrapes_every_service_and_loads_all_rules(config: Path) -> None:
    parsed = load_yaml(config)
    jobs = {job["job_name"] for job in parsed["scrape_configs"]}
    local = config.name == "prometheus.yml"
    assert jobs == EXPECTED_JOBS | (LOCAL_ONLY_JOBS if local else set())
    assert parsed["global"]["scrape_interval"] == "5s"
    assert parsed["rule_files"] == ["rules/*.yml"]


def test_compose_config_uses_service_hostnames() -> None:
    targets = {
        job["job_name"]: sorted(t for sc in job["static_configs"] for t in sc["targets"])
        for job in load_yaml(PROMETHEUS_CONFIGS[1])["scrape_configs"]
    }
    assert targets == {
        "producer": ["producer:8001"],
        "alerter": ["alerter:8002"],
        "dashboard": ["dashboard:8003"],
        "flink": ["flink-jobmanager:9249", "flink-taskmanager:9249"],
        "prometheus": ["prometheus:9090"],
    }


def test_every_alert_follows_the_house_rules() -> None:
    alerts = rules_of("alert")
    assert alerts
    problems = []
    for rule in alerts:
        name = rule["alert"]
        annotations = rule.get("annotations", {})
        if not CAMEL_CASE.match(name):
            problems.append(f"{name}: name is not CamelCase")
        if not rule.get("for"):
            problems.append(f"{name}: no `for` duration")
        if rule.get("labels", {}).get("severity") not in SEVERITIES:
            problems.append(f"{name}: labels.severity not one of {sorted(SEVERITIES)}")
        for key in ("summary", "description", "runbook_url"):
            if not annotations.get(key):
                problems.append(f"{name}: no {key} annotation")
        if "{{" not in annotations.get("description", ""):
            problems.append(f"{name}: description shows no label or value")
    assert not problems, "\n".join(problems)


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in rules_of("alert")]
    assert len(names) == len(set(names))


def test_thresholds_are_named_once() -> None:
    """Alerts compare against arb:threshold:* rules; a literal compared with is only 0 or 1."""
    records = {rule["record"] for rule in rules_of("record")}
    thresholds = {name for name in records if name.startswith("arb:threshold:")}
    for rule in rules_of("alert"):
        used = set(re.findall(r"arb:threshold:[a-z_]+", rule["expr"]))
        assert used <= thresholds, f"{rule['alert']} uses undefined {used - thresholds}"
        compared = set(re.findall(r"(?:[<>]=?|[=!]=)\s*(?:bool\s+)?(\d+(?:\.\d+)?)", rule["expr"]))
        assert compared <= {"0", "1"}, f"{rule['alert']} hard-codes {compared - {'0', '1'}}"


def _tested_alerts() -> tuple[set[str], set[str]]:
    """Alert names with a firing case, and with a not-firing case, in the promtool tests."""
    firing, quiet = set(), set()
    for path in rule_test_files():
        for test in load_yaml(path).get("tests", []):
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    return firing, quiet


def test_every_alert_has_firing_and_not_firing_promtool_cases() -> None:
    names = {rule["alert"] for rule in rules_of("alert")}
    firing, quiet = _tested_alerts()
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested not firing"


def test_every_recording_rule_has_a_promtool_case() -> None:
    recorded = {rule["record"] for rule in rules_of("record")}
    tested = {
        case["expr"].strip()
        for path in rule_test_files()
        for test in load_yaml(path).get("tests", [])
        for case in test.get("promql_expr_test", [])
    }
    assert recorded - tested == set(), "recording rules without a promql_expr_test"


def test_recording_rule_names_follow_level_metric_operations() -> None:
    pattern = re.compile(r"^arb:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")
    bad = [r["record"] for r in rules_of("record") if not pattern.match(r["record"])]
    assert not bad
