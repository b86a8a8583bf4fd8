"""The alert history store: idempotent inserts, status changes, durability, concurrent readers."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from services.common.history import (
    DELIVERED,
    FAILED,
    MAX_ERROR_CHARS,
    NO_WEBHOOK,
    PENDING,
    SCHEMA_VERSION,
    SUPPRESSED,
    AlertHistory,
    AlertQuery,
    HistoryOptions,
    open_reader,
    options,
    read_counts,
    read_recent,
    recent_alerts,
    summarize,
    utc_day_start_ts_ms,
)
from services.common.history.schema import ALERTS, EPISODES
from services.common.messages import Episode, Spread, episode_id
from tests.support.alerts import WINDOW_END_MS, make_spread


def make_episode() -> Episode:
    return Episode(id=episode_id("BTC-USD", "coinbase", "binance", 1000), symbol="BTC-USD",
                   buy_exchange="coinbase", sell_exchange="binance", start_ms=1000, end_ms=1600,
                   duration_ms=600, quotes=4, peak_net_spread_bps=9.5, mean_net_spread_bps=6.0,
                   peak_est_profit_usd=None, peak_spread_usd=80.0, required_ms=550,
                   capturable=True, is_open=False, newest_recv_ts_ms=1590, detected_ts_ms=1700)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "alerts.db"


def test_record_stores_every_spread_field_as_pending(db_path: Path) -> None:
    spread = make_spread()
    with AlertHistory(db_path) as history:
        result = history.record(spread, received_ts_ms=WINDOW_END_MS + 400)

    assert result.inserted
    stored = result.alert
    assert stored.to_spread() == spread
    assert stored.status == PENDING
    assert stored.attempts == 0
    assert stored.received_ts_ms == WINDOW_END_MS + 400
    assert stored.delivered_ts_ms is None
    assert stored.last_error is None


def test_second_record_with_same_id_is_a_no_op(db_path: Path) -> None:
    spread = make_spread()
    with AlertHistory(db_path) as history:
        first = history.record(spread, received_ts_ms=1)
        history.mark_delivered(spread.id, attempts=1, delivered_ts_ms=5)
        # A redelivered record may even carry different numbers: the first one stands.
        again = history.record(make_spread(sell_bid=99_999.0), received_ts_ms=2)

        assert first.inserted and not again.inserted
        assert again.alert.status == DELIVERED
        assert again.alert.sell_bid == spread.sell_bid
        assert again.alert.received_ts_ms == 1
        assert len(history.recent()) == 1


def test_status_updates_accumulate_attempts(db_path: Path) -> None:
    spread = make_spread()
    with AlertHistory(db_path) as history:
        history.record(spread)
        failed = history.mark_failed(spread.id, attempts=3, error="server_error: HTTP 502")
        assert (failed.status, failed.attempts, failed.last_error) == (
            FAILED, 3, "server_error: HTTP 502",
        )
        delivered = history.mark_delivered(spread.id, attempts=2, delivered_ts_ms=123)
        assert (delivered.status, delivered.attempts, delivered.delivered_ts_ms) == (
            DELIVERED, 5, 123,
        )
        assert delivered.last_error is None


def test_long_errors_are_clipped(db_path: Path) -> None:
    spread = make_spread()
    with AlertHistory(db_path) as history:
        history.record(spread)
        stored = history.mark_failed(spread.id, attempts=1, error="x" * 5000)
    assert stored.last_error is not None
    assert len(stored.last_error) == MAX_ERROR_CHARS


def test_updating_an_unknown_alert_raises(db_path: Path) -> None:
    with AlertHistory(db_path) as history, pytest.raises(KeyError):
        history.mark_no_webhook("nope")


def test_history_survives_reopen(db_path: Path) -> None:
    spreads = [make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(3)]
    with AlertHistory(db_path) as history:
        for spread in spreads:
            history.record(spread)
        history.mark_no_webhook(spreads[0].id)

    with AlertHistory(db_path) as reopened:
        assert not reopened.record(spreads[0]).inserted
        assert reopened.get(spreads[0].id).status == NO_WEBHOOK  # type: ignore[union-attr]
        assert reopened.counts() == {PENDING: 2, DELIVERED: 0, FAILED: 0, NO_WEBHOOK: 1,
                                     SUPPRESSED: 0}


def test_recent_is_newest_first_and_limited(db_path: Path) -> None:
    ends = [WINDOW_END_MS + offset for offset in (3000, 1000, 5000, 2000, 4000)]
    with AlertHistory(db_path) as history:
        for end in ends:
            history.record(make_spread(window_end_ms=end))

    newest = read_recent(db_path, limit=3)

    assert [a.window_end_ms for a in newest] == sorted(ends, reverse=True)[:3]


def test_reader_sees_writer_commits_while_writer_is_open(db_path: Path) -> None:
    with AlertHistory(db_path) as history:
        history.record(make_spread())
        assert len(read_recent(db_path)) == 1
        history.record(make_spread(buy_exchange="binance", sell_exchange="coinbase"))
        assert len(read_recent(db_path)) == 2
        assert read_counts(db_path)[PENDING] == 2
        mode = history._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_reader_never_creates_the_store(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet" / "alerts.db"

    assert read_recent(missing) == []
    assert set(read_counts(missing).values()) == {0}
    assert not missing.exists()


def test_reader_of_a_file_without_the_table_sees_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()

    assert read_recent(empty) == []


def test_reader_is_read_only(db_path: Path) -> None:
    with AlertHistory(db_path) as history:
        history.record(make_spread())
    with open_reader(db_path) as conn:
        assert conn is not None
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("DELETE FROM alerts")


def test_alert_record_roundtrips_through_spread(db_path: Path) -> None:
    spread = make_spread(buy_size=None, sell_size=None)
    with AlertHistory(db_path) as history:
        stored = history.record(spread).alert
    assert asdict(stored.to_spread()) == asdict(spread)
    assert stored.max_size is None and stored.est_profit_usd is None


# -- schema versions ----------------------------------------------------------------------------

#: The store as the first alerter release wrote it (schema version 0).
V0_SCHEMA = """
CREATE TABLE alerts (
    id TEXT PRIMARY KEY, symbol TEXT NOT NULL, window_start_ms INTEGER NOT NULL,
    window_end_ms INTEGER NOT NULL, buy_exchange TEXT NOT NULL, buy_ask REAL NOT NULL,
    buy_size REAL, sell_exchange TEXT NOT NULL, sell_bid REAL NOT NULL, sell_size REAL,
    spread_usd REAL NOT NULL, spread_bps REAL NOT NULL, net_spread_bps REAL NOT NULL,
    max_size REAL, est_profit_usd REAL, quote_age_ms INTEGER NOT NULL,
    newest_recv_ts_ms INTEGER NOT NULL, detected_ts_ms INTEGER,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed', 'no_webhook')),
    attempts INTEGER NOT NULL DEFAULT 0, received_ts_ms INTEGER NOT NULL,
    delivered_ts_ms INTEGER, last_error TEXT, updated_ts_ms INTEGER NOT NULL
);
CREATE INDEX alerts_newest ON alerts (window_end_ms DESC, received_ts_ms DESC);
"""


#: Declared with depth (issue 16); no store written before it has them.
EXECUTABLE_FIELDS = ("executable_usd", "executable_size", "executable_profit_usd")


def write_v0_store(path: Path, spreads: list[Spread]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(V0_SCHEMA)
        for spread in spreads:
            values = {k: v for k, v in asdict(spread).items()
                      if k != "v" and k not in EXECUTABLE_FIELDS}
            values.update(status=DELIVERED, attempts=2, received_ts_ms=7, delivered_ts_ms=9,
                          updated_ts_ms=9)
            conn.execute(
                f"INSERT INTO alerts ({', '.join(values)}) "  # noqa: S608 - test data
                f"VALUES ({', '.join('?' for _ in values)})",
                list(values.values()),
            )


def test_old_store_is_migrated_keeping_every_row(db_path: Path) -> None:
    old = [make_spread(window_end_ms=WINDOW_END_MS + i * 1000) for i in range(3)]
    write_v0_store(db_path, old)
    # A dashboard reading the old store before the alerter upgrades it still works.
    assert [a.suppressed_by for a in read_recent(db_path)] == [None] * 3

    with AlertHistory(db_path) as history:
        migrated = {a.id: a for a in history.recent()}
        new = make_spread(window_end_ms=WINDOW_END_MS + 5000)
        history.record(new)
        history.mark_suppressed(new.id, by_alert_id=old[0].id)
        version = history._conn.execute("PRAGMA user_version").fetchone()[0]

    assert version == SCHEMA_VERSION
    assert sorted(migrated) == sorted(s.id for s in old)
    for spread in old:
        stored = migrated[spread.id]
        assert stored.to_spread() == spread
        assert (stored.status, stored.attempts, stored.delivered_ts_ms) == (DELIVERED, 2, 9)
    assert read_counts(db_path)[SUPPRESSED] == 1
    with AlertHistory(db_path) as reopened:  # a second open changes nothing
        assert len(reopened.recent()) == 4


def write_pre_depth_store(path: Path, spread: Spread, episode: Episode) -> None:
    """A version 3 store as written before the executable fields were declared, one row each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as conn, conn:
        for table, record, store_values in (
            (ALERTS, spread, {"status": DELIVERED, "attempts": 1, "received_ts_ms": 7,
                              "delivered_ts_ms": 9, "updated_ts_ms": 9}),
            (EPISODES, episode, {"received_ts_ms": 7, "updated_ts_ms": 9}),
        ):
            columns = [c for c in table.columns() if c.name not in EXECUTABLE_FIELDS]
            conn.execute(f"CREATE TABLE {table.name} ({', '.join(c.ddl() for c in columns)})")
            values = {k: v for k, v in asdict(record).items()
                      if k != "v" and k not in EXECUTABLE_FIELDS}
            values.update(store_values)
            conn.execute(
                f"INSERT INTO {table.name} ({', '.join(values)}) "  # noqa: S608 - test data
                f"VALUES ({', '.join('?' for _ in values)})",
                list(values.values()),
            )
        conn.execute("PRAGMA user_version = 3")


