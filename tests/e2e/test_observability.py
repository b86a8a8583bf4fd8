"""End to end for the monitoring: a real Prometheus, configured like prometheus/prometheus.yml and
loading prometheus/rules/, scrapes the running local stack - Tansu, the producer replaying the
recorded exchange messages at 1x in a loop (DEMO_MODE, so alerts flow), the Flink job in a
MiniCluster with checkpoints, the alerter posting to a local Discord stand-in - and answers every
query Grafana is provisioned with (dashboard panels, template variables, alert rules).

It shows that each query evaluates without error on real data, that the spread, feed, latency and
pipeline panels return data, that every scrape target is up and that the Flink metric names the
rules rely on are the ones this Flink version exports. The answers are saved to
test-output/<test>/ (observability-summary.json, with the logs and the generated config).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from services.common.broker import LocalBroker, free_port
from services.common.kafka import ensure_topics
from tests.helpers import REPO, flink_env, produce_raw
from tests.observability.contract import FLINK_METRICS, PROMETHEUS_DIR
from tests.observability.prom_server import PrometheusServer, require_binary, retarget_config
from tests.observability.queries import (
    Query,
    all_queries,
    dashboard_files,
    iter_panels,
    load_dashboard,
    variable_queries,
)
from tests.support.discord_standin import DiscordStandIn

pytestmark = pytest.mark.integration

#: Scrape jobs of prometheus/prometheus.yml that this test runs, besides Prometheus itself.
SERVICES = ("producer", "alerter", "flink", "flink-job", "dashboard")

#: Panel targets that may legitimately show no data on a healthy replay, by panel title and
#: refId: counters whose series appear with their first event, and no event happens here.
#: Every other target of every panel must return at least one finite value. That covers the
#: panels the issue names: spread (arbitrage-live-spread.json: best, per venue pair, net,
#: profit, bid/ask, the table), feed (pipeline-health.json "Feeds" row: connected, messages,
#: last message age, feed latency), latency (feed, Kafka delivery, detection, alert delivery,
#: watermark lag, checkpoint duration) and the pipeline panels in between.
NO_DATA_EXPECTED: Mapping[tuple[str, str], str] = {
    ("Reconnects per venue (last 15 min)", "A"): "a replay never reconnects",
    ("Feed errors per second", "A"): "the recordings parse cleanly",
    ("Produce errors per second", "A"): "the broker accepts every record",
    ("Discord deliveries per minute", "B"): "the Discord stand-in accepts every message",
    # The drop counters have a child per venue only after its first drop.
    ("Quotes superseded before Kafka per second", "A"): "the broker keeps up: none superseded",
    ("Trades dropped before Kafka per minute", "A"): "the broker keeps up: none dropped",
    # DEMO_MODE's threshold is passed nearly all the time on the replay, so an episode, once
    # open, lasts a long while: none may have closed yet when the panels are read.
    ("Episodes opened and closed (per hour)", "B"): "DEMO_MODE: no episode may have closed",
    ("Closed episodes: capturable vs not", "A"): "DEMO_MODE: no episode may have closed",
    ("Closed episodes: capturable vs not", "B"): "DEMO_MODE: no episode may have closed",
    ("Episode duration p50/p99", "A"): "DEMO_MODE: no episode may have closed",
    ("Episode duration p50/p99", "B"): "DEMO_MODE: no episode may have closed",
    ("Opportunity durations, last hour (closed episodes)", "A"):
        "DEMO_MODE: no episode may have closed",
    ("Open opportunities by venue pair", "A"): "shows only pairs open at the moment of the query",
    # arb_executable_usd and arb_executable_profit_usd are absent for a pair while no ladder
    # size passes the rule: with the replay's spreads near the threshold, at a given moment
    # there may be none (the test waits until it has seen them once: EXECUTABLE).
    ("Executable size per venue pair (USD)", "A"):
        "shows only pairs executable at the moment of the query",
    ("Estimated profit at the executable size (USD)", "A"):
        "shows only pairs executable at the moment of the query",
}
#: Panels that may be empty at a given moment but must have shown data while the test waited.
EXECUTABLE = (("Executable size per venue pair (USD)", "A"),
              ("Estimated profit at the executable size (USD)", "A"))
#: Panel targets whose every value must be above zero, not just present: a zero rate would
#: pass a stalled pipeline off as data. Rates of a counter born at its first increment (alerts
#: sent) need a second increment inside the window, so these also mean "alerting for a while".
FLOWING: frozenset[tuple[str, str]] = frozenset({
    ("Messages per second per venue", "A"),
    ("Records produced per second", "A"),
    ("Flink records per second", "A"),
    ("Alerts per minute", "A"),
    ("Alerts sent in the last hour", "A"),
    ("Discord deliveries per minute", "A"),
    ("Venue pairs reporting a spread", "A"),
})

#: Bounded waits, seconds. Flink needs ~10-20 s to start and emit its first alert on 2 cores;
#: after that every rate and quantile needs two scrapes, 1 s apart.
READY_TIMEOUT_S = 100.0
POLL_S = 2.0
STOP_GRACE_S = 15.0
RANGE_S = 60.0  # the time span range queries (graph panels) are evaluated over


@dataclass
class Service:
    """One service as a child process in its own process group, output to a log file."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self, env: Mapping[str, str]) -> Service:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv, cwd=REPO, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # the Flink job's JVM goes down with it
        )
        return self

    def stop(self) -> None:
        """SIGTERM to the service (the Flink driver then stops its JVM itself), then SIGKILL to
        whatever is left of its process group after the grace period; safe to call twice."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=STOP_GRACE_S)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def check_alive(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{self.name} exited with code {code}:\n{tail}")


@dataclass(frozen=True)
class Target:
    """One panel target as Grafana would run it now."""

    dashboard: str
    title: str
    ref_id: str
    query: Query

    @property
    def key(self) -> tuple[str, str]:
        return (self.title, self.ref_id)

    def __str__(self) -> str:
        return f"{self.dashboard}: {self.title!r} target {self.ref_id}: {self.query.promql()}"


def panel_targets() -> list[Target]:
    found = []
    for path in dashboard_files():
        for panel in iter_panels(load_dashboard(path)):
            for target in panel.get("targets", []):
                query = Query(path.name, f"panel {panel['title']!r} target {target['refId']}",
                              target["expr"], instant=bool(target.get("instant")))
                found.append(Target(path.name, panel["title"], target["refId"], query))
    return found


def finite_samples(answer: Mapping[str, Any]) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of each instant-vector or scalar sample that is a number (NaN is a gap
    in a graph: a quantile of no observations)."""
    if answer.get("status") != "success":
        return []
    data = answer["data"]
    if data["resultType"] == "scalar":
        rows = [({}, data["result"][1])]
    else:
        rows = [(s["metric"], s["value"][1]) for s in data["result"]]
    return [(labels, float(v)) for labels, v in rows if math.isfinite(float(v))]


