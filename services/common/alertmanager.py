"""The local run's Alertmanager: ``arb start`` runs it beside Prometheus, when installed, so that
the Prometheus alerts reach Discord without Docker (under compose Grafana is that path).

What it does with an alert is not declared here: the route tree is Grafana's notification
policy (grafana/provisioning/alerting/policies.yml) and the Discord message is Grafana's contact
point (contact-points.yml), read at each start, so both Discord paths group, repeat and word an
alert the same way. ``${ARB_RUNBOOK_URL}`` in that message is filled in here as Grafana fills it
in from its environment.

Files, all under ``var/`` (rewritten at each start):

- ``alertmanager/alertmanager.yml``: the configuration. Alertmanager 0.25 (Debian bookworm's)
  has no ``webhook_url_file`` for Discord, so the webhook URL, a secret, is in this file: created
  with mode 0600, never logged, never in the repository.
- ``alertmanager/data/``: its silences and notification log.
- ``alertmanagers.yml``: the file_sd list prometheus.yml's ``alerting`` block reads (relative to
  the config arb start writes, var/prometheus.yml). Removed when no Alertmanager runs, so
  Prometheus has nowhere to send and logs no failed sends.

Not started when its port is taken (say, by the system Alertmanager Debian's package may run),
so that Prometheus does not send this run's alerts to another configuration.

Without ``DISCORD_WEBHOOK_URL`` Alertmanager still runs, with a receiver that posts nowhere: the
alerts can be seen in its API (``/api/v2/alerts``); this is logged once at start.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
import yaml

from services.common.config import AlerterSettings, LocalRunSettings, process_settings
from services.common.ports import holder, is_free

REPO = Path(__file__).resolve().parents[2]
GRAFANA_ALERTING = REPO / "grafana" / "provisioning" / "alerting"
#: Upstream's name, then Debian's (package prometheus-alertmanager).
BINARIES = ("alertmanager", "prometheus-alertmanager")
#: Where prometheus.yml's alerting block looks for Alertmanagers, relative to the config file.
TARGETS_FILE = "alertmanagers.yml"
RUNBOOK_PLACEHOLDER = "${ARB_RUNBOOK_URL}"
#: Labels only Grafana's alerts carry; Prometheus' alerts are grouped without them.
_GRAFANA_ONLY_LABELS = frozenset({"grafana_folder"})
_ROUTE_TIMINGS = ("group_wait", "group_interval", "repeat_interval")
_ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names it, binds nothing

log = structlog.get_logger(__name__)


def find_binary() -> str | None:
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((GRAFANA_ALERTING / name).read_text(encoding="utf-8")) or {}


def route(policy: Mapping[str, Any], timings: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A Grafana notification policy (object_matchers) as an Alertmanager route (matchers);
    ``timings`` replace every node's group_wait/group_interval/repeat_interval that is set."""
    node: dict[str, Any] = {"receiver": policy["receiver"]}
    if "group_by" in policy:
        node["group_by"] = [label for label in policy["group_by"]
                            if label not in _GRAFANA_ONLY_LABELS]
    if "object_matchers" in policy:
        node["matchers"] = [f"{name}{op}{json.dumps(value)}"
                            for name, op, value in policy["object_matchers"]]
    for key in _ROUTE_TIMINGS:
        if key in policy:
            node[key] = (timings or {}).get(key, policy[key])
    if policy.get("continue"):
        node["continue"] = True
    if policy.get("routes"):
        node["routes"] = [route(child, timings) for child in policy["routes"]]
    return node


def discord_message(runbook_url: str) -> tuple[str, str]:
    """(title, message) of Grafana's Discord contact point, with the runbook base filled in."""
    (receiver,) = [r for cp in _load("contact-points.yml").get("contactPoints", [])
                   for r in cp["receivers"] if r["type"] == "discord"]
    settings = receiver["settings"]
    return (settings["title"].replace(RUNBOOK_PLACEHOLDER, runbook_url),
            settings["message"].replace(RUNBOOK_PLACEHOLDER, runbook_url))