def test_a_store_from_before_depth_gets_the_executable_columns(db_path: Path) -> None:
    old_spread, old_episode = make_spread(), make_episode()
    write_pre_depth_store(db_path, old_spread, old_episode)
    with closing(sqlite3.connect(db_path)) as conn:
        before = {r[1] for r in conn.execute("PRAGMA table_info(alerts)")}
    assert not before & set(EXECUTABLE_FIELDS)

    with AlertHistory(db_path) as history:
        [kept] = history.recent()
        new = replace(make_spread(window_end_ms=WINDOW_END_MS + 1000), executable_usd=10000.0,
                      executable_size=0.15, executable_profit_usd=4.5)
        history.record(new)
        stored_new = history.get(new.id)
        [kept_episode] = history.recent_episodes()

    assert kept.to_spread() == old_spread  # the old row reads, its new fields null
    assert (kept.executable_usd, kept.executable_size, kept.executable_profit_usd) == (
        None, None, None)
    assert kept_episode.to_episode() == old_episode
    assert stored_new is not None and stored_new.to_spread() == new
    with closing(sqlite3.connect(db_path)) as conn:
        for table in ("alerts", "episodes"):
            after = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            assert after[-3:] == list(EXECUTABLE_FIELDS)


#: Version 2's episodes table: runs of alert windows (the window path's episodes).
V2_EPISODES = """
CREATE TABLE episodes (
    id TEXT PRIMARY KEY, symbol TEXT NOT NULL, buy_exchange TEXT NOT NULL,
    sell_exchange TEXT NOT NULL, start_ms INTEGER NOT NULL, first_window_end_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL, duration_ms INTEGER NOT NULL, windows INTEGER NOT NULL,
    confirmed_ms INTEGER NOT NULL, peak_net_spread_bps REAL NOT NULL,
    mean_net_spread_bps REAL NOT NULL, peak_spread_usd REAL NOT NULL, peak_est_profit_usd REAL,
    required_ms INTEGER NOT NULL, capturable INTEGER NOT NULL, is_open INTEGER NOT NULL,
    newest_recv_ts_ms INTEGER NOT NULL, detected_ts_ms INTEGER,
    opened_status TEXT NOT NULL DEFAULT 'pending', closed_status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, received_ts_ms INTEGER NOT NULL,
    updated_ts_ms INTEGER NOT NULL
);
CREATE INDEX episodes_newest ON episodes (first_window_end_ms DESC);
INSERT INTO episodes VALUES ('BTC-USD|coinbase|binance|2000', 'BTC-USD', 'coinbase', 'binance',
    1000, 2000, 4000, 3000, 3, 2000, 9.0, 6.0, 80.0, 7.0, 550, 1, 0, 3950, 4001,
    'delivered', 'delivered', 2, NULL, 4002, 4003);
PRAGMA user_version = 2;
"""


