"""The local run's Alertmanager: its configuration derived from Grafana's policy and contact
point, the webhook kept in a private file under var/, and what happens without a webhook or
without the binary."""

from __future__ import annotations

import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from structlog.testing import capture_logs

from services.common import alertmanager
from services.common.alertmanager import (
    RUNBOOK_PLACEHOLDER,
    TARGETS_FILE,
    alertmanager_config,
    local_alertmanager,
    route,
)
from services.common.config import LocalRunSettings
from services.common.ports import is_free

REPO = Path(__file__).resolve().parents[2]
WEBHOOK = "https://discord.com/api/webhooks/1/secret-token"


def test_route_is_grafanas_policy_tree_in_alertmanagers_terms() -> None:
    policy = {
        "receiver": "discord", "group_by": ["grafana_folder", "alertname"], "group_wait": "30s",
        "routes": [{"receiver": "discord", "object_matchers": [["severity", "=~", "a|b"]],
                    "group_wait": "5s", "repeat_interval": "1h"}],
    }
    assert route(policy) == {
        "receiver": "discord", "group_by": ["alertname"], "group_wait": "30s",
        "routes": [{"receiver": "discord", "matchers": ['severity=~"a|b"'], "group_wait": "5s",
                    "repeat_interval": "1h"}],
    }
    fast = route(policy, {"group_wait": "1s"})
    assert fast["group_wait"] == "1s"
    assert fast["routes"][0]["group_wait"] == "1s"
    assert fast["routes"][0]["repeat_interval"] == "1h"


def test_discord_receiver_posts_grafanas_message_with_the_runbook_base() -> None:
    config = alertmanager_config(WEBHOOK, "https://runbooks.example/arb")
    (receiver,) = config["receivers"]
    (discord,) = receiver["discord_configs"]
    assert discord["webhook_url"] == WEBHOOK
    assert discord["send_resolved"] is True
    assert RUNBOOK_PLACEHOLDER not in discord["message"]
    assert '"https://runbooks.example/arb" .Annotations.runbook_url' in discord["message"]
    assert config["route"]["receiver"] == receiver["name"]


def test_without_a_webhook_the_receiver_posts_nowhere() -> None:
    (receiver,) = alertmanager_config(None, "http://localhost:8501/runbook")["receivers"]
    assert "discord_configs" not in receiver


def test_the_contact_point_and_compose_fill_in_the_same_runbook_base() -> None:
    """Grafana expands ${ARB_RUNBOOK_URL} from its environment: compose passes the setting,
    defaulting to the setting's own default."""
    contact_points = yaml.safe_load(
        (REPO / "grafana/provisioning/alerting/contact-points.yml").read_text())
    (receiver,) = contact_points["contactPoints"][0]["receivers"]
    assert RUNBOOK_PLACEHOLDER in receiver["settings"]["message"]
    grafana = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]["grafana"]
    default = LocalRunSettings.model_fields["runbook_url"].default
    assert grafana["environment"]["ARB_RUNBOOK_URL"] == f"${{ARB_RUNBOOK_URL:-{default}}}"


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(alertmanager, "find_binary", lambda: "/usr/bin/alertmanager")
    monkeypatch.setattr(alertmanager, "is_free", lambda port: True)
    return "/usr/bin/alertmanager"


def test_files_under_var_and_the_webhook_only_in_a_private_one(
    tmp_path: Path, installed: str,
) -> None:
    env = {"DISCORD_WEBHOOK_URL": WEBHOOK, "ARB_ALERTMANAGER_PORT": "19093"}
    argv = local_alertmanager(env, tmp_path)
    assert argv is not None
    config_path = tmp_path / "alertmanager" / "alertmanager.yml"
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert WEBHOOK in config_path.read_text()
    assert yaml.safe_load((tmp_path / TARGETS_FILE).read_text()) == [
        {"targets": ["127.0.0.1:19093"]}]
    assert argv[0] == installed
    assert f"--config.file={config_path}" in argv
    assert "--web.listen-address=127.0.0.1:19093" in argv
    assert "--cluster.listen-address=" in argv  # no gossip port on every interface
    others = [p for p in tmp_path.rglob("*") if p.is_file() and p != config_path]
    assert all(WEBHOOK not in p.read_text() for p in others)


def test_an_existing_config_file_is_made_private(tmp_path: Path, installed: str) -> None:
    config_path = tmp_path / "alertmanager" / "alertmanager.yml"
    config_path.parent.mkdir()
    config_path.write_text("old")
    config_path.chmod(0o644)
    local_alertmanager({"DISCORD_WEBHOOK_URL": WEBHOOK}, tmp_path)
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600


def test_bind_address_moves_the_listener(tmp_path: Path, installed: str) -> None:
    argv = local_alertmanager({"BIND_ADDRESS": "0.0.0.0"}, tmp_path)
    assert argv is not None
    assert "--web.listen-address=0.0.0.0:9093" in argv
    assert yaml.safe_load((tmp_path / TARGETS_FILE).read_text()) == [
        {"targets": ["127.0.0.1:9093"]}]


def test_without_a_webhook_it_runs_and_says_so_once(tmp_path: Path, installed: str) -> None:
    with capture_logs() as logs:
        argv = local_alertmanager({}, tmp_path)
    assert argv is not None
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["event"] for e in warnings] == ["alertmanager_without_discord"]
    assert "DISCORD_WEBHOOK_URL" in warnings[0]["reason"]


def test_an_invalid_webhook_is_reported_without_its_value(tmp_path: Path, installed: str) -> None:
    with capture_logs() as logs:
        local_alertmanager({"DISCORD_WEBHOOK_URL": "not-a-url-secret"}, tmp_path)
    assert "not-a-url-secret" not in str(logs)
    assert "not-a-url-secret" not in (tmp_path / "alertmanager" / "alertmanager.yml").read_text()


def test_not_installed_means_not_started_and_no_alertmanager_for_prometheus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(alertmanager.shutil, "which", lambda name: None)
    (tmp_path / TARGETS_FILE).write_text("- targets: [127.0.0.1:9093]\n")  # an earlier run's
    with capture_logs() as logs:
        assert local_alertmanager({"DISCORD_WEBHOOK_URL": WEBHOOK}, tmp_path) is None
    assert not (tmp_path / TARGETS_FILE).exists()
    assert [e["event"] for e in logs] == ["alertmanager_not_installed"]


def test_a_taken_port_means_not_started_and_no_alertmanager_for_prometheus(
    tmp_path: Path, installed: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(alertmanager, "is_free", is_free)
        (tmp_path / TARGETS_FILE).write_text(f"- targets: [127.0.0.1:{port}]\n")
        with capture_logs() as logs:
            argv = local_alertmanager({"ARB_ALERTMANAGER_PORT": str(port)}, tmp_path)
    assert argv is None
    assert not (tmp_path / TARGETS_FILE).exists()
    assert [e["event"] for e in logs] == ["alertmanager_port_taken"]


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool is not installed")
@pytest.mark.parametrize("webhook", [WEBHOOK, None])
def test_amtool_accepts_the_config(tmp_path: Path, webhook: str | None) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(alertmanager_config(webhook, "http://localhost:8501/runbook")))
    result = subprocess.run(["amtool", "check-config", str(path)], capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
