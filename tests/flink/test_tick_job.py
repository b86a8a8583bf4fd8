"""The tick path of the real job (Flink MiniCluster, Tansu): every quote checked when it
arrives, opportunities as episodes, record for record against the plain-Python reference and
against what each scenario is there to show."""

from __future__ import annotations

import json
import math

import pytest

from services.common.config import DetectionSettings
from services.common.episodes import episode_records
from services.common.kafka import ensure_topics
from services.common.messages import Episode, parse_episode, parse_spread
from services.common.reference import detect
from services.common.ticks import evaluate_ticks
from tests.flink.compare import assert_same_episodes
from tests.flink.scenarios import FEES, T0, TICK_CB, TICK_SHOCK_BID, tick_scenario_records
from tests.helpers import flink_env, produce_raw, read_topic, run_bounded_job

pytestmark = pytest.mark.integration

SETTINGS_ENV = {
    "ARB_TAKER_FEE_BPS": FEES,
    "ARB_VENUES": "coinbase,binance,kraken",
    "ARB_MIN_SPREAD_USD": "50",
    "ARB_MIN_NET_BPS": "0",
    "ARB_FEED_LATENCY_MS": "250,binance=900",
    "ARB_EXECUTION_MS": "300",
}


def btc(start_offset_ms: int, buy: str = "coinbase", sell: str = "binance") -> str:
    return f"BTC-USD|{buy}|{sell}|{T0 + start_offset_ms}"


@pytest.fixture(scope="module")
def job_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Episode], list[Episode],
                                                                   list]:
    """One bounded run over the tick scenario: (episode records, reference's, alert windows)."""
    from services.common.broker import LocalBroker, free_port

    with LocalBroker(port=free_port()) as broker:
        topics = {k: f"{k}-ticks" for k in ("prices", "spreads", "alerts", "episodes")}
        ensure_topics(broker.bootstrap_servers, topics.values(), partitions=1)
        records = tick_scenario_records()
        produce_raw(broker.bootstrap_servers, topics["prices"], records)
        log = tmp_path_factory.mktemp("tick-job") / "flink.log"
        run_bounded_job(flink_env(broker.bootstrap_servers, topics, **SETTINGS_ENV), log)
        actual = [parse_episode(v) for v, _ in read_topic(broker.bootstrap_servers,
                                                          topics["episodes"])]
        alerts = [parse_spread(v) for v, _ in read_topic(broker.bootstrap_servers,
                                                         topics["alerts"])]
    settings = DetectionSettings.from_env(SETTINGS_ENV)
    expected = episode_records(evaluate_ticks(records, settings), settings)
    return actual, expected, alerts


def closed(records: list[Episode]) -> dict[str, Episode]:
    return {e.id: e for e in records if not e.is_open}


def test_tick_episodes_match_reference(job_output) -> None:
    actual, expected, _ = job_output
    assert len(expected) == 18
    assert_same_episodes(actual, expected)


def test_each_scenario_shows_what_it_is_for(job_output) -> None:
    actual, _, _ = job_output
    episodes = closed(actual)
    assert sorted(episodes) == sorted([
        btc(1100), btc(3000), btc(5000), btc(7500), btc(11_100),
        btc(3025, "kraken", "binance"), btc(5000, "kraken", "binance"),
        btc(19_000, "binance", "coinbase"), f"ETH-USD|coinbase|binance|{T0 + 19_010}",
    ])  # Kraken only while it quotes on time (B, and C within its stale time), none while its
    # clock is off (F); none at 10.5 s (Coinbase stale), none at 18 s (bad quote)
    # A: 300 ms from the opening quote to the one that ended it, two passing quotes, peaking
    # at the second ($610 over Coinbase's ask).
    a = episodes[btc(1100)]
    assert (a.start_ms, a.end_ms, a.duration_ms, a.quotes) == (T0 + 1100, T0 + 1400, 300, 2)
    assert a.peak_spread_usd == TICK_SHOCK_BID + 10 - TICK_CB[1]
    net = [(s / TICK_CB[1] * 10000 - 70) for s in (600, 610)]
    assert math.isclose(a.peak_net_spread_bps, net[1], rel_tol=1e-12)
    assert math.isclose(a.mean_net_spread_bps, sum(net) / 2, rel_tol=1e-12)
    assert math.isclose(a.peak_est_profit_usd, net[1] / 10000 * TICK_CB[1] * 1.5)
    # B: flicker every 50 ms for half a second is one episode.
    b = episodes[btc(3000)]
    assert (b.end_ms, b.quotes) == (T0 + 3450, 6)
    # C: 800 ms without a pass is within the 1 s gap; 1.5 s is not.
    assert (episodes[btc(5000)].end_ms, episodes[btc(5000)].quotes) == (T0 + 6000, 3)
    assert episodes[btc(7500)].peak_est_profit_usd is None  # no sizes
    # E: ended by Coinbase going stale (its 11 s quote + 2 s), not by Binance's 16 s quote.
    assert episodes[btc(11_100)].end_ms == T0 + 13_000
    # Capturable: Binance's 900 ms p99 + 300 ms execution = 1200 ms needed.
    assert {e.required_ms for e in actual} == {1200}
    assert [e.id for e in episodes.values() if e.capturable] == [btc(11_100),
                                                                  f"ETH-USD|coinbase|binance|"
                                                                  f"{T0 + 19_010}"]
    # Every episode has one opened record: the opening quote alone.
    opened = {e.id: e for e in actual if e.is_open}
    assert opened.keys() == episodes.keys()
    assert all(e.quotes == 1 and e.end_ms == e.start_ms for e in opened.values())


def test_window_path_misses_the_short_opportunity(job_output) -> None:
    """The same records through the window path (1 s windows): A, inside [1 s, 2 s), is not
    in any window's last quotes, so no alert; the reference agrees with the job."""
    _, _, alerts = job_output
    settings = DetectionSettings.from_env(SETTINGS_ENV)
    assert sorted(a.id for a in alerts) == sorted(
        a.id for a in detect(tick_scenario_records(), settings).alerts)
    assert not any(a.window_end_ms == T0 + 2000 and a.symbol == "BTC-USD" for a in alerts)



def test_partitioned_by_symbol_at_parallelism_2_matches_reference(broker, unique: str,
                                                                  output_dir) -> None:
    """As in production: records keyed by symbol over 3 partitions, the job at parallelism 2.
    Each symbol's records keep their order in their partition, so the episodes are the same."""
    from services.common.kafka import make_producer

    topics = {k: f"{k}-{unique}" for k in ("prices", "spreads", "alerts", "episodes")}
    ensure_topics(broker.bootstrap_servers, topics.values(), partitions=3)
    records = tick_scenario_records()
    producer = make_producer(broker.bootstrap_servers)
    for record in records:
        symbol = json.loads(record).get("symbol") if record.startswith(b"{") else None
        producer.produce(topics["prices"], key=(symbol or "none").encode(), value=record)
    assert producer.flush(15) == 0

    run_bounded_job(flink_env(broker.bootstrap_servers, topics, ARB_FLINK_PARALLELISM="2",
                              **SETTINGS_ENV), output_dir / "flink.log")

    actual = [parse_episode(v) for v, _ in read_topic(broker.bootstrap_servers,
                                                      topics["episodes"])]
    settings = DetectionSettings.from_env(SETTINGS_ENV)
    assert_same_episodes(actual, episode_records(evaluate_ticks(records, settings), settings))