def test_version_2_window_episodes_are_kept_aside(db_path: Path) -> None:
    old = make_spread()
    write_v0_store(db_path, [old])
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.executescript(V2_EPISODES)

    with AlertHistory(db_path) as history:
        assert history.recent_episodes() == []  # the tick path's table, empty
        assert [a.id for a in history.recent()] == [old.id]  # alerts untouched
        kept = history._conn.execute("SELECT windows FROM window_episodes").fetchall()
    assert [tuple(r) for r in kept] == [(3,)]


def test_unknown_status_is_still_refused(db_path: Path) -> None:
    spread = make_spread()
    with AlertHistory(db_path) as history:
        history.record(spread)
        with pytest.raises(sqlite3.IntegrityError):
            history._update(spread.id, status="lost")


# -- cooldown lookups ---------------------------------------------------------------------------

def test_last_delivered_looks_back_within_the_cooldown_in_event_time(db_path: Path) -> None:
    first = make_spread(window_end_ms=WINDOW_END_MS)
    failed = make_spread(window_end_ms=WINDOW_END_MS + 1000)
    other_way = make_spread(window_end_ms=WINDOW_END_MS + 1000, buy_exchange="binance",
                            sell_exchange="coinbase")
    with AlertHistory(db_path) as history:
        for spread in (first, failed, other_way):
            history.record(spread)
        history.mark_delivered(first.id, attempts=1)
        history.mark_failed(failed.id, attempts=5, error="server_error")
        history.mark_delivered(other_way.id, attempts=1)

        def anchor(end_ms: int, within_ms: int) -> str | None:
            found = history.last_delivered(make_spread(window_end_ms=end_ms), within_ms)
            return None if found is None else found.id

        assert anchor(WINDOW_END_MS + 2000, 3000) == first.id
        assert anchor(WINDOW_END_MS + 3000, 3000) is None  # exactly the cooldown: over
        assert anchor(WINDOW_END_MS - 1000, 3000) is None  # only looks back
        assert anchor(WINDOW_END_MS, 3000) is None  # never its own anchor


