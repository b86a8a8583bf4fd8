"""Dashboards and rules against the contracts around them: metric names (DESIGN.md, the services'
code, Flink's reporter), recording rule names, and the runbook's headings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from services.common.config import DashboardSettings, LocalRunSettings
from tests.observability.contract import (
    COUNTERS,
    GAUGES,
    HISTOGRAMS,
    METRIC_NAME,
    NOT_IN_DESIGN,
    RECORDING_NAME,
    RENAMED_FROM_DESIGN,
    REPO,
    RULES_DIR,
    RUNBOOK,
    design_doc,
    family,
    known_series_names,
)
from tests.observability.queries import (
    alert_rule_files,
    dashboard_files,
    iter_alert_rules,
    load_yaml,
)

#: A declaration: prometheus_client's class, or a subclass named after it (``_FlushedCounter``).
SERVICE_METRIC = re.compile(
    r"\b\w*?(Counter|Gauge|Histogram|Summary)\(\s*\"(arb_[a-z_]+)\"")


def rule_texts() -> Iterator[tuple[str, str]]:
    """(where, text) for every expression and annotation in the Prometheus and Grafana rules."""
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule["record"]
                yield f"{path.name} {name}", rule["expr"]
                for key, value in rule.get("annotations", {}).items():
                    yield f"{path.name} {name} {key}", value
    for path in alert_rule_files():
        for _, rule in iter_alert_rules(path):
            for item in rule["data"]:
                expr = str(item["model"].get("expr", ""))
                yield f"{path.name} {rule['uid']} {item['refId']}", expr
            for key, value in rule.get("annotations", {}).items():
                yield f"{path.name} {rule['uid']} {key}", value


def all_texts() -> Iterator[tuple[str, str]]:
    """Rules as above, plus each dashboard whole (queries, variables, titles, descriptions)."""
    yield from rule_texts()
    for path in dashboard_files():
        yield path.name, path.read_text(encoding="utf-8")


def recording_rules() -> set[str]:
    return {
        rule["record"]
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def used_metric_families() -> set[str]:
    return {family(m) for _, text in all_texts() for m in METRIC_NAME.findall(text)}


def test_every_metric_name_used_is_known() -> None:
    known = known_series_names()
    unknown = {
        f"{where}: {name}"
        for where, text in all_texts()
        for name in METRIC_NAME.findall(text)
        if name not in known
    }
    assert not unknown, "metrics in no contract:\n" + "\n".join(sorted(unknown))


def test_every_recording_rule_used_is_defined() -> None:
    defined = recording_rules()
    undefined = {
        f"{where}: {name}"
        for where, text in all_texts()
        for name in RECORDING_NAME.findall(text)
        if name not in defined
    }
    assert not undefined, "undefined recording rules:\n" + "\n".join(sorted(undefined))


def test_contract_matches_design_doc() -> None:
    path = design_doc()
    if path is None:
        pytest.skip("DESIGN.md not found (set ARB_DESIGN_DOC)")
    text = path.read_text(encoding="utf-8")
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    in_design = {RENAMED_FROM_DESIGN.get(name, name)
                 for name in re.findall(r"\barb_[a-z_]+", section)}
    ours = COUNTERS | GAUGES | HISTOGRAMS
    assert in_design == ours - NOT_IN_DESIGN


def service_metrics() -> set[str]:
    """arb_* families the services' code declares with prometheus_client."""
    declared = set()
    for path in sorted((REPO / "services").rglob("*.py")):
        declared |= {name for _, name in SERVICE_METRIC.findall(path.read_text(encoding="utf-8"))}
    return declared


def test_metrics_used_are_declared_by_the_services() -> None:
    declared = service_metrics()
    if not declared:
        pytest.skip("no services declare metrics yet")
    used = {m for m in used_metric_families() if m.startswith("arb_")}
    assert used - declared == set(), "dashboards or rules use metrics no service exports"


def test_declared_histograms_and_counters_match_the_contract() -> None:
    """A histogram declared as a gauge (or the reverse) would break the _bucket queries."""
    kinds: dict[str, str] = {}
    for path in sorted((REPO / "services").rglob("*.py")):
        kinds |= {name: kind for kind, name in SERVICE_METRIC.findall(path.read_text("utf-8"))}
    expected = {**dict.fromkeys(COUNTERS, "Counter"), **dict.fromkeys(GAUGES, "Gauge"),
                **dict.fromkeys(HISTOGRAMS, "Histogram")}
    mismatched = {
        name: (kind, expected[name])
        for name, kind in kinds.items()
        if name in expected and kind != expected[name]
    }
    assert not mismatched


# Runbook ----------------------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*$", RUNBOOK.read_text(encoding="utf-8"), re.M)
    return {github_anchor(h) for h in headings}


def prometheus_runbook_urls() -> dict[str, str]:
    """Alert name -> runbook_url, for the Prometheus alerts."""
    return {
        rule["alert"]: rule["annotations"]["runbook_url"]
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def grafana_runbook_urls() -> dict[str, str]:
    """Rule uid -> runbook_url, for the Grafana-managed alert rules."""
    return {
        rule["uid"]: rule["annotations"]["runbook_url"]
        for path in alert_rule_files()
        for _, rule in iter_alert_rules(path)
    }


def test_every_runbook_url_is_absolute_and_has_a_heading() -> None:
    """<ARB_RUNBOOK_URL's default>#<heading>: a link that works where the alert is read (Discord),
    to the page the dashboard serves docs/runbook.md on."""
    anchors = runbook_anchors()
    base = LocalRunSettings.model_fields["runbook_url"].default
    for name, url in [*prometheus_runbook_urls().items(), *grafana_runbook_urls().items()]:
        target, _, anchor = url.partition("#")
        assert urlparse(url).scheme in {"http", "https"}, f"{name}: {url} is not absolute"
        assert target == base, f"{name}: {url} is not {base}#<heading>"
        assert anchor in anchors, f"{name}: no heading for #{anchor} in {RUNBOOK.name}"


def test_the_runbook_page_is_served_where_the_links_point() -> None:
    """ARB_RUNBOOK_URL's default is the dashboard (its default port) at the path of its runbook
    page, a Streamlit page named after its file."""
    url = urlparse(LocalRunSettings.model_fields["runbook_url"].default)
    assert url.port == DashboardSettings.model_fields["port"].default
    page = REPO / "services" / "dashboard" / "pages" / f"{url.path.strip('/')}.py"
    assert page.is_file(), f"no dashboard page {page.relative_to(REPO)} for {url.path}"


def test_every_alert_has_its_own_runbook_section() -> None:
    anchors = [url.partition("#")[2] for url in prometheus_runbook_urls().values()]
    assert len(anchors) == len(set(anchors)), "two alerts share a runbook section"


def test_runbook_sections_say_what_to_check_and_do() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    assert sections
    for section in sections:
        name = section.splitlines()[0]
        for part in ("**Meaning.**", "**Check.**", "**Act.**"):
            assert part in section, f"runbook section {name} has no {part}"

