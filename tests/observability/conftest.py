"""Fixtures for the observability tests: the Prometheus tools, and a throwaway server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.observability.contract import RULES_DIR
from tests.observability.prom_server import PrometheusServer, in_ci, require_binary

__all__ = ["in_ci", "require_binary"]  # tests/deploy imports in_ci from here


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
