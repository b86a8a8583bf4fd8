"""Every PromQL query Grafana runs: dashboard panels, template variables and alert rules.

An end-to-end test evaluates them against a live Prometheus (``Query.promql()`` fills in
Grafana's variables); ``test_queries.py`` checks that each one parses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.observability.contract import DATASOURCE_UID, GRAFANA_DIR, REPO

DASHBOARDS_DIR = GRAFANA_DIR / "dashboards" / "definitions"
ALERTING_DIR = GRAFANA_DIR / "alerting"

#: What Grafana's variables become outside Grafana: every symbol and venue, and the intervals
#: Grafana would pick for a 15-minute view of 5 s scrapes.
DEFAULT_VARIABLES: Mapping[str, str] = {
    "symbol": ".*",
    "exchange": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "15m",
}

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(?!\d)(\w+)")  # $1 is a label_replace group, not a var
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.+),\s*(?P<label>\w+)\s*\)\s*$", re.S)


@dataclass(frozen=True)
class Query:
    """One PromQL expression as provisioned, with where it comes from."""

    source: str  # file, relative to the repository
    where: str  # panel, variable or rule inside that file
    expr: str  # as written, Grafana variables included
    instant: bool  # Grafana runs it as an instant query (stat, table, alert rule)

    def promql(self, variables: Mapping[str, str] | None = None) -> str:
        """The expression with Grafana's variables replaced, ready for /api/v1/query."""
        return render(self.expr, variables)

    def __str__(self) -> str:
        return f"{self.source}: {self.where}"


def render(expr: str, variables: Mapping[str, str] | None = None) -> str:
    """Replace $name and ${name} with values; an unknown variable raises KeyError."""
    values = {**DEFAULT_VARIABLES, **(variables or {})}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(substitute, expr)


def variables_in(expr: str) -> set[str]:
    """Names of the Grafana variables an expression uses."""
    return {m.group(1) or m.group(2) for m in _VARIABLE.finditer(expr)}


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def alert_rule_files() -> list[Path]:
    return sorted(p for p in ALERTING_DIR.glob("*.y*ml") if "groups" in load_yaml(p))


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def iter_alert_rules(path: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(group, rule) for every Grafana-managed alert rule in a provisioning file."""
    for group in load_yaml(path).get("groups", []):
        for rule in group.get("rules", []):
            yield group, rule


def variable_promql(query: str) -> str:
    """label_values(selector, label), Grafana's variable query, as the PromQL it amounts to."""
    match = _LABEL_VALUES.match(query)
    if not match:
        raise ValueError(f"unsupported variable query {query!r}: use label_values(selector, label)")
    return f"group by ({match['label']}) ({match['selector'].strip()})"


def _relative(path: Path) -> str:
    return str(path.relative_to(REPO))


def dashboard_queries() -> list[Query]:
    """Every panel target's expression."""
    found = []
    for path in dashboard_files():
        for panel in iter_panels(load_dashboard(path)):
            for target in panel.get("targets", []):
                where = f"panel {panel.get('id')} {panel.get('title')!r} target {target['refId']}"
                found.append(Query(
                    _relative(path), where, target["expr"],
                    instant=bool(target.get("instant")) and not target.get("range"),
                ))
    return found


def variable_queries() -> list[Query]:
    """Every template variable's label_values() query, as PromQL."""
    found = []
    for path in dashboard_files():
        for variable in load_dashboard(path).get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            raw = variable["query"]
            text = raw["query"] if isinstance(raw, Mapping) else raw
            found.append(Query(
                _relative(path), f"variable {variable['name']}", variable_promql(text),
                instant=True,
            ))
    return found


def alert_rule_queries() -> list[Query]:
    """Every Grafana alert rule's Prometheus query (expressions on __expr__ are not PromQL)."""
    found = []
    for path in alert_rule_files():
        for _, rule in iter_alert_rules(path):
            for item in rule.get("data", []):
                if item.get("datasourceUid") != DATASOURCE_UID:
                    continue
                where = f"rule {rule['uid']} ({rule['title']}) query {item['refId']}"
                found.append(Query(
                    _relative(path), where, item["model"]["expr"],
                    instant=bool(item["model"].get("instant", True)),
                ))
    return found


def all_queries() -> list[Query]:
    return dashboard_queries() + variable_queries() + alert_rule_queries()