def alertmanager_config(
    webhook_url: str | None, runbook_url: str, timings: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The whole configuration: Grafana's policy tree, its contact points as receivers, each
    Discord one posting to ``webhook_url`` (None: a receiver that posts nowhere)."""
    (policy,) = _load("policies.yml")["policies"]
    title, message = discord_message(runbook_url)
    receivers = []
    for contact_point in _load("contact-points.yml").get("contactPoints", []):
        receiver: dict[str, Any] = {"name": contact_point["name"]}
        if webhook_url:
            receiver["discord_configs"] = [{
                "webhook_url": webhook_url,
                "send_resolved": not r.get("disableResolveMessage", False),
                "title": title,
                "message": message,
            } for r in contact_point["receivers"] if r["type"] == "discord"]
        receivers.append(receiver)
    return {"route": route(policy, timings), "receivers": receivers}


def write_private(path: Path, text: str) -> None:
    """``text`` to ``path``, readable by this user only (0600), even if the file existed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)


def write_targets(path: Path, host: str, port: int) -> None:
    """The file_sd list Prometheus reads its Alertmanagers from: one, on ``host:port``."""
    target = "127.0.0.1" if host in _ANY_ADDRESS else host
    target = f"[{target}]" if ":" in target else target
    path.write_text(yaml.safe_dump([{"targets": [f"{target}:{port}"]}]), encoding="utf-8")


def argv(binary: str, workdir: Path, host: str, port: int, json_logs: bool = False) -> list[str]:
    """The command line: loopback (or BIND_ADDRESS), no clustering (its gossip port would
    listen on every interface), warnings and errors only, in the run's log format."""
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return [binary, f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}", f"--web.listen-address={listen}",
            "--cluster.listen-address=", "--log.level=warn",
            f"--log.format={'json' if json_logs else 'logfmt'}"]


def local_alertmanager(
    env: Mapping[str, str], var: Path, json_logs: bool = False,
    timings: Mapping[str, str] | None = None,
) -> list[str] | None:
    """Prepare the Alertmanager ``arb start`` runs beside Prometheus: its configuration under
    ``var/alertmanager/`` and Prometheus' list of Alertmanagers (``var/alertmanagers.yml``).
    Returns its command line, or None when it is not installed (then the list is removed).
    ``timings`` shorten the policy's waits (tests)."""
    targets = var / TARGETS_FILE
    binary = find_binary()
    if binary is None:
        targets.unlink(missing_ok=True)
        log.info("alertmanager_not_installed", binaries=list(BINARIES),
                 effect="Prometheus alerts reach no one in this run "
                        "(apt-get install prometheus-alertmanager)")
        return None
    local = LocalRunSettings.from_env(env)
    if not is_free(local.alertmanager_port):
        # Say, the one Debian's package runs as a system service: Prometheus would send this
        # run's alerts to a configuration that is not this one.
        targets.unlink(missing_ok=True)
        log.warning("alertmanager_port_taken", port=local.alertmanager_port,
                    holder=holder(local.alertmanager_port),
                    effect="no Alertmanager in this run: set ARB_ALERTMANAGER_PORT to a free "
                           "port (or stop the other one)")
        return None
    alerter = AlerterSettings.from_env(env)
    host = process_settings(env).bind_address
    webhook = alerter.webhook_url.get_secret_value() if alerter.webhook_url else None
    if webhook is None:
        log.warning("alertmanager_without_discord",
                    reason=alerter.webhook_problem or "DISCORD_WEBHOOK_URL is not set",
                    effect="alerts are kept in Alertmanager (/api/v2/alerts), posted nowhere")
    workdir = var / "alertmanager"
    config = alertmanager_config(webhook, local.runbook_url, timings)
    write_private(workdir / "alertmanager.yml", yaml.safe_dump(config, sort_keys=False))
    write_targets(targets, host, local.alertmanager_port)
    log.info("alertmanager_configured", port=local.alertmanager_port,
             config=str(workdir / "alertmanager.yml"), discord=webhook is not None)
    return argv(binary, workdir, host, local.alertmanager_port, json_logs)
