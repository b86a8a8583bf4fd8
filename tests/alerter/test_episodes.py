"""Opportunity episodes in the alerter: stored in the history, one Discord message when an
episode opens and one short update when it closes, never one per alert window.

The records are what the Flink job writes for the tick scenario (the reference computes them;
tests/flink/test_tick_job.py shows the job writes the same)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.alerter.metrics import AlerterMetrics
from services.alerter.service import DUPLICATE, SENT, AlerterService, EpisodeHandler
from services.common.config import AlerterSettings, DetectionSettings, KafkaSettings
from services.common.episodes import episode_records
from services.common.history import (
    CLOSED,
    DELIVERED,
    OPENED,
    SKIPPED,
    SUPPRESSED,
    AlertHistory,
    read_episodes,
    read_recent,
)
from services.common.kafka import ensure_topics
from services.common.messages import Episode, Spread, to_json
from services.common.reference import detect
from services.common.ticks import evaluate_ticks
from tests.alerter.conftest import Topics, fast_webhook
from tests.alerter.test_service import Running, sample
from tests.flink.scenarios import FEES, tick_scenario_records
from tests.support.discord_standin import DiscordStandIn
from tests.support.waiting import wait_until

SETTINGS = DetectionSettings.from_env({"ARB_TAKER_FEE_BPS": FEES, "ARB_MIN_NET_BPS": "0",
                                       "ARB_VENUES": "coinbase,binance,kraken"})


def scenario() -> tuple[list[Spread], list[Episode]]:
    """The scenario's alert windows and its episode records, each episode's opening before its
    closing as in a job's output: 9 episodes (the window path alerts far less often)."""
    records = tick_scenario_records()
    alerts = detect(records, SETTINGS).alerts
    return alerts, episode_records(evaluate_ticks(records, SETTINGS), SETTINGS)


def footers(discord: DiscordStandIn) -> list[str]:
    return [p["embeds"][0]["footer"]["text"] for p in discord.accepted]


def handler(history: AlertHistory, metrics: AlerterMetrics, url: str | None) -> EpisodeHandler:
    webhook = fast_webhook(url, max_attempts=2) if url else None
    return EpisodeHandler(history, metrics, "episodes", webhook=webhook,
                          dashboard_url="http://dash.example")


def test_one_opening_and_one_closing_message_per_episode(tmp_path: Path,
                                                         discord: DiscordStandIn) -> None:
    _, records = scenario()
    metrics = AlerterMetrics(CollectorRegistry())
    with AlertHistory(tmp_path / "alerts.db") as history:
        handle = handler(history, metrics, discord.url).handle

        outcomes = [handle(to_json(r)).kind for r in records]
        again = [handle(to_json(r)).kind for r in records]  # a redelivery or replay

        stored = {e.id: e for e in history.recent_episodes()}
    closed = [r for r in records if not r.is_open]
    assert outcomes == [SENT] * len(records) and again == [DUPLICATE] * len(records)
    assert footers(discord) == [f"episode {r.id} {'opened' if r.is_open else 'closed'}"
                                for r in records]
    assert len(closed) == 9
    for episode in closed:
        row = stored[episode.id]
        assert (row.opened_status, row.closed_status) == (DELIVERED, DELIVERED)
        assert row.to_episode() == episode  # the store holds the closed numbers
    longest = max(closed, key=lambda e: e.duration_ms)
    closing = discord.accepted[records.index(longest)]["content"]
    assert f"lasted {longest.duration_ms:,} ms ({longest.quotes} passing quote" in closing
    assert f"capturable: lasted {longest.duration_ms:,} ms, needs 550 ms" in closing
    assert sample(metrics, "arb_episodes_closed_total", symbol="BTC-USD",
                  buy_exchange="coinbase", sell_exchange="binance", capturable="true") == 2
    assert sample(metrics, "arb_episode_duration_seconds_count", capturable="false") == sum(
        not e.capturable for e in closed) == 6
    assert sample(metrics, "arb_episode_messages_sent_total", channel="discord",
                  message=CLOSED) == 9
    # Each opened, then closed: none open now.
    assert sample(metrics, "arb_episodes_open", symbol="BTC-USD", buy_exchange="coinbase",
                  sell_exchange="binance") == 0


