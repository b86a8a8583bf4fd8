"""Shared fixtures: a real Tansu broker on a free port, the recorded fixtures, output folders."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.broker import LocalBroker, free_port

REPO = Path(__file__).resolve().parent.parent
# No test reads a .env, wherever it runs (the repository's may hold a real webhook): every
# service and every child process inherits this (services/common/config.py, ENV_FILE).
os.environ["ENV_FILE"] = os.devnull
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures" / "exchanges"
FIXTURES = Path(os.environ.get("ARB_FIXTURES_DIR", SHARED_FIXTURES))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"recorded exchange fixtures not found at {FIXTURES} (set ARB_FIXTURES_DIR)")
    return FIXTURES


@pytest.fixture
def broker() -> Iterator[LocalBroker]:
    """A fresh Tansu with memory storage on a free port, one partition per topic by default."""
    with LocalBroker(port=free_port()) as running:
        yield running


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic and group names."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Path:
    """A per-test folder under test-output/ for screenshots and logs worth keeping."""
    path = REPO / "test-output" / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path
