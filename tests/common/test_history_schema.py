"""The history store's tables agree with the records' declarations, and say so when not."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common.history import store
from services.common.history.schema import (
    ALERTS,
    EPISODES,
    PENDING,
    STATUSES,
    AlertRecord,
    StoreSchemaError,
    Table,
    declared_columns,
    store_field,
    stored_checks,
    stored_columns,
    table_drift,
)
from services.common.history.store import AlertHistory
from services.common.messages import Episode, Spread, data_fields
from tests.common.declarations import redeclared
from tests.common.test_history import write_v0_store
from tests.support.alerts import make_spread

#: The store as the version-3 alerter wrote it: what is on disk where this code is deployed.
#: Frozen on purpose: a record field added without a way onto such a store must fail here.
V3_SCHEMA = """
CREATE TABLE alerts (
    id TEXT PRIMARY KEY, symbol TEXT NOT NULL, window_start_ms INTEGER NOT NULL,
    window_end_ms INTEGER NOT NULL, buy_exchange TEXT NOT NULL, buy_ask REAL NOT NULL,
    buy_size REAL, sell_exchange TEXT NOT NULL, sell_bid REAL NOT NULL, sell_size REAL,
    spread_usd REAL NOT NULL, spread_bps REAL NOT NULL, net_spread_bps REAL NOT NULL,
    max_size REAL, est_profit_usd REAL, quote_age_ms INTEGER NOT NULL,
    newest_recv_ts_ms INTEGER NOT NULL, detected_ts_ms INTEGER,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed', 'no_webhook', 'suppressed')),
    attempts INTEGER NOT NULL DEFAULT 0, received_ts_ms INTEGER NOT NULL,
    delivered_ts_ms INTEGER, last_error TEXT, updated_ts_ms INTEGER NOT NULL, suppressed_by TEXT
);
CREATE TABLE episodes (
    id TEXT PRIMARY KEY, symbol TEXT NOT NULL, buy_exchange TEXT NOT NULL,
    sell_exchange TEXT NOT NULL, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL, quotes INTEGER NOT NULL, peak_net_spread_bps REAL NOT NULL,
    mean_net_spread_bps REAL NOT NULL, peak_spread_usd REAL NOT NULL, peak_est_profit_usd REAL,
    required_ms INTEGER NOT NULL, capturable INTEGER NOT NULL, is_open INTEGER NOT NULL,
    newest_recv_ts_ms INTEGER NOT NULL, detected_ts_ms INTEGER,
    opened_status TEXT NOT NULL DEFAULT 'pending', closed_status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, received_ts_ms INTEGER NOT NULL,
    updated_ts_ms INTEGER NOT NULL
);
PRAGMA user_version = 3;
"""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "alerts.db"


def columns_on_disk(path: Path, table: str) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        return stored_columns(conn, table)


@pytest.mark.parametrize("table", [ALERTS, EPISODES], ids=lambda t: t.name)
def test_a_new_store_has_the_declared_columns(db_path: Path, table: Table) -> None:
    AlertHistory(db_path).close()
    assert columns_on_disk(db_path, table.name) == declared_columns(table)


def test_tables_hold_every_data_field_of_their_record() -> None:
    for table, wire in ((ALERTS, Spread), (EPISODES, Episode)):
        names = [c.name for c in table.columns()]
        assert names[:len(data_fields(wire))] == list(data_fields(wire))
        assert "v" not in names


def test_the_status_check_is_built_from_the_statuses(db_path: Path) -> None:
    with AlertHistory(db_path) as history:
        for i, status in enumerate(STATUSES):
            spread = make_spread(window_end_ms=1000 * (i + 1))
            history.record(spread)
            assert history._update(spread.id, status=status).status == status
        with pytest.raises(sqlite3.IntegrityError):
            history._update(spread.id, status="lost")
    sql = next(c.ddl() for c in ALERTS.columns() if c.name == "status")
    assert sql.endswith(f"CHECK (status IN ({', '.join(repr(s) for s in STATUSES)}))")


def test_a_store_written_by_version_3_matches_the_declaration(db_path: Path) -> None:
    with closing(sqlite3.connect(db_path)) as conn:
        conn.executescript(V3_SCHEMA)
    with AlertHistory(db_path) as history:  # raises StoreSchemaError on drift
        history.record(make_spread())
    for table in (ALERTS, EPISODES):
        assert sorted(columns_on_disk(db_path, table.name)) == sorted(declared_columns(table))


def test_a_version_0_store_is_drift_until_migrated(db_path: Path) -> None:
    write_v0_store(db_path, [make_spread()])
    with closing(sqlite3.connect(db_path)) as conn:
        conn.row_factory = sqlite3.Row
        assert table_drift(conn, ALERTS) == [
            "alerts: lacks executable_usd REAL",
            "alerts: lacks executable_size REAL",
            "alerts: lacks executable_profit_usd REAL",
            "alerts: lacks suppressed_by TEXT",
            "alerts: lacks sending_ts_ms INTEGER",
            f"alerts: status is checked against {STATUSES[:-1]}, declared {STATUSES} "
            "(a table rebuild is needed)"]
    AlertHistory(db_path).close()
    assert sorted(columns_on_disk(db_path, "alerts")) == sorted(declared_columns(ALERTS))


# -- a record declared with one more field -------------------------------------------------------

def declare_alerts(monkeypatch: pytest.MonkeyPatch, record: type) -> Table:
    """The store as it would be with ``record`` declared instead of :class:`AlertRecord`."""
    table = Table("alerts", record)
    monkeypatch.setattr(store, "TABLES", (table, EPISODES))
    return table


def test_a_new_optional_field_becomes_a_column_of_an_existing_store(
    db_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    AlertHistory(db_path).close()  # today's store
    grown = declare_alerts(monkeypatch, redeclared(AlertRecord, extra=(
        ("slippage_usd", float | None),)))

    AlertHistory(db_path).close()

    assert columns_on_disk(db_path, "alerts") == declared_columns(grown)
    assert columns_on_disk(db_path, "alerts")[-1] == ("slippage_usd", "REAL")


def test_a_new_required_field_without_a_migration_is_refused(
    db_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    AlertHistory(db_path).close()
    declare_alerts(monkeypatch, redeclared(AlertRecord, extra=(("slippage_usd", float),)))

    with pytest.raises(StoreSchemaError, match="alerts: lacks slippage_usd REAL NOT NULL"):
        AlertHistory(db_path)


def test_a_changed_type_is_refused(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    AlertHistory(db_path).close()
    declare_alerts(monkeypatch, redeclared(AlertRecord, types={"quote_age_ms": float}))

    with pytest.raises(StoreSchemaError,
                       match="quote_age_ms is INTEGER NOT NULL, declared REAL NOT NULL"):
        AlertHistory(db_path)


def test_a_new_status_rebuilds_the_check_keeping_every_row(
    db_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    @dataclass(frozen=True, kw_only=True)
    class MoreStatuses(AlertRecord):
        status: str = store_field(sql_default=PENDING, check_in=(*STATUSES, "expired"))

    with AlertHistory(db_path) as history:
        spread = make_spread()
        history.record(spread)
    declare_alerts(monkeypatch, MoreStatuses)

    with AlertHistory(db_path) as history:
        assert history._update(spread.id, status="expired").status == "expired"
        assert stored_checks(history._conn, "alerts") == {"status": (*STATUSES, "expired")}
        assert table_drift(history._conn, Table("alerts", MoreStatuses)) == []
