"""Opportunity episodes from the real job (Flink MiniCluster, Tansu), checked record for record
against the plain-Python reference and against what each scenario is there to show."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from services.common.config import DetectionSettings
from services.common.episodes import episode_records
from services.common.kafka import ensure_topics
from services.common.messages import Episode, parse_episode
from services.common.reference import detect
from tests.flink.compare import assert_same_episodes
from tests.flink.scenarios import EPISODE_BASE_ASK, FEES, T0, episode_scenario_records
from tests.helpers import flink_env, produce_raw, read_topic, run_bounded_job

pytestmark = pytest.mark.integration

SETTINGS_ENV = {
    "ARB_TAKER_FEE_BPS": FEES,
    "ARB_MIN_SPREAD_USD": "50",
    "ARB_MIN_NET_BPS": "0",
    "ARB_FEED_LATENCY_MS": "250,binance=900",
    "ARB_EXECUTION_MS": "300",
}


def net_bps(spread_usd: float, fees_bps: float = 70.0) -> float:
    """Net bps of the scenario's BTC spread, computed as the job does (ask = the base ask)."""
    return spread_usd / EPISODE_BASE_ASK * 10000 - fees_bps


def run_job(broker, unique: str, output_dir: Path, gap_windows: int) -> tuple[list[Episode],
                                                                             list[Episode]]:
    topics = {k: f"{k}-{unique}" for k in ("prices", "spreads", "alerts", "episodes")}
    ensure_topics(broker.bootstrap_servers, topics.values(), partitions=1)
    records = episode_scenario_records()
    produce_raw(broker.bootstrap_servers, topics["prices"], records)
    env = {**SETTINGS_ENV, "ARB_EPISODE_GAP_WINDOWS": str(gap_windows)}

    run_bounded_job(flink_env(broker.bootstrap_servers, topics, **env), output_dir / "flink.log")

    actual = [parse_episode(v) for v, _ in read_topic(broker.bootstrap_servers,
                                                      topics["episodes"])]
    settings = DetectionSettings.from_env(env)
    expected = episode_records(detect(records, settings).alerts, settings)
    return actual, expected


def closed(records: list[Episode]) -> dict[str, Episode]:
    return {e.id: e for e in records if not e.is_open}


def test_episodes_span_windows_and_match_reference(broker, unique: str,
                                                   output_dir: Path) -> None:
    actual, expected = run_job(broker, unique, output_dir, gap_windows=2)

    assert_same_episodes(actual, expected)
    # Independently of the reference: W1-W3 and W5 (one quiet window, within a 2-window gap)
    # are ONE episode of 4 windows, from W1's start to W5's end, peaking in W2 ($800).
    a = closed(actual)[f"BTC-USD|coinbase|binance|{T0 + 2000}"]
    assert (a.start_ms, a.end_ms, a.duration_ms) == (T0 + 1000, T0 + 6000, 5000)
    assert (a.windows, a.confirmed_ms) == (4, 4000)
    assert a.peak_spread_usd == 800
    assert math.isclose(a.peak_net_spread_bps, net_bps(800), rel_tol=1e-12)
    assert math.isclose(a.mean_net_spread_bps,
                        sum(net_bps(s) for s in (500, 800, 650, 450)) / 4, rel_tol=1e-12)
    # max size 1.5 (Binance's bid size) at the $60,001 ask
    assert math.isclose(a.peak_est_profit_usd, net_bps(800) / 10000 * EPISODE_BASE_ASK * 1.5)
    # Three quiet windows (W6-W8) split: W9-W10 is a second episode.
    b = closed(actual)[f"BTC-USD|coinbase|binance|{T0 + 10000}"]
    assert (b.windows, b.duration_ms, b.end_ms) == (2, 2000, T0 + 11000)
    # The reverse direction is an episode of its own; one window confirms nothing.
    c = closed(actual)[f"BTC-USD|binance|coinbase|{T0 + 13000}"]
    assert (c.windows, c.confirmed_ms, c.capturable) == (1, 0, False)
    # Another symbol at the same time is another episode.
    eth = closed(actual)[f"ETH-USD|coinbase|binance|{T0 + 3000}"]
    assert (eth.windows, eth.start_ms, eth.end_ms) == (2, T0 + 2000, T0 + 4000)
    assert len(closed(actual)) == 4
    # Every episode has one opened record (first window only) and one closed record.
    opened = {e.id: e for e in actual if e.is_open}
    assert opened.keys() == closed(actual).keys()
    assert all(e.windows == 1 and e.end_ms == e.first_window_end_ms for e in opened.values())
    # Capturable: Binance's configured 900 ms p99 + 300 ms execution = 1200 ms needed.
    assert {e.required_ms for e in actual} == {1200}
    assert a.capturable and not b.capturable  # 4000 ms seen vs 1000 ms seen


def test_gap_longer_than_session_gap_splits(broker, unique: str, output_dir: Path) -> None:
    """With a 1-window gap, W4's missing alert splits W1-W3 from W5."""
    actual, expected = run_job(broker, unique, output_dir, gap_windows=1)

    assert_same_episodes(actual, expected)
    episodes = closed(actual)
    first = episodes[f"BTC-USD|coinbase|binance|{T0 + 2000}"]
    second = episodes[f"BTC-USD|coinbase|binance|{T0 + 6000}"]
    assert (first.windows, first.end_ms, first.duration_ms) == (3, T0 + 4000, 3000)
    assert (second.windows, second.start_ms, second.duration_ms) == (1, T0 + 5000, 1000)
    assert len(episodes) == 5
