"""The dashboard's runbook page, which every alert's runbook_url points at: a section per alert,
anchored as the link names it, and a real browser lands on the section the link names."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from services.common.broker import free_port
from tests.support.browser import Browser, chromium_binary
from tests.support.streamlit import served

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "services" / "dashboard" / "pages" / "runbook.py"


def alert_urls() -> dict[str, str]:
    """Alert name -> runbook_url, from the one source of the alert rules."""
    rules = yaml.safe_load((REPO / "prometheus" / "rules" / "alerts.yml").read_text())
    return {rule["alert"]: rule["annotations"]["runbook_url"]
            for group in rules["groups"] for rule in group["rules"]}


def test_every_alert_has_a_section_with_the_anchor_its_link_names() -> None:
    page = AppTest.from_file(str(PAGE)).run()
    assert not page.exception
    anchors = {header.value: header.proto.anchor for header in page.header}
    for name, url in alert_urls().items():
        assert name in anchors, f"no section for {name}"
        assert url.endswith(f"#{anchors[name]}"), f"{name}: {url} names another anchor"
    assert page.markdown, "section bodies are drawn"


def test_a_missing_runbook_is_said_not_raised(tmp_path: Path) -> None:
    script = tmp_path / "runbook.py"
    script.write_text(PAGE.read_text().replace(
        'Path(__file__).resolve().parents[3] / "docs" / "runbook.md"',
        f"Path({str(tmp_path / 'absent.md')!r})"))
    page = AppTest.from_file(str(script)).run()
    assert not page.exception
    assert "cannot be read" in page.error[0].value


@pytest.fixture
def served_page(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "streamlit", "run", str(PAGE), "--server.port", str(port),
            "--server.address", "127.0.0.1", "--server.headless", "true",
            "--browser.gatherUsageStats", "false"]
    with served(argv, port, tmp_path, tmp_path / "streamlit.log") as url:
        yield url


@pytest.mark.browser
@pytest.mark.skipif(chromium_binary() is None and not os.environ.get("CI"),
                    reason="chromium is not installed")
def test_the_link_opens_its_section(served_page: str) -> None:
    anchor = alert_urls()["TargetDown"].partition("#")[2]
    with Browser(width=1400, height=900) as browser:
        browser.goto(f"{served_page}/#{anchor}")
        browser.wait_for(f"document.getElementById({anchor!r}) !== null", timeout_s=40)
        browser.wait_for(  # scrolled to: the section's heading is in view
            f"(() => {{ const top = document.getElementById({anchor!r})"
            f".getBoundingClientRect().top; return top >= 0 && top < 900; }})()",
            timeout_s=10)