Samples = Callable[[str], list[tuple[dict[str, str], float]]]


def shortfalls(samples: Samples, targets: list[Target]) -> list[str]:
    """What is not yet as it should be: a target outside NO_DATA_EXPECTED with no finite value,
    or a FLOWING one with a value <= 0. ``samples(promql)`` gives a query's finite samples."""
    found = []
    for target in targets:
        if target.key in NO_DATA_EXPECTED:
            continue
        values = [value for _, value in samples(target.query.promql())]
        if not values:
            found.append(f"{target}\n    no data")
        elif target.key in FLOWING and min(values) <= 0:
            found.append(f"{target}\n    {values}: expected every value > 0")
    return found


def up_by_job(prom: PrometheusServer) -> dict[str, float]:
    return {s["metric"]["job"]: float(s["value"][1]) for s in prom.query("up")["data"]["result"]}


@contextlib.contextmanager
def running_stack(
    broker: LocalBroker, fixtures_dir: Path, output_dir: Path, tmp_path: Path,
    ports: Mapping[str, int], webhook_url: str,
) -> Iterator[list[Service]]:
    """Topics, then the Flink job, the alerter, the dashboard and the replay; all stopped on
    the way out, producer first (as ``arb start`` does), whatever happened."""
    topics = {k: f"{k}-obs" for k in ("prices", "spreads", "alerts", "episodes")}
    ensure_topics(broker.bootstrap_servers, topics.values(), partitions=1)
    # Two records the alerter cannot parse: the invalid-records panel gets its series.
    produce_raw(broker.bootstrap_servers, topics["alerts"], [b"\x00garbage", b'{"v":1}'])
    env = flink_env(
        broker.bootstrap_servers, topics,
        DEMO_MODE="TRUE",
        ARB_FLINK_METRICS_PORT=str(ports["flink"]),
        ARB_FLINK_WRAPPER_METRICS_PORT=str(ports["flink-job"]),
        ARB_CHECKPOINT_INTERVAL_MS="2000",  # checkpoint metrics within seconds
        ARB_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
        ARB_PRODUCER_METRICS_PORT=str(ports["producer"]),
        ARB_FIXTURES_DIR=str(fixtures_dir),
        ARB_ALERTER_METRICS_PORT=str(ports["alerter"]),
        ARB_DASHBOARD_METRICS_PORT=str(ports["dashboard"]),
        ARB_DASHBOARD_PORT=str(free_port()),
        ARB_HISTORY_DB=str(tmp_path / "alerts.db"),
        DISCORD_WEBHOOK_URL=webhook_url,
        # Deliveries every few seconds instead of every 30 s, with suppressed ones in between:
        # the sent and suppressed rates both get going within the test's wait.
        ARB_ALERT_COOLDOWN_SECONDS="5",
        ARB_DISCORD_MESSAGES="alerts",  # per-window deliveries and cooldown suppressions
    )
    py = sys.executable
    services = [
        Service("flink", [py, "-m", "flink.job"], output_dir / "flink.log"),
        Service("alerter", [py, "-m", "services.alerter"], output_dir / "alerter.log"),
        Service("dashboard", [py, "-m", "services.dashboard"], output_dir / "dashboard.log"),
        Service("producer", [py, "-m", "services.producer", "replay", "--speed", "1", "--loop"],
                output_dir / "producer.log"),
    ]
    with contextlib.ExitStack() as stack:
        for service in services:
            stack.callback(service.stop)  # unwinds last-started first: the producer
            service.start(env)
        yield services


