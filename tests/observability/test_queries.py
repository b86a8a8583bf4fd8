"""Every query Grafana runs parses and evaluates in a real Prometheus (with no data: an empty
answer is fine, a syntax or type error is not)."""

from __future__ import annotations

import time

import pytest

from tests.observability.prom_server import PrometheusServer
from tests.observability.queries import (
    Query,
    alert_rule_queries,
    all_queries,
    dashboard_queries,
    render,
    variable_promql,
    variable_queries,
)


def test_queries_are_found_in_every_source() -> None:
    assert len(dashboard_queries()) >= 20
    assert len(variable_queries()) == 4  # symbol and exchange on each of the two dashboards
    assert len(alert_rule_queries()) >= 5


def test_render_replaces_grafana_variables() -> None:
    assert render('rate(x{a=~"$symbol"}[$__rate_interval])') == 'rate(x{a=~".*"}[1m])'
    assert render("x{a=~\"${exchange}\"}", {"exchange": "binance"}) == 'x{a=~"binance"}'
    group_ref = 'label_replace(x, "b", "$1", "a", "(.*)")'
    assert render(group_ref) == group_ref
    with pytest.raises(KeyError):
        render("x{a=~\"$nope\"}")


def test_variable_query_becomes_promql() -> None:
    promql = variable_promql('label_values(up{job="a"}, instance)')
    assert promql == 'group by (instance) (up{job="a"})'
    with pytest.raises(ValueError, match="unsupported"):
        variable_promql("label_values(instance)")


def test_every_query_parses_in_prometheus(prometheus_server: PrometheusServer) -> None:
    failures = []
    for query in all_queries():
        answer = prometheus_server.query(query.promql())
        if answer.get("status") != "success":
            failures.append(f"{query}\n  {query.promql()}\n  {answer.get('error')}")
    assert not failures, "queries Prometheus rejects:\n" + "\n".join(failures)


def test_a_broken_query_is_reported(prometheus_server: PrometheusServer) -> None:
    """The check above can fail: Prometheus answers an unparsable query with an error."""
    broken = Query("x", "y", "sum by (exchange (arb_feed_connected)", instant=True)
    assert prometheus_server.query(broken.promql())["status"] == "error"


def test_every_rule_evaluates_without_error(prometheus_server: PrometheusServer) -> None:
    """Loaded into a real server, every group evaluates and no rule reports an error."""
    deadline = time.monotonic() + 10
    while True:
        groups = prometheus_server.rule_groups()
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule["health"] != "unknown" for rule in rules):
            break
        assert time.monotonic() < deadline, "rules not evaluated within 10 s"
        time.sleep(0.2)
    errors = [f"{r['name']}: {r.get('lastError')}" for r in rules if r["health"] != "ok"]
    assert not errors, "\n".join(errors)
    answer = prometheus_server.query("arb:threshold:spread_usd")
    assert [float(s["value"][1]) for s in answer["data"]["result"]] == [50.0]