# -- queries for the dashboard ------------------------------------------------------------------

@pytest.fixture
def populated(db_path: Path) -> list[Spread]:
    """Eight alerts: two symbols, both directions, two windows a day apart."""
    spreads = []
    for day in range(2):
        for symbol, ask, bid in (("BTC-USD", 67_000.0, 67_100.0), ("ETH-USD", 3500.0, 3510.0)):
            for buy, sell in (("coinbase", "binance"), ("binance", "coinbase")):
                spreads.append(make_spread(
                    symbol=symbol, window_end_ms=WINDOW_END_MS + day * 86_400_000,
                    buy_exchange=buy, sell_exchange=sell, buy_ask=ask, sell_bid=bid,
                    fees_bps=10.0 * (day + 1),
                ))
    with AlertHistory(db_path) as history:
        for spread in spreads:
            history.record(spread)
        history.mark_delivered(spreads[0].id, attempts=1)
    return spreads


@pytest.mark.parametrize("query", [
    AlertQuery(),
    AlertQuery(symbols=("ETH-USD",)),
    AlertQuery(pairs=(("binance", "coinbase"),)),
    AlertQuery(symbols=("BTC-USD",), pairs=(("coinbase", "binance"), ("binance", "coinbase"))),
    AlertQuery(since_ts_ms=WINDOW_END_MS + 1),
    AlertQuery(until_ts_ms=WINDOW_END_MS + 1),
    AlertQuery(min_net_bps=5.0),
    AlertQuery(statuses=(DELIVERED,)),
    AlertQuery(symbols=("DOGE-USD",)),
])
def test_query_matches_the_same_filter_in_python(
    db_path: Path, populated: list[Spread], query: AlertQuery,
) -> None:
    def wanted(s: Spread) -> bool:
        return ((not query.symbols or s.symbol in query.symbols)
                and (not query.pairs or (s.buy_exchange, s.sell_exchange) in query.pairs)
                and (query.since_ts_ms is None or s.window_end_ms >= query.since_ts_ms)
                and (query.until_ts_ms is None or s.window_end_ms < query.until_ts_ms)
                and (query.min_net_bps is None or s.net_spread_bps >= query.min_net_bps)
                and (not query.statuses or (s is populated[0]) == (DELIVERED in query.statuses)))

    with open_reader(db_path) as conn:
        assert conn is not None
        found = recent_alerts(conn, 100, query)
        summary = summarize(conn, query, today_start_ts_ms=WINDOW_END_MS + 1)

    expected = [s for s in populated if wanted(s)]
    assert sorted(a.id for a in found) == sorted(s.id for s in expected)
    assert summary.total == len(expected)
    assert summary.today == sum(1 for s in expected if s.window_end_ms >= WINDOW_END_MS + 1)
    if expected:
        assert summary.max_net_spread_bps == pytest.approx(
            max(s.net_spread_bps for s in expected))
        assert summary.best is not None
        assert summary.best.net_spread_bps == pytest.approx(summary.max_net_spread_bps)
        assert summary.total_est_profit_usd == pytest.approx(
            sum(s.est_profit_usd or 0 for s in expected))
    else:
        assert summary.best is None and summary.total_est_profit_usd is None


def test_options_list_what_the_store_holds(db_path: Path, populated: list[Spread]) -> None:
    with open_reader(db_path) as conn:
        found = options(conn)

    assert found.symbols == ("BTC-USD", "ETH-USD")
    assert found.pairs == (("binance", "coinbase"), ("coinbase", "binance"))
    assert options(None) == HistoryOptions((), ())


def test_utc_day_start() -> None:
    assert utc_day_start_ts_ms(WINDOW_END_MS) == WINDOW_END_MS - (12 * 3600 + 1) * 1000
