"""Dashboard fixtures: page settings in the environment, and no reader outliving its test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st

from services.common.broker import free_port

APP = Path(__file__).resolve().parents[2] / "services" / "dashboard" / "app.py"


@pytest.fixture(autouse=True)
def _release_shared_readers() -> Iterator[None]:
    """Streamlit's resource cache is process-wide: clearing it stops each test's reader."""
    yield
    st.cache_resource.clear()


@pytest.fixture
def page_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, unique: str) -> Path:
    """A page on its own store and topics, Kafka pointed at a port where nothing listens, and
    metrics on a free port. Returns the store path; tests override variables as they need."""
    db = tmp_path / "alerts.db"
    for name, value in {
        "ARB_HISTORY_DB": str(db),
        "ARB_DASHBOARD_REFRESH_SECONDS": "1",
        "ARB_DASHBOARD_METRICS_PORT": "0",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "ARB_SPREADS_TOPIC": f"spreads-{unique}",
        "ARB_PRICES_TOPIC": f"prices-{unique}",
        "ARB_VENUES": "coinbase,binance",
    }.items():
        monkeypatch.setenv(name, value)
    return db
