"""All six venues end to end: ``ARB_VENUES=coinbase,binance,kraken,okx,bybit,bitstamp``, the
producer replaying one recording of each (Bybit's spot frames, Bitstamp's diff book from its
REST snapshot) into Tansu, then the Flink job over them. Every venue must reach Kafka with
quotes, the window path must pair every venue and find exactly the alerts of the plain-Python
reference, and the tick path must open episodes for shocks on the two new venues."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.common.config import DetectionSettings
from services.common.kafka import ensure_topics
from services.common.messages import Quote, parse_episode, parse_price_record, parse_spread
from services.common.reference import detect
from tests.helpers import REPO, flink_env, read_topic, run_bounded_job

pytestmark = pytest.mark.integration

VENUES = ("coinbase", "binance", "kraken", "okx", "bybit", "bitstamp")
#: (exchange, delta $, start s, duration s): Bybit up (sell there), Bitstamp down (buy there)
SHOCKS = (("bybit", +400, 10, 2), ("bitstamp", -400, 20, 2))


def test_six_venues_replay_through_the_job(broker, unique: str, output_dir: Path,
                                           fixtures_dir: Path) -> None:
    topics = {k: f"{k}-{unique}" for k in ("prices", "spreads", "alerts", "episodes")}
    ensure_topics(broker.bootstrap_servers, topics.values(), partitions=1)
    env = flink_env(broker.bootstrap_servers, topics, ARB_VENUES=",".join(VENUES),
                    ARB_PRODUCER_METRICS_PORT="0", ARB_FIXTURES_DIR=str(fixtures_dir))
    argv = [sys.executable, "-m", "services.producer", "replay", "--speed", "max",
            "--fixtures-dir", str(fixtures_dir)]
    for exchange, delta, start_s, duration_s in SHOCKS:
        argv += ["--shock", f"{exchange}:BTC-USD:{delta:+d}@{start_s}:{duration_s}"]
    log_file = output_dir / "producer.log"
    with open(log_file, "wb") as log:
        proc = subprocess.run(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                              timeout=120, check=False)
    assert proc.returncode == 0, log_file.read_text()[-3000:]

    raw_prices = [v for v, _ in read_topic(broker.bootstrap_servers, topics["prices"])]
    records = [parse_price_record(v) for v in raw_prices]
    fresh = {r.exchange for r in records if isinstance(r, Quote) and not r.refresh}
    assert fresh == set(VENUES), f"quotes from {sorted(fresh)}"
    assert {r.symbol for r in records} == {"BTC-USD"}

    run_bounded_job(env, output_dir / "flink.log", timeout_s=600)  # six venues, two cores
    spreads = [parse_spread(v) for v, _ in read_topic(broker.bootstrap_servers,
                                                       topics["spreads"])]
    pairs = {(s.buy_exchange, s.sell_exchange) for s in spreads}
    assert {v for pair in pairs for v in pair} == set(VENUES)
    assert len(pairs) == len(VENUES) * (len(VENUES) - 1)  # every ordered pair was compared

    expected = detect(raw_prices, DetectionSettings.from_env({"ARB_VENUES": ",".join(VENUES)}))
    alerts = [parse_spread(v) for v, _ in read_topic(broker.bootstrap_servers, topics["alerts"])]
    assert sorted(a.id for a in alerts) == sorted(a.id for a in expected.alerts)
    assert any(a.sell_exchange == "bybit" for a in alerts), "the Bybit shock raised no alert"
    assert any(a.buy_exchange == "bitstamp" for a in alerts), "the Bitstamp shock: no alert"

    episodes = [parse_episode(v) for v, _ in read_topic(broker.bootstrap_servers,
                                                         topics["episodes"])]
    opened = {(e.buy_exchange, e.sell_exchange) for e in episodes if e.is_open}
    assert any(sell == "bybit" for _, sell in opened), opened
    assert any(buy == "bitstamp" for buy, _ in opened), opened
    assert {v for pair in opened for v in pair} <= set(VENUES)
