"""End to end on real parts: Tansu, the producer replaying recorded Coinbase and Binance frames
with injected price shocks, the Flink job in a MiniCluster, and the alerter posting to a local
HTTP server standing in for Discord. The alerts must be exactly those the plain-Python reference
finds on the same input, each delivered once and stored once."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from services.alerter.discord import build_payload
from services.common.config import DetectionSettings
from services.common.kafka import ensure_topics
from services.common.messages import parse_spread
from services.common.reference import detect
from tests.helpers import REPO, flink_env, produce_raw, read_topic, run_bounded_job
from tests.support.discord_standin import DiscordStandIn

pytestmark = pytest.mark.integration

# (exchange, delta $, start s, duration s): two shocks that open a spread well above the $50
# default, one that stays below it. On the aligned recordings Coinbase's ask sits $21.4 to $131
# above Binance's bid at every moment, so buying Coinbase and selling Binance is always under
# water: +$300 (or Coinbase -$250) clears $50 whatever the window alignment, +$40 never can.
BIG_BINANCE = ("binance", +300, 10, 2)
BIG_COINBASE = ("coinbase", -250, 20, 2)
SMALL_BINANCE = ("binance", +40, 30, 2)
SHOCKS = (BIG_BINANCE, BIG_COINBASE, SMALL_BINANCE)
DEFAULT_WINDOW_MS = 1000


def shock_spec(exchange: str, delta: int, start_s: int, duration_s: int) -> str:
    return f"{exchange}:BTC-USD:{delta:+d}@{start_s}:{duration_s}"


def service_env(bootstrap: str, topics: dict[str, str], **extra: str) -> dict[str, str]:
    env = flink_env(bootstrap, topics)
    env.update(extra)
    return env


def run_replay(env: dict[str, str], fixtures_dir: Path, log_file: Path) -> None:
    argv = [sys.executable, "-m", "services.producer", "replay", "--speed", "max",
            "--fixtures-dir", str(fixtures_dir)]
    for shock in SHOCKS:
        argv += ["--shock", shock_spec(*shock)]
    with open(log_file, "wb") as log:
        proc = subprocess.run(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                              timeout=120, check=False)
    assert proc.returncode == 0, log_file.read_text()[-3000:]


def overlaps(window_start_ms: int, window_end_ms: int, shock_start_ms: int, dur_ms: int) -> bool:
    return window_start_ms < shock_start_ms + dur_ms and shock_start_ms < window_end_ms


def test_replay_to_discord_matches_reference(broker, unique: str, output_dir: Path,
                                             fixtures_dir: Path, tmp_path: Path) -> None:
    topics = {k: f"{k}-{unique}" for k in ("prices", "spreads", "alerts")}
    ensure_topics(broker.bootstrap_servers, topics.values(), partitions=1)
    history_db = tmp_path / "alerts.db"
    # Broken records on both topics: counted and skipped by the job and the alerter.
    produce_raw(broker.bootstrap_servers, topics["prices"],
                [b"not json at all", b'{"v":1,"type":"quote","exchange":"binance"}'])
    produce_raw(broker.bootstrap_servers, topics["alerts"], [b"\x00garbage", b'{"v":1}'])

    with DiscordStandIn() as discord:
        env = service_env(
            broker.bootstrap_servers, topics,
            DISCORD_WEBHOOK_URL=discord.url, ARB_HISTORY_DB=str(history_db),
            ARB_ALERTER_GROUP_ID=f"alerter-{unique}", ARB_ALERTER_METRICS_PORT="0",
            ARB_PRODUCER_METRICS_PORT="0", ARB_FIXTURES_DIR=str(fixtures_dir),
            ARB_ALERT_COOLDOWN_SECONDS="0",  # every reference alert is expected on Discord
            ARB_DISCORD_MESSAGES="alerts",
        )
        alerter_log = open(output_dir / "alerter.log", "wb")  # noqa: SIM115
        alerter = subprocess.Popen([sys.executable, "-m", "services.alerter"], cwd=REPO,
                                   env=env, stdout=alerter_log, stderr=subprocess.STDOUT)
        try:
            run_replay(env, fixtures_dir, output_dir / "producer.log")
            run_bounded_job(env, output_dir / "flink.log")

            raw_prices = [v for v, _ in read_topic(broker.bootstrap_servers, topics["prices"])]
            expected = detect(raw_prices, DetectionSettings.from_env({})).alerts
            flink_alerts = [parse_spread(v) for v, _ in
                            read_topic(broker.bootstrap_servers, topics["alerts"])[2:]]
            assert sorted(a.id for a in flink_alerts) == sorted(a.id for a in expected)

            posted = discord.wait_for(len(expected), timeout_s=60)
            assert alerter.poll() is None, "alerter died"
        finally:
            alerter.send_signal(signal.SIGTERM)
            alerter.wait(timeout=30)
            alerter_log.close()
        assert alerter.returncode == 0, (output_dir / "alerter.log").read_text()[-3000:]

    # Exactly the reference's alerts, each posted once, with the reference's numbers.
    assert len(expected) >= 2
    assert Counter(json.dumps(p, sort_keys=True) for p in posted) == Counter(
        json.dumps(build_payload(a, "http://localhost:8501"), sort_keys=True) for a in expected
    )
    with sqlite3.connect(history_db) as conn:
        rows = conn.execute("SELECT id, status FROM alerts").fetchall()
    assert Counter(i for i, _ in rows) == Counter(a.id for a in expected)
    assert {s for _, s in rows} == {"delivered"}

    # The shocks did what they were injected for, judged on the replay's own time base.
    first_ts = min(r for r in (_ts(v) for v in raw_prices) if r is not None)
    for exchange, delta, start_s, duration_s in SHOCKS:
        shock_start = first_ts + start_s * 1000
        hits = [a for a in expected
                if overlaps(a.window_start_ms, a.window_end_ms, shock_start, duration_s * 1000)]
        if (exchange, delta, start_s, duration_s) == SMALL_BINANCE:
            assert hits == [], f"a shock below the threshold alerted: {hits}"
        else:
            # Binance up or Coinbase down: both make "buy Coinbase, sell Binance" pay.
            assert hits, f"shock {exchange} {delta:+d} at {start_s}s raised no alert"
            assert {(a.buy_exchange, a.sell_exchange) for a in hits} == {("coinbase", "binance")}
    assert all(any(overlaps(a.window_start_ms, a.window_end_ms, first_ts + s * 1000, d * 1000)
                   for _, _, s, d in SHOCKS) for a in expected), "an alert outside every shock"


def _ts(raw: bytes) -> int | None:
    try:
        value = json.loads(raw).get("ts_ms")
    except ValueError:
        return None
    return value if isinstance(value, int) else None
