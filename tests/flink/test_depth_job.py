"""Depth ladders through the real job (Flink MiniCluster, Tansu): the executable size and profit
of spreads, alerts and episodes, record for record against the plain-Python reference, on both
paths, and what each scenario (tests/flink/scenarios.py) is there to show."""

from __future__ import annotations

import json
import math

import pytest

from services.common.config import DetectionSettings
from services.common.episodes import episode_records
from services.common.kafka import ensure_topics
from services.common.messages import Episode, Spread, parse_episode, parse_spread
from services.common.reference import detect
from services.common.ticks import evaluate_ticks
from tests.flink.compare import assert_same_episodes, assert_same_spreads
from tests.flink.scenarios import (
    DEPTH_TICK_SYMBOL,
    FEES,
    T0,
    depth_tick_records,
    depth_window_records,
)
from tests.helpers import flink_env, produce_raw, read_topic, run_bounded_job

pytestmark = pytest.mark.integration

SETTINGS_ENV = {
    "ARB_TAKER_FEE_BPS": FEES,
    "ARB_VENUES": "coinbase,binance",
    "ARB_MIN_SPREAD_USD": "50",
    "ARB_MIN_NET_BPS": "0",
    "ARB_MAX_SPREAD_BPS": "500",
    "ARB_DEPTH_NOTIONALS_USD": "1000,10000,100000",
}
EXECUTABLE = ("executable_usd", "executable_size", "executable_profit_usd")


def depth_records() -> list[bytes]:
    """Both scenarios on one partition, merged by event time (each keeps its own order)."""
    timed = [(json.loads(r)["ts_ms"], i, r) for i, r in enumerate(
        [*depth_window_records(), *depth_tick_records()])]
    return [r for _, _, r in sorted(timed)]


Output = tuple[list[Spread], list[Spread], list[Episode]]


def run_job(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Output:
    from services.common.broker import LocalBroker, free_port

    with LocalBroker(port=free_port()) as broker:
        topics = {k: f"{k}-depth" for k in ("prices", "spreads", "alerts", "episodes")}
        ensure_topics(broker.bootstrap_servers, topics.values(), partitions=1)
        produce_raw(broker.bootstrap_servers, topics["prices"], depth_records())
        log = tmp_path_factory.mktemp("depth-job") / "flink.log"
        run_bounded_job(flink_env(broker.bootstrap_servers, topics, **env), log)

        def read(name: str) -> list[bytes]:
            return [v for v, _ in read_topic(broker.bootstrap_servers, topics[name])]

        return ([parse_spread(v) for v in read("spreads")],
                [parse_spread(v) for v in read("alerts")],
                [parse_episode(v) for v in read("episodes")])


@pytest.fixture(scope="module")
def job_output(tmp_path_factory: pytest.TempPathFactory) -> Output:
    return run_job(tmp_path_factory, SETTINGS_ENV)


def expected(env: dict[str, str]) -> Output:
    settings = DetectionSettings.from_env(env)
    records = depth_records()
    found = detect(records, settings)
    return found.spreads, found.alerts, episode_records(evaluate_ticks(records, settings),
                                                        settings)


def test_depth_matches_reference_on_both_paths(job_output: Output) -> None:
    spreads, alerts, episodes = job_output
    want_spreads, want_alerts, want_episodes = expected(SETTINGS_ENV)
    assert sum(s.executable_usd is not None for s in want_spreads) >= 4
    assert sum(e.executable_usd is not None for e in want_episodes) >= 6
    assert_same_spreads(spreads, want_spreads)
    assert_same_spreads(alerts, want_alerts)
    assert_same_episodes(episodes, want_episodes)


def _executable(record: Spread | Episode) -> tuple[float | None, ...]:
    return tuple(getattr(record, name) for name in EXECUTABLE)


def test_each_window_scenario_shows_what_it_is_for(job_output: Output) -> None:
    _, alerts, _ = job_output
    by_window = {(a.window_end_ms - T0) // 1000 - 1: a for a in alerts
                 if a.symbol == "SOL-USD" and a.buy_exchange == "coinbase"}
    assert sorted(by_window) == [0, 1, 2, 3, 4, 5, 6]  # top of book passes in every window
    assert [by_window[w].executable_usd for w in range(7)] == [
        100000.0, 1000.0, None, None, None, 10000.0, 100000.0]
    # D0: $100k at Coinbase's $100k ask (60,050), 14.93 bps net of fees.
    usd, size, profit = _executable(by_window[0])
    assert size == 100000 / 60050
    assert math.isclose(profit, (510 / 60050 * 10000 - 70) / 10000 * 100000, rel_tol=1e-12)
    # D1: top of book passes, the second size does not: exactly the first size.
    usd, size, profit = _executable(by_window[1])
    assert (usd, size) == (1000.0, 1000 / 60003)
    assert math.isclose(profit, (602 / 60003 * 10000 - 70) / 10000 * 1000, rel_tol=1e-12)
    assert by_window[1].est_profit_usd is not None  # top of book still estimated
    assert all(_executable(by_window[w]) == (None, None, None) for w in (2, 3, 4))


def test_each_tick_scenario_shows_what_it_is_for(job_output: Output) -> None:
    _, _, episodes = job_output
    ours = {(e.start_ms - T0, e.is_open): e for e in episodes if e.symbol == DEPTH_TICK_SYMBOL
            and e.buy_exchange == "coinbase"}
    assert sorted(ours) == [(start, is_open) for start in (1000, 4000, 7000, 10_000)
                            for is_open in (False, True)]
    deep = 100000.0
    assert ours[(1000, True)].executable_usd == deep  # P: the opening quote's
    assert ours[(1000, False)].executable_usd == deep  # and the peak, though a later one: $1k
    # R: opened without depth, even though Binance's last ladder (4 s before) was deep
    assert _executable(ours[(7000, True)]) == (None, None, None)
    assert ours[(7000, False)].executable_usd == deep
    assert ours[(10_000, False)].executable_usd == 1000.0  # S: too thin beyond $1k


def test_without_a_ladder_configured_the_job_runs_with_null_executable_fields(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    env = {**SETTINGS_ENV, "ARB_DEPTH_NOTIONALS_USD": "none"}
    spreads, alerts, episodes = run_job(tmp_path_factory, env)
    want_spreads, want_alerts, want_episodes = expected(env)
    assert_same_spreads(spreads, want_spreads)
    assert_same_spreads(alerts, want_alerts)
    assert_same_episodes(episodes, want_episodes)
    assert alerts and episodes
    assert all(_executable(r) == (None, None, None) for r in [*spreads, *episodes])
