"""The detection job in a real Flink MiniCluster against a real Tansu broker, checked record
for record against the plain-Python reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.config import DetectionSettings
from services.common.kafka import ensure_topics
from services.common.messages import parse_spread
from services.common.reference import detect
from tests.flink.compare import assert_same_episodes, assert_same_spreads
from tests.flink.scenarios import FEES, T0, window_records
from tests.helpers import flink_env, produce_raw, read_topic, run_bounded_job

pytestmark = pytest.mark.integration

SETTINGS_ENV = {
    "ARB_TAKER_FEE_BPS": FEES,
    "ARB_MIN_SPREAD_USD": "50",
    "ARB_MIN_NET_BPS": "0",
    "ARB_MAX_SPREAD_BPS": "500",
}


def test_scenarios_match_reference(broker, unique: str, output_dir: Path) -> None:
    topics = {k: f"{k}-{unique}" for k in ("prices", "spreads", "alerts")}
    ensure_topics(broker.bootstrap_servers, topics.values(), partitions=1)
    records = window_records()
    produce_raw(broker.bootstrap_servers, topics["prices"], records)

    run_bounded_job(flink_env(broker.bootstrap_servers, topics, **SETTINGS_ENV),
                    output_dir / "flink.log")

    spreads = [parse_spread(v) for v, _ in read_topic(broker.bootstrap_servers, topics["spreads"])]
    alerts = [parse_spread(v) for v, _ in read_topic(broker.bootstrap_servers, topics["alerts"])]
    expected = detect(records, DetectionSettings.from_env(SETTINGS_ENV))

    assert_same_spreads(spreads, expected.spreads)
    assert_same_spreads(alerts, expected.alerts)

    # And what each scenario is there to show, stated independently of the reference:
    alert_ids = {a.id for a in alerts}
    spread_ids = {s.id for s in spreads}
    assert alert_ids == {
        f"BTC-USD|{T0 + 1000}|coinbase|binance",  # W0: $604, 29 bps net
        f"ETH-USD|{T0 + 8000}|coinbase|binance",  # W7: $59.5, 128 bps net
        f"ETH-USD|{T0 + 8000}|kraken|binance",  # W7: $69.5, 202 bps net
    }
    w0 = next(a for a in alerts if a.window_end_ms == T0 + 1000)
    assert (w0.buy_ask, w0.sell_bid) == (60006, 60610)  # out-of-order update used
    assert f"BTC-USD|{T0 + 2000}|coinbase|binance" in spread_ids  # fees: spread, no alert
    assert f"BTC-USD|{T0 + 3000}|coinbase|binance" in spread_ids  # bad quote: spread, no alert
    assert not any(s.window_end_ms == T0 + 5000 for s in spreads)  # silent venue: no pair
    live = next(s for s in spreads if s.id == f"BTC-USD|{T0 + 6000}|coinbase|binance")
    assert live.quote_age_ms == 6000 - 3200  # quiet but live venue kept by its refresh
    assert live.buy_ask == 59991  # and the late 59001 quote for W5 was dropped
    assert expected.late_records == 1
    w7 = [s for s in spreads if s.window_end_ms == T0 + 8000]
    assert len(w7) == 12  # 2 symbols x 6 ordered pairs of 3 venues


@pytest.mark.parametrize(("mode", "window_ms", "min_spreads"), [
    ("arb", None, 80),
    ("seed", None, 8),
    # 250 ms windows on the derived watermark (50 ms) and quote refresh (125 ms)
    ("arb", "250", 320),
])
def test_recorded_data_match_reference(mode: str, window_ms: str | None, min_spreads: int,
                                       broker, unique: str, output_dir: Path,
                                       fixtures_dir: Path) -> None:
    """The aligned real Coinbase and Binance recordings, in both modes and with short windows,
    demo threshold; the tick path's episodes too (they do not depend on the window)."""
    from services.common.config import ProducerSettings
    from services.common.episodes import episode_records
    from services.common.messages import parse_episode, to_json
    from services.common.ticks import evaluate_ticks
    from services.producer.replay import build_replay

    env = {"ARB_MODE": mode, "DEMO_MODE": "TRUE"} | ({"ARB_WINDOW_MS": window_ms}
                                                     if window_ms else {})
    topics = {k: f"{k}-{unique}" for k in ("prices", "spreads", "alerts", "episodes")}
    ensure_topics(broker.bootstrap_servers, topics.values(), partitions=1)
    refresh_ms = ProducerSettings.from_env(env).refresh_ms
    records = [to_json(r) for r in build_replay(fixtures_dir, start_ms=T0, refresh_ms=refresh_ms)]
    produce_raw(broker.bootstrap_servers, topics["prices"], records)

    run_bounded_job(flink_env(broker.bootstrap_servers, topics, **env), output_dir / "flink.log")

    spreads = [parse_spread(v) for v, _ in read_topic(broker.bootstrap_servers, topics["spreads"])]
    alerts = [parse_spread(v) for v, _ in read_topic(broker.bootstrap_servers, topics["alerts"])]
    settings = DetectionSettings.from_env(env)
    expected = detect(records, settings)
    assert len(expected.spreads) >= min_spreads
    assert {s.window_end_ms - s.window_start_ms for s in spreads} == {settings.window_ms}
    assert expected.alerts, "demo threshold should make the aligned noise alert"
    assert_same_spreads(spreads, expected.spreads)
    assert_same_spreads(alerts, expected.alerts)
    episodes = [parse_episode(v) for v, _ in
                read_topic(broker.bootstrap_servers, topics["episodes"])]
    expected_episodes = episode_records(evaluate_ticks(records, settings), settings)
    assert any(e.quotes > 1 for e in expected_episodes), "no episode spans several quotes"
    assert sum(not e.is_open for e in expected_episodes) >= 3
    assert_same_episodes(episodes, expected_episodes)
    if mode == "seed":
        assert all(s.window_end_ms - s.window_start_ms == 10_000 for s in spreads)
        assert all(s.buy_size is None and s.max_size is None for s in spreads)
