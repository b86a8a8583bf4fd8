"""The entry point's Streamlit options are defaults: `.streamlit/config.toml` and STREAMLIT_*
variables win over them; the port is ARB_DASHBOARD_PORT's when that is set."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.config import DashboardSettings
from services.dashboard.__main__ import streamlit_argv


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