def test_closing_record_first_gives_one_full_message(tmp_path: Path,
                                                     discord: DiscordStandIn) -> None:
    _, records = scenario()
    opened = records[0]
    closed = next(r for r in records if r.id == opened.id and not r.is_open)
    with AlertHistory(tmp_path / "alerts.db") as history:
        handle = handler(history, AlerterMetrics(CollectorRegistry()), discord.url).handle

        assert handle(to_json(closed)).kind == SENT
        assert handle(to_json(opened)).kind == DUPLICATE  # late: nothing more to say

        row = history.get_episode(closed.id)
    assert footers(discord) == [f"episode {closed.id} closed"]
    assert "seen closed" in discord.accepted[0]["content"]
    assert row is not None and not row.is_open and row.quotes == closed.quotes
    assert (row.opened_status, row.closed_status) == (SKIPPED, DELIVERED)


@pytest.mark.integration
def test_discord_gets_episode_messages_only(topics: Topics, discord: DiscordStandIn,
                                            tmp_path: Path, unique: str) -> None:
    """The default ARB_DISCORD_MESSAGES=episodes: every alert window stored, none posted;
    every episode posted twice (open, close), in the order the records came."""
    alerts, records = scenario()
    kafka = KafkaSettings(**{**topics.kafka.__dict__,
                             "episodes_topic": f"episodes-{unique}"})
    ensure_topics(kafka.bootstrap_servers, [kafka.episodes_topic], 1)
    topics.produce(kafka.alerts_topic, [to_json(a) for a in alerts])
    topics.produce(kafka.episodes_topic, [to_json(r) for r in records])
    settings = AlerterSettings(webhook_url=discord.url, history_db=str(tmp_path / "alerts.db"),
                               group_id=f"alerter-{unique}", metrics_port=0)
    assert settings.discord_messages == "episodes"
    service = AlerterService(settings, kafka, metrics=AlerterMetrics(CollectorRegistry()),
                             poll_timeout_s=0.1, spread_gauges=False)

    with Running(service):
        wait_until(lambda: len(read_recent(settings.history_db)) == len(alerts)
                   and len(discord.accepted) == len(records), 30, "alerts stored, episodes sent")
        time.sleep(0.5)  # nothing more should arrive

    assert sorted(footers(discord)) == sorted(
        f"episode {r.id} {OPENED if r.is_open else CLOSED}" for r in records)
    assert len(discord.received) == 18  # 9 episodes x (open, close); no alert window
    assert {a.status for a in read_recent(settings.history_db)} == {SUPPRESSED}
    episodes = read_episodes(settings.history_db)
    assert len(episodes) == 9 and not any(e.is_open for e in episodes)
    assert sample(service.metrics, "arb_alerts_suppressed_total",
                  reason="episodes") == len(alerts)
    assert alerts, "the window path alerts on the scenario too"
    # Tick detection latency: one sample per opened record, from its Kafka timestamp.
    assert sample(service.metrics, "arb_tick_detection_latency_seconds_count") == 9


@pytest.mark.integration
def test_open_episodes_gauge_carries_over_a_restart(topics: Topics, discord: DiscordStandIn,
                                                    tmp_path: Path, unique: str) -> None:
    """An episode opened before a restart and closed after it: the restarted alerter starts
    the gauge from the history (1), and the closing record brings it to 0, not -1."""
    _, records = scenario()
    opened = records[0]
    closed = next(r for r in records if r.id == opened.id and not r.is_open)
    labels = {"symbol": opened.symbol, "buy_exchange": opened.buy_exchange,
              "sell_exchange": opened.sell_exchange}
    kafka = KafkaSettings(**{**topics.kafka.__dict__, "episodes_topic": f"episodes-{unique}"})
    ensure_topics(kafka.bootstrap_servers, [kafka.episodes_topic], 1)
    settings = AlerterSettings(webhook_url=discord.url, history_db=str(tmp_path / "alerts.db"),
                               group_id=f"alerter-{unique}", metrics_port=0)

    def service() -> AlerterService:
        return AlerterService(settings, kafka, metrics=AlerterMetrics(CollectorRegistry()),
                              poll_timeout_s=0.1, spread_gauges=False)

    topics.produce(kafka.episodes_topic, [to_json(opened)])
    first = service()
    with Running(first):
        wait_until(lambda: len(discord.accepted) == 1, 30, "opened message sent")
    assert sample(first.metrics, "arb_episodes_open", **labels) == 1

    topics.produce(kafka.episodes_topic, [to_json(closed)])
    second = service()
    with Running(second):
        wait_until(lambda: len(discord.accepted) == 2, 30, "closed message sent")
    assert sample(second.metrics, "arb_episodes_open", **labels) == 0
    assert footers(discord) == [f"episode {opened.id} opened", f"episode {opened.id} closed"]