def test_every_grafana_query_answers_on_the_running_stack(
    broker: LocalBroker, fixtures_dir: Path, output_dir: Path, tmp_path: Path,
) -> None:
    binary = require_binary("prometheus")
    started = time.monotonic()
    ports = {name: free_port() for name in SERVICES}
    prom = PrometheusServer(binary, tmp_path / "prometheus")
    (tmp_path / "prometheus").mkdir()
    prom.config = retarget_config(
        PROMETHEUS_DIR / "prometheus.yml",
        {**{name: [f"127.0.0.1:{port}"] for name, port in ports.items()},
         "prometheus": [f"127.0.0.1:{prom.port}"]},
    )
    (output_dir / "prometheus.yml").write_text(yaml.safe_dump(prom.config), encoding="utf-8")
    targets = panel_targets()
    unknown = (set(NO_DATA_EXPECTED) | FLOWING | set(EXECUTABLE)) - {t.key for t in targets}
    assert not unknown, f"panel targets the dashboards no longer have: {unknown}"

    summary: dict[str, Any] = {}
    with prom, DiscordStandIn() as discord, running_stack(
        broker, fixtures_dir, output_dir, tmp_path, ports, discord.url,
    ) as services:
        try:
            # Wait until the pipeline has alerted for a while and every panel shows what it
            # should (or the deadline passes: then the assertions below name what is missing).
            deadline = time.monotonic() + READY_TIMEOUT_S
            pending = ["not checked yet"]
            executable = {t.key: t.query.promql() for t in targets if t.key in EXECUTABLE}
            unseen = set(executable)
            while time.monotonic() < deadline:
                for service in services:
                    service.check_alive()
                pending = shortfalls(lambda q: finite_samples(prom.query(q)), targets)
                unseen = {k for k in unseen if not finite_samples(prom.query(executable[k]))}
                if not pending and not unseen and discord.accepted:
                    break
                time.sleep(POLL_S)
            summary["executable_never_seen"] = sorted(map(str, unseen))
            summary["ready_after_s"] = round(time.monotonic() - started, 1)
            summary["still_pending_when_evaluated"] = pending
            summary["discord_messages"] = len(discord.accepted)
            summary["up"] = up = up_by_job(prom)
            summary["queries"] = answers = evaluate(prom, all_queries())
            summary["panels"] = {
                f"{t.dashboard}: {t.title} [{t.ref_id}]": answers[t.query.promql()]["series"]
                for t in targets
            }
            flink_names = sorted(
                s["metric"]["__name__"] for s in
                prom.query('count by (__name__) ({job="flink"})')["data"]["result"]
            )
            (output_dir / "flink-metric-names.txt").write_text("\n".join(flink_names) + "\n")
            rule_errors = [f"{r['name']}: {r.get('lastError')}"
                           for g in prom.rule_groups() for r in g["rules"] if r["health"] == "err"]
        finally:
            (output_dir / "observability-summary.json").write_text(
                json.dumps(summary, indent=1, sort_keys=True), encoding="utf-8",
            )
            (output_dir / "prometheus.log").write_text(prom.log(), encoding="utf-8")

    # One list of everything wrong, so a failure shows all of it at once.
    problems = []
    # Every target of prometheus.yml that runs here is scraped successfully.
    expected_up = {**dict.fromkeys(SERVICES, 1.0), "prometheus": 1.0}
    if up != expected_up:
        problems.append(f"scrape targets not up (job: up): {up}; see {output_dir}/*.log")
    # Every query Grafana runs (panels, variables, alert rules) evaluates, instant and range.
    problems += [f"query rejected: {promql}\n    {a['where']}: {a['errors']}"
                 for promql, a in answers.items() if a["errors"]]
    problems += [f"rule failing: {error}" for error in rule_errors]
    # Spread, feed, latency and pipeline panels all show data (see NO_DATA_EXPECTED, FLOWING).
    problems += shortfalls(
        lambda q: [(s["labels"], s["value"]) for s in answers[q]["series"]], targets,
    )
    # The executable panels showed data at some point while the test waited.
    problems += [f"never showed data while the stack ran: {key}" for key in sorted(unseen)]
    # The dashboards' symbol and exchange drop-downs have values.
    problems += [f"variable without values: {q}" for q in variable_queries()
                 if not answers[q.promql()]["series"]]
    # Stat panels whose query cannot be empty: their values must be right, not just present.
    # (Flink's count falls back to 0 when Flink is not scraped; the replay has 2+ venues.)
    if (running := stat_values(answers, "Running Flink jobs")) != [1.0]:
        problems.append(f"'Running Flink jobs' shows {running}, expected [1.0]")
    connected = stat_values(answers, "Venue connected")
    if len(connected) < 2 or set(connected) != {1.0}:
        problems.append(f"'Venue connected' shows {connected}, expected 1 for each venue")
    # The Flink names the recording rules use are the ones this Flink exports.
    if missing := sorted(FLINK_METRICS - set(flink_names)):
        problems.append(f"Flink metrics the rules use but Flink does not export: {missing}")
    assert not problems, (
        f"after {summary['ready_after_s']} s of the running stack:\n" + "\n".join(problems)
    )


def evaluate(prom: PrometheusServer, queries: list[Query]) -> dict[str, dict[str, Any]]:
    """Each distinct query's instant answer (and, for graph panels, its range answer over
    the last minute): errors, and the finite samples it returned now."""
    answers: dict[str, dict[str, Any]] = {}
    for query in queries:
        promql = query.promql()
        entry = answers.setdefault(promql, {"where": [], "errors": [], "series": []})
        entry["where"].append(str(query))
        if len(entry["where"]) > 1:
            continue
        instant = prom.query(promql)
        if instant.get("status") != "success":
            entry["errors"].append(f"instant: {instant.get('error')}")
        entry["series"] = [{"labels": labels, "value": value}
                           for labels, value in finite_samples(instant)]
        if not query.instant:
            ranged = prom.query_range(promql, RANGE_S, step_s=1)
            if ranged.get("status") != "success":
                entry["errors"].append(f"range: {ranged.get('error')}")
    return answers


def stat_values(answers: Mapping[str, Mapping[str, Any]], title: str) -> list[float]:
    (target,) = [t for t in panel_targets() if t.title == title]
    return [s["value"] for s in answers[target.query.promql()]["series"]]
