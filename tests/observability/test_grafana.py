"""Grafana provisioning, checked structurally (no Grafana binary here): fixed uids, the datasource
by uid everywhere, secrets from the environment, and alert rules that agree with Prometheus'."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.producer.venues import VENUES
from tests.observability.contract import (
    DATASOURCE_REF,
    DATASOURCE_UID,
    EXPRESSION_UID,
    GRAFANA_DIR,
    PROMETHEUS_DIR,
    REPO,
    RULES_DIR,
    RUNBOOK,
)
from tests.observability.queries import (
    DASHBOARDS_DIR,
    alert_rule_files,
    dashboard_files,
    iter_alert_rules,
    iter_panels,
    load_dashboard,
    load_yaml,
    variables_in,
)

EXPECTED_DASHBOARDS = {"arb-live-spread", "arb-pipeline-health"}
GRAFANA_BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}
EXPRESSION_TYPES = {"reduce", "threshold", "math", "classic_conditions", "resample"}
ENV_REFERENCE = re.compile(r"^\$\{?[A-Z][A-Z0-9_]*\}?$")
WEBHOOK_LITERAL = re.compile(r"discord(?:app)?\.com/api/webhooks", re.IGNORECASE)
CONTAINER_PROVISIONING = "/etc/grafana/provisioning"


def yaml_files(folder: str) -> list[Path]:
    return sorted((GRAFANA_DIR / folder).glob("*.y*ml"))


def dashboards() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, load_dashboard(path)) for path in dashboard_files()]


def grafana_rules() -> list[dict[str, Any]]:
    return [rule for path in alert_rule_files() for _, rule in iter_alert_rules(path)]


def contact_points() -> list[dict[str, Any]]:
    return [cp for p in yaml_files("alerting") for cp in load_yaml(p).get("contactPoints", [])]


def prometheus_alerts() -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


# Datasource -------------------------------------------------------------------------------------


def test_one_prometheus_datasource_with_fixed_uid_and_url_from_env() -> None:
    sources = [ds for p in yaml_files("datasources") for ds in load_yaml(p)["datasources"]]
    assert len(sources) == 1
    (source,) = sources
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "${PROMETHEUS_URL}"


# Dashboards -------------------------------------------------------------------------------------


def dashboard_provider() -> dict[str, Any]:
    providers = load_yaml(GRAFANA_DIR / "dashboards" / "dashboards.yml")["providers"]
    assert len(providers) == 1
    return dict(providers[0])


def test_dashboard_provider_has_fixed_folder_uid_and_points_at_definitions() -> None:
    provider = dashboard_provider()
    assert provider["folder"]
    assert provider["folderUid"]
    path = provider["options"]["path"]
    assert path.startswith(CONTAINER_PROVISIONING + "/")
    local = GRAFANA_DIR / path.removeprefix(CONTAINER_PROVISIONING + "/")
    assert local == DASHBOARDS_DIR
    assert dashboard_files(), f"no dashboards in {DASHBOARDS_DIR}"


def test_dashboard_uids_and_titles_present_and_unique() -> None:
    uids = [d.get("uid") for _, d in dashboards()]
    titles = [d.get("title") for _, d in dashboards()]
    assert all(uids) and all(titles)
    assert len(set(uids)) == len(uids)
    assert len(set(titles)) == len(titles)
    assert set(uids) == EXPECTED_DASHBOARDS


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_panels_have_unique_ids_and_titles(path: Path) -> None:
    panels = list(iter_panels(load_dashboard(path)))
    ids = Counter(p.get("id") for p in panels)
    titles = Counter(p.get("title") for p in panels)
    assert None not in ids and "" not in titles and None not in titles
    assert [i for i, n in ids.items() if n > 1] == []
    assert [t for t, n in titles.items() if n > 1] == []


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_every_panel_and_target_uses_the_datasource_by_uid(path: Path) -> None:
    dashboard = load_dashboard(path)
    for panel in iter_panels(dashboard):
        assert panel.get("datasource") == DATASOURCE_REF, f"panel {panel.get('id')}"
        for target in panel.get("targets", []):
            assert target.get("datasource") == DATASOURCE_REF, f"panel {panel['id']} target"
            assert target.get("expr", "").strip(), f"panel {panel['id']} target without expr"
        if panel.get("type") != "row":
            assert panel.get("targets"), f"panel {panel['id']} queries nothing"
    for variable in dashboard["templating"]["list"]:
        assert variable.get("datasource") == DATASOURCE_REF, f"variable {variable['name']}"


def _datasource_refs(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        if "datasource" in node:
            yield node["datasource"]
        for value in node.values():
            yield from _datasource_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _datasource_refs(value)


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_no_other_datasource_anywhere_in_the_dashboard(path: Path) -> None:
    refs = list(_datasource_refs(load_dashboard(path)))
    assert refs
    assert [ref for ref in refs if ref != DATASOURCE_REF] == []


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_symbol_and_venue_variables_and_no_undefined_ones(path: Path) -> None:
    dashboard = load_dashboard(path)
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"symbol", "exchange"} <= defined
    allowed = defined | GRAFANA_BUILTIN_VARIABLES
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            unknown = variables_in(target["expr"]) - allowed
            assert not unknown, f"panel {panel['id']} uses undefined {unknown}"


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_panels_do_not_overlap(path: Path) -> None:
    taken: dict[tuple[int, int], int] = {}
    for panel in iter_panels(load_dashboard(path)):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, f"panel {panel['id']} is wider than the grid"
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"panels {taken[(x, y)]} and {panel['id']} overlap"
                taken[(x, y)] = panel["id"]


# Alerting ---------------------------------------------------------------------------------------


def _walk_routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield route
    for child in route.get("routes", []):
        yield from _walk_routes(child)


def test_alerting_files_are_provisioning_format_v1() -> None:
    files = yaml_files("alerting")
    assert files
    for path in files:
        assert load_yaml(path).get("apiVersion") == 1, path.name


def test_grafana_rule_uids_are_fixed_and_unique() -> None:
    uids = [rule.get("uid") for rule in grafana_rules()]
    assert uids and all(uids)
    assert len(set(uids)) == len(uids)


def test_rule_groups_name_a_folder_other_than_the_dashboards_one() -> None:
    # Grafana provisions alert rules before dashboards and creates their folder by title with a
    # random uid; sharing the dashboards' title would leave two folders of that name.
    dashboards_folder = dashboard_provider()["folder"]
    for path in alert_rule_files():
        for group in load_yaml(path)["groups"]:
            assert group["folder"], group["name"]
            assert group["folder"] != dashboards_folder
            assert group["interval"]


def test_grafana_rule_queries_use_the_datasource_or_expressions() -> None:
    for rule in grafana_rules():
        ref_ids = [item["refId"] for item in rule["data"]]
        assert len(set(ref_ids)) == len(ref_ids), rule["uid"]
        assert rule["condition"] in ref_ids, rule["uid"]
        for item in rule["data"]:
            model = item["model"]
            where = f"{rule['uid']} {item['refId']}"
            assert model["refId"] == item["refId"], where
            if item["datasourceUid"] == DATASOURCE_UID:
                assert model.get("datasource", DATASOURCE_REF) == DATASOURCE_REF, where
                assert model["expr"].strip(), where
            else:
                assert item["datasourceUid"] == EXPRESSION_UID, where
                assert model["datasource"]["uid"] == EXPRESSION_UID, where
                assert model["type"] in EXPRESSION_TYPES, where
                if model["type"] == "math":  # refers to other queries as $A
                    refs = re.findall(r"\$\{?([A-Za-z]\w*)", model["expression"])
                    assert refs and set(refs) <= set(ref_ids), where
                else:
                    assert model["expression"] in ref_ids, where


def test_grafana_rules_are_generated_from_the_prometheus_alerts() -> None:
    """The checked-in file is what scripts/generate_grafana_rules.py writes today: no hand copy
    to drift (the script's --check does the same)."""
    generator = _generator()
    assert alert_rule_files() == [generator.TARGET]
    assert generator.TARGET.read_text(encoding="utf-8") == generator.render(), (
        "grafana/provisioning/alerting/rules.yml is stale: run scripts/generate_grafana_rules.py")


def test_grafana_rules_mirror_the_prometheus_alerts() -> None:
    """Every alert, by name, with its severity, `for`, runbook and its own PromQL as query A."""
    alerts = prometheus_alerts()
    rules = {rule["title"]: rule for rule in grafana_rules()}
    assert set(rules) == set(alerts)
    for title, rule in rules.items():
        alert = alerts[title]
        assert rule["labels"]["severity"] == alert["labels"]["severity"], title
        assert rule["for"] == alert["for"], title
        for key in ("summary", "description", "runbook_url"):
            assert rule["annotations"].get(key), f"{title}: no {key}"
        assert rule["annotations"]["runbook_url"] == alert["annotations"]["runbook_url"], title
        (query,) = [d for d in rule["data"] if d["datasourceUid"] == DATASOURCE_UID]
        assert query["model"]["expr"] == alert["expr"].strip(), title
        assert "$value " not in str(rule["annotations"]), f"{title}: Prometheus' $value"


def test_the_generator_translates_values_and_refuses_what_it_cannot() -> None:
    generator = _generator()
    text = generator.annotation('{{ $value | humanize }} of {{ $labels.job }}', "x")
    assert text == '{{ $values.A.Value | humanize }} of {{ $labels.job }}'
    with pytest.raises(ValueError, match="Grafana does not have"):
        generator.annotation("{{ $externalLabels.cluster }}", "x")
    with pytest.raises(ValueError, match="no Grafana translation"):
        generator.grafana_rule({"alert": "A", "expr": "up == 0", "keep_firing_for": "1m"})


def _generator() -> Any:
    path = REPO / "scripts" / "generate_grafana_rules.py"
    spec = importlib.util.spec_from_file_location("generate_grafana_rules", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_discord_contact_point_takes_its_url_from_the_environment() -> None:
    receivers = [r for cp in contact_points() for r in cp["receivers"]]
    discord = [r for r in receivers if r["type"] == "discord"]
    assert discord
    for receiver in discord:
        assert receiver["uid"]
        url = receiver["settings"]["url"]
        assert ENV_REFERENCE.match(url), f"contact point url {url!r} is not an env reference"
        assert "DISCORD_WEBHOOK_URL" in url


def test_no_webhook_url_is_written_anywhere() -> None:
    files = [*GRAFANA_DIR.rglob("*"), *PROMETHEUS_DIR.rglob("*"), RUNBOOK]
    for path in sorted(p for p in files if p.is_file()):
        assert not WEBHOOK_LITERAL.search(path.read_text(encoding="utf-8")), path


def test_notification_policy_routes_to_defined_contact_points() -> None:
    names = {cp["name"] for cp in contact_points()}
    policies = [p for f in yaml_files("alerting") for p in load_yaml(f).get("policies", [])]
    assert len(policies) == 1
    for route in _walk_routes(policies[0]):
        if "receiver" in route:
            assert route["receiver"] in names
    assert policies[0]["receiver"] in names


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_venue_choices_come_from_the_data_so_every_venue_is_listed(path: Path) -> None:
    """The venue variable asks Prometheus which venues report (label_values, no fixed options,
    no regex), and no panel names a venue: bybit and bitstamp, or any venue added later, show
    up in every panel with no edit here."""
    dashboard = load_dashboard(path)
    (venue,) = [v for v in dashboard["templating"]["list"] if v["name"] == "exchange"]
    assert {"bybit", "bitstamp"} <= set(VENUES)
    assert venue["type"] == "query"
    assert re.fullmatch(r"label_values\(arb_\w+(\{[^}]*\})?, exchange\)",
                        venue["query"]["query"]), venue["query"]
    assert (venue["regex"], venue["options"], venue["includeAll"]) == ("", [], True)
    text = path.read_text(encoding="utf-8").lower()
    named = sorted(name for name in VENUES if re.search(rf"\b{name}\b", text))
    assert named == [], f"{path.name} names venues {named}: list them from the data instead"
