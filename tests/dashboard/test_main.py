"""The entry point's Streamlit options are defaults: `.streamlit/config.toml` and STREAMLIT_*
variables win over them; the port is ARB_DASHBOARD_PORT's when that is set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from services.common.broker import free_port
from services.common.config import DashboardSettings
from services.dashboard.__main__ import streamlit_argv
from tests.support.streamlit import served


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own and a home without a global config.toml."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("STREAMLIT_SERVER_PORT", "STREAMLIT_SERVER_HEADLESS",
                 "STREAMLIT_BROWSER_GATHER_USAGE_STATS", "STREAMLIT_CLIENT_TOOLBAR_MODE",
                 "STREAMLIT_SERVER_ADDRESS", "BIND_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def flags(argv: list[str]) -> dict[str, str]:
    options = argv[3:]
    return dict(zip(options[::2], options[1::2], strict=True))


def test_defaults_when_streamlit_is_not_configured(project: Path) -> None:
    assert flags(streamlit_argv(DashboardSettings(), [])) == {
        "--server.headless": "true", "--browser.gatherUsageStats": "false",
        "--client.toolbarMode": "minimal", "--server.port": "8501",
        "--server.address": "127.0.0.1"}


def test_the_address_is_bind_address(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit alone listens on every interface; here it follows BIND_ADDRESS like the rest."""
    monkeypatch.setenv("BIND_ADDRESS", "0.0.0.0")
    assert flags(streamlit_argv(DashboardSettings(), []))["--server.address"] == "0.0.0.0"
    monkeypatch.setenv("STREAMLIT_SERVER_ADDRESS", "10.0.0.5")
    assert "--server.address" not in flags(streamlit_argv(DashboardSettings(), []))


def test_config_toml_and_streamlit_variables_win(project: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (project / ".streamlit").mkdir()
    (project / ".streamlit" / "config.toml").write_text(
        "[server]\nheadless = false\nport = 9000\naddress = \"0.0.0.0\"\n\n"
        "[browser]\ngatherUsageStats = true\n")
    monkeypatch.setenv("STREAMLIT_CLIENT_TOOLBAR_MODE", "developer")

    assert flags(streamlit_argv(DashboardSettings(), [])) == {}


def test_an_arb_dashboard_port_that_is_set_is_the_port(project: Path) -> None:
    (project / ".streamlit").mkdir()
    (project / ".streamlit" / "config.toml").write_text("[server]\nport = 9000\n")
    settings = DashboardSettings.from_env({"ARB_DASHBOARD_PORT": "8600"})

    assert flags(streamlit_argv(settings, []))["--server.port"] == "8600"


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) with a socket listening on ``port``."""
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path("/proc/net", table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net")
def test_the_running_dashboard_listens_on_loopback_only(tmp_path: Path) -> None:
    """The real entry point, with no address configured: Streamlit's port and /metrics both
    listen on 127.0.0.1 (0100007F), not on every interface."""
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ARB_", "KAFKA_", "STREAMLIT_", "BIND_"))}
    env.update({"HOME": str(tmp_path), "ARB_HISTORY_DB": str(tmp_path / "alerts.db"),
                "ARB_DASHBOARD_PORT": str(port), "ARB_DASHBOARD_METRICS_PORT": str(metrics_port),
                "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"})
    argv = [sys.executable, "-m", "services.dashboard"]
    with served(argv, port, tmp_path, tmp_path / "streamlit.log", env):
        assert _listening_addresses(port) == {"0100007F"}
        assert _listening_addresses(metrics_port) == {"0100007F"}
