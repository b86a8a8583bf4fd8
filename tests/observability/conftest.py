"""Fixtures for the observability tests: the Prometheus tools, and a throwaway server."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.observability.contract import RULES_DIR
from tests.observability.prom_server import PrometheusServer

#: Debian/Ubuntu package that puts both binaries on PATH.
APT_PACKAGE = "prometheus"


def in_ci() -> bool:
    """CI runs must not skip: a missing tool there is a broken setup, not an optional extra."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def require_binary(name: str) -> str:
    """Path to ``name``; skips locally when absent, fails under CI."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found on PATH (install the {APT_PACKAGE!r} apt package)"
    if in_ci():
        pytest.fail(f"{message}; CI is set, so this is a failure, not a skip")
    pytest.skip(message)


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A Prometheus with this repository's rules and nothing to scrape: enough to parse and
    evaluate any query, and to see every rule evaluate."""
    binary = require_binary("prometheus")
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_DIR / "*.yml")],
    }
    with PrometheusServer(binary, workdir, config) as server:
        yield server
