"""Load benchmark: 20 symbols across 4 venues through broker, Flink job and alerter, at 10x and
at maximum replay speed. Prints throughput, lag, pipeline delay percentiles and the peak RSS of
every process. Asserts nothing.

  python bench/bench_load.py [--symbols 20] [--passes 2]

The load is the recorded Binance, OKX, Coinbase and Kraken frames aligned onto one BTC-USD
stream (Coinbase SKL-USD, OKX BTC-USDT and Kraken XMR/USD scaled to Binance's price level), then
cloned onto SYM01-USD .. SYMnn-USD at different price levels: real message shapes and timing,
synthetic symbols. Pipeline delay = Kafka timestamp of a spread record - Kafka timestamp of the
price record that moved the watermark past its window (what the job added, free of the replay's
virtual clock).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from services.common.broker import LocalBroker, free_port  # noqa: E402
from services.common.kafka import end_offsets, ensure_topics  # noqa: E402
from services.common.messages import Quote  # noqa: E402
from services.producer.metrics import ProducerMetrics  # noqa: E402
from services.producer.publisher import KafkaPublisher  # noqa: E402
from services.producer.replay import (  # noqa: E402
    Recording,
    build_replay,
    default_fixtures_dir,
    publish_replay,
    shift,
)

RECORDINGS = (
    Recording("binance.jsonl", "binance", {"BTCUSDT": "BTC-USD"}),
    Recording("okx.jsonl", "okx", {"BTC-USDT": "BTC-USD"}, match_price_of="binance"),
    Recording("coinbase_exchange_2021.jsonl", "coinbase", {"SKL-USD": "BTC-USD"},
              match_price_of="binance"),
    Recording("kraken.jsonl", "kraken", {"XMR/USD": "BTC-USD"}, match_price_of="binance"),
)
WATERMARK_MS = 200
#: Job settings to try (--set NAME=VALUE), e.g. ARB_IDLE_TIMEOUT_MS=3000.
EXTRA_ENV: dict[str, str] = {}


def load(symbols: int, passes: int) -> list:
    base = build_replay(default_fixtures_dir(), RECORDINGS, start_ms=1_700_000_000_000)
    span_ms = base[-1].ts_ms - base[0].ts_ms + 1000
    out = []
    for n in range(passes):
        for rec in base:
            moved = shift(rec, n * span_ms, f"-P{n}")
            for i in range(symbols):
                factor = 1 + i / 50  # each symbol at its own price level
                if isinstance(moved, Quote):
                    clone = replace(moved, symbol=f"SYM{i + 1:02d}-USD", bid=moved.bid * factor,
                                    ask=moved.ask * factor)
                else:
                    clone = replace(moved, symbol=f"SYM{i + 1:02d}-USD",
                                    price=moved.price * factor)
                out.append(clone)
    return out


def peak_rss_mb(pid: int) -> dict[str, float]:
    """VmHWM of a process and of all its descendants (the Flink JVM is the driver's child)."""
    result = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            name = Path(f"/proc/{current}/comm").read_text().strip()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                result[f"{name}[{current}]"] = int(line.split()[1]) / 1024
        for task in Path(f"/proc/{current}/task").iterdir():
            children = (task / "children").read_text().split() if (task / "children").exists() \
                else []
            todo.extend(int(c) for c in children)
    return result


def sample_lag(bootstrap: str, topic: str, group: str, out: list[int],
               stop: threading.Event) -> None:
    """Records of ``topic`` not yet committed by ``group``, every half second."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        while not stop.wait(0.5):
            ends = end_offsets(bootstrap, topic, timeout_s=2)
            committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=2)
            done = {tp.partition: max(tp.offset, 0) for tp in committed}
            out.append(sum(end - done.get(p, 0) for p, end in ends.items()))
    finally:
        consumer.close()


def read_stamps(bootstrap: str, topic: str, field: str) -> list[tuple[int, int]]:
    """(Kafka timestamp, value[field]) of every record of ``topic``."""
    ends = end_offsets(bootstrap, topic)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{time.time_ns()}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    rows: list[tuple[int, int]] = []
    deadline = time.monotonic() + 120
    while len(rows) < sum(ends.values()) and time.monotonic() < deadline:
        for msg in consumer.consume(20_000, 0.5):
            if not msg.error():
                rows.append((msg.timestamp()[1], json.loads(msg.value())[field]))
    consumer.close()
    return rows


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run(label: str, speed: float | None, records: list, workdir: Path) -> None:
    with LocalBroker(port=free_port()) as broker:
        bootstrap = broker.bootstrap_servers
        names = {k: f"{k}-{label}" for k in ("prices", "spreads", "alerts")}
        ensure_topics(bootstrap, names.values(), partitions=4)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "FLINK_"))}
        env.update({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "ARB_PRICES_TOPIC": names["prices"],
                    "ARB_SPREADS_TOPIC": names["spreads"], "ARB_ALERTS_TOPIC": names["alerts"],
                    "ARB_STARTUP_MODE": "earliest-offset", "ARB_FLINK_METRICS_PORT": "0",
                    "ARB_CHECKPOINT_INTERVAL_MS": "10000", "DEMO_MODE": "TRUE",
                    "ARB_CHECKPOINT_DIR": str(workdir / f"chk-{label}"),
                    "ARB_TAKER_FEE_BPS": "coinbase=60,binance=10,okx=10,kraken=26",
                    "ARB_HISTORY_DB": str(workdir / f"alerts-{label}.db"),
                    "ARB_ALERTER_METRICS_PORT": "0", "ARB_ALERTER_GROUP_ID": f"al-{label}",
                    **EXTRA_ENV})
        logs = {name: open(workdir / f"{label}-{name}.log", "wb")  # noqa: SIM115
                for name in ("flink", "alerter")}
        procs = {
            "flink": subprocess.Popen([sys.executable, "-m", "flink.job"], cwd=REPO, env=env,
                                      stdout=logs["flink"], stderr=subprocess.STDOUT),
            "alerter": subprocess.Popen([sys.executable, "-m", "services.alerter"], cwd=REPO,
                                        env=env, stdout=logs["alerter"],
                                        stderr=subprocess.STDOUT),
        }
        time.sleep(15)  # let the job come up; it reads from the earliest offset anyway
        publisher = KafkaPublisher(bootstrap, names["prices"], metrics=ProducerMetrics(
            __import__("prometheus_client").CollectorRegistry()), block=True)
        lag_samples: list[int] = []
        stop_lag = threading.Event()
        sampler = threading.Thread(target=sample_lag, daemon=True, args=(
            bootstrap, names["alerts"], f"al-{label}", lag_samples, stop_lag))
        sampler.start()
        started = time.monotonic()
        sent = publish_replay(records, publisher, speed=speed, stop=threading.Event())
        publisher.flush(60)
        produce_s = time.monotonic() - started
        # Drained when the spreads topic stops growing.
        last, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 5 and time.monotonic() - started < 600:
            now = sum(end_offsets(bootstrap, names["spreads"]).values())
            if now != last:
                last, stable_since = now, time.monotonic()
            time.sleep(1)
        drained_s = stable_since - started
        time.sleep(2)  # the alerter's last commits
        stop_lag.set()
        sampler.join()
        # This process holds the whole load in memory as records, so its peak is no measure of
        # the producer's; the producer's own bound is checked in tests/producer.
        rss = {f"broker {k}": v for k, v in peak_rss_mb(broker.pid).items()}
        for name, proc in procs.items():
            for key, mb in peak_rss_mb(proc.pid).items():
                rss[f"{name} {key}"] = mb
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.wait(60)
        prices = read_stamps(bootstrap, names["prices"], "ts_ms")
        spreads = read_stamps(bootstrap, names["spreads"], "window_end_ms")
    # For each window end: the first price record (in Kafka time order) past its watermark.
    prices.sort()
    running_max, closers = [], []
    best = -1
    for kafka_ts, ts_ms in prices:
        if ts_ms > best:
            best = ts_ms
            running_max.append(best)
            closers.append(kafka_ts)
    delays = []
    for kafka_ts, window_end in spreads:
        i = bisect.bisect_left(running_max, window_end + WATERMARK_MS - 1)
        if i < len(closers):
            delays.append((kafka_ts - closers[i]) / 1000)
    print(f"\n== {label}: {sent:,} records, {len({r.symbol for r in records})} symbols, "
          f"4 venues, speed {'max' if speed is None else f'{speed:g}x'} ==")
    print(f"produced in {produce_s:.1f} s ({sent / produce_s:,.0f} records/s); pipeline "
          f"drained {drained_s:.1f} s after the start ({sent / drained_s:,.0f} records/s "
          f"end to end); {len(spreads):,} spreads out")
    if delays:
        print(f"pipeline delay (window closed -> spread in Kafka): p50 {pct(delays, 50):.3f} s, "
              f"p95 {pct(delays, 95):.3f} s, p99 {pct(delays, 99):.3f} s, "
              f"max {max(delays):.3f} s")
    if lag_samples:
        print(f"alerter consumer lag (records, sampled every 0.5 s): max {max(lag_samples)}, "
              f"p95 {pct(lag_samples, 95):.0f}, at the end {lag_samples[-1]}")
    print("peak RSS (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(rss.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an ARB_* setting for the job and alerter")
    parser.add_argument("--only", choices=("x10", "max"), help="run one speed only")
    args = parser.parse_args()
    EXTRA_ENV.update(item.split("=", 1) for item in args.set)
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    records = load(args.symbols, args.passes)
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, settings "
          f"{EXTRA_ENV or 'default'}, logs: {workdir}")
    if args.only != "max":
        run("x10", 10.0, records, workdir)
    if args.only != "x10":
        run("max", None, records, workdir)


if __name__ == "__main__":
    main()
