"""Detection benchmark: throughput of the Flink job and detection latency of its two paths.

Runs on real parts: a local Tansu broker, the job in a Flink MiniCluster, the recorded Coinbase
and Binance messages from the replay. Prints numbers; asserts nothing (machines are shared).

  python bench/bench_detection.py                 # everything (about 20 minutes)
  python bench/bench_detection.py --skip-latency  # throughput only
  python bench/bench_detection.py --skip-latency --depth-only  # with and without ladders

Throughput: N records are loaded into ``crypto-prices`` first (the replay looped and shifted in
time), then a bounded job reads them; events/s = N / (Kafka timestamp of the last spread written
- that of the first), so JVM and job start-up are not counted (windows fire all through the run).
With depth: every quote carries a ladder of the three default sizes (ARB_DEPTH_NOTIONALS_USD),
made from its own top of book (VWAPs 0.5, 2 and 8 bps beyond it), so both paths compute the
executable size of every pair; without: the same quotes with no ladder.

Latency: the job runs unbounded; the replay publishes at 1x so receive times are wall-clock
times. Window path: alert record's Kafka timestamp - receive time of the newest quote (or
trade, in seed mode) that contributed to it, over every alert record; a second row leaves out
repeats: alerts of a window in which neither quote was new, which an earlier window already
alerted on with the same prices (their latency includes however long the market was quiet).
Tick path, in the same run: ``opened`` episode record's Kafka timestamp - ``start_ms``, the
event time of the opening quote (its receive time; a refresh's emit time). Every alert's and
opening's times are kept in CSVs next to the job logs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from confluent_kafka import OFFSET_END, Consumer, TopicPartition  # noqa: E402

from services.common.broker import LocalBroker, free_port  # noqa: E402
from services.common.kafka import end_offsets, ensure_topics, make_producer  # noqa: E402
from services.common.messages import (  # noqa: E402
    DepthLevel,
    PriceRecord,
    Quote,
    Trade,
    to_json,
)
from services.producer.replay import build_replay, default_fixtures_dir, shift  # noqa: E402

WARMUP_SYMBOL = "WARM-USD"
#: The synthetic ladder of the depth runs: (notional USD, VWAP distance beyond the top, bps).
BENCH_LADDER = ((1000.0, 0.5), (10000.0, 2.0), (100000.0, 8.0))


def with_ladder(record: PriceRecord, depth: bool) -> PriceRecord:
    """A quote with the bench ladder (``depth``) or with none; trades as they are."""
    if not isinstance(record, Quote):
        return record
    if not depth:
        return replace(record, depth=None)
    return replace(record, depth=tuple(
        DepthLevel(n, record.bid * (1 - bps / 10000), record.ask * (1 + bps / 10000))
        for n, bps in BENCH_LADDER))


def job_env(bootstrap: str, prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "FLINK_"))}
    env.pop("DEMO_MODE", None)
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ARB_PRICES_TOPIC": f"{prefix}-prices",
        "ARB_SPREADS_TOPIC": f"{prefix}-spreads",
        "ARB_ALERTS_TOPIC": f"{prefix}-alerts",
        "ARB_EPISODES_TOPIC": f"{prefix}-episodes",
        "ARB_STARTUP_MODE": "earliest-offset",
        "ARB_FLINK_METRICS_PORT": "0",
        "ARB_CHECKPOINT_INTERVAL_MS": "0",
        "ARB_FLINK_GROUP_ID": prefix,
        "ARB_WATERMARK_EMIT": os.environ.get("ARB_BENCH_WATERMARK_EMIT", "on-event"),
    })
    env.update(extra)
    return env


def topics(prefix: str) -> list[str]:
    return [f"{prefix}-prices", f"{prefix}-spreads", f"{prefix}-alerts", f"{prefix}-episodes"]


def run_job(env: dict[str, str], log: Path, bounded: bool) -> subprocess.Popen[bytes]:
    env = {**env, "ARB_BOUNDED": "true" if bounded else "false"}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "flink.job"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = make_producer(bootstrap, **{"linger.ms": 20, "batch.num.messages": 10000})
    for value in values:
        while True:
            try:
                producer.produce(topic, key=b"BTC-USD", value=value)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)


def output_span_s(bootstrap: str, topic: str) -> tuple[int, float]:
    """Records in ``topic`` and seconds between the first and the last one's Kafka timestamp."""
    ends = end_offsets(bootstrap, topic)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"span-{time.time_ns()}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    stamps: list[int] = []
    deadline = time.monotonic() + 60
    while len(stamps) < sum(ends.values()) and time.monotonic() < deadline:
        for msg in consumer.consume(10_000, 0.5):
            if not msg.error():
                stamps.append(msg.timestamp()[1])
    consumer.close()
    return len(stamps), (max(stamps) - min(stamps)) / 1000 if stamps else 0.0


def throughput(bootstrap: str, records: int, parallelism: int, workdir: Path,
               extra: dict[str, str] | None = None, depth: bool = False) -> dict[str, float]:
    """Windows fire all through a bounded run, so the span between the first and the last
    spread written is the processing time without JVM and job start-up. ``extra``: settings
    for the job (the demo threshold unless it says otherwise); ``depth``: quotes with the
    bench ladder, else without any."""
    base = [with_ladder(r, depth)
            for r in build_replay(default_fixtures_dir(), start_ms=1_700_000_000_000)]
    span_ms = base[-1].ts_ms - base[0].ts_ms + 1000
    values: list[bytes] = []
    n = 0
    while len(values) < records:
        values.extend(to_json(shift(r, n * span_ms, f"-P{n}")) for r in base)
        n += 1
    values = values[:records]
    prefix = f"tp{parallelism}-{time.time_ns()}"
    ensure_topics(bootstrap, topics(prefix), partitions=2)
    produce(bootstrap, f"{prefix}-prices", values)
    env = job_env(bootstrap, prefix, **{"ARB_FLINK_PARALLELISM": str(parallelism),
                                        "DEMO_MODE": "TRUE", **(extra or {})})
    started = time.monotonic()
    proc = run_job(env, workdir / f"{prefix}.log", bounded=True)
    if proc.wait(timeout=900) != 0:
        raise SystemExit(f"job failed, see {workdir / (prefix + '.log')}")
    total_s = time.monotonic() - started
    out, busy_s = output_span_s(bootstrap, f"{prefix}-spreads")
    return {"records": float(records), "total_s": total_s, "busy_s": busy_s,
            "events_per_s": records / max(busy_s, 1e-3), "spreads_out": float(out)}


def _warm_up(bootstrap: str, prefix: str, stop: threading.Event) -> None:
    """Feed a dummy symbol (quotes and trades, for both modes) until the job answers, so
    start-up is not measured as latency: $99 apart (16 bps), an alert at any threshold."""
    producer = make_producer(bootstrap)
    while not stop.is_set():
        now_ms = time.time_ns() // 1_000_000
        for exchange, bid in (("coinbase", 60_000.0), ("binance", 60_100.0)):
            quote = Quote(exchange=exchange, symbol=WARMUP_SYMBOL, venue_symbol="WARM",
                          bid=bid, bid_size=1.0, ask=bid + 1, ask_size=1.0, quote_ccy="USD",
                          fx_to_usd=1.0, ts_ms=now_ms, recv_ts_ms=now_ms, exchange_ts_ms=None)
            trade = Trade(exchange=exchange, symbol=WARMUP_SYMBOL, venue_symbol="WARM",
                          price=bid, size=1.0, side="buy", trade_id=str(now_ms),
                          quote_ccy="USD", fx_to_usd=1.0, ts_ms=now_ms, recv_ts_ms=now_ms,
                          exchange_ts_ms=None)
            for record in (quote, trade):
                producer.produce(f"{prefix}-prices", key=WARMUP_SYMBOL.encode(),
                                 value=to_json(record))
        producer.poll(0)
        stop.wait(0.1)
    producer.flush(10)


@dataclass(frozen=True)
class AlertTimes:
    """The times of one alert, in epoch ms."""

    window_start_ms: int
    window_end_ms: int
    newest_recv_ts_ms: int
    detected_ts_ms: int  # the join's CURRENT_TIMESTAMP
    kafka_ts_ms: int  # the alert record's Kafka timestamp

    @property
    def latency_s(self) -> float:
        return (self.kafka_ts_ms - self.newest_recv_ts_ms) / 1000

    @property
    def repeat(self) -> bool:
        """Both quotes were received before the window: an earlier window compared the same two
        quotes (a live venue is refreshed into every window) and alerted on the same spread.
        Its latency counts how long the market stayed quiet, not how long detection took."""
        return self.newest_recv_ts_ms < self.window_start_ms


@dataclass(frozen=True)
class OpeningTimes:
    """The times of one opened episode (tick path), in epoch ms."""

    start_ms: int  # the opening quote's event time: its receive time
    newest_recv_ts_ms: int
    detected_ts_ms: int  # the job's CURRENT_TIMESTAMP when it wrote the record
    kafka_ts_ms: int

    @property
    def latency_s(self) -> float:
        return (self.kafka_ts_ms - self.start_ms) / 1000


@dataclass
class LatencyRun:
    alerts: list[AlertTimes]
    produce_delay_s: list[float]  # ts_ms of a price record -> its Kafka timestamp
    openings: list[OpeningTimes] = field(default_factory=list)


#: Price shocks for the latency runs at the default $50 threshold, in every replay pass (about
#: 45 s): every 2.5 s one venue's BTC-USD quotes move $400 for 0.2-1.5 s, each way in turn, so
#: both paths have opportunities to find, most of them shorter than a second.
SHOCK_DURATIONS_S = (0.2, 0.3, 0.5, 0.8, 1.5)


def shock_args(pass_s: float = 40.0) -> list[str]:
    args = []
    for i in range(int(pass_s / 2.5)):
        venue = "binance" if i % 2 == 0 else "coinbase"
        duration = SHOCK_DURATIONS_S[i % len(SHOCK_DURATIONS_S)]
        args += ["--shock", f"{venue}:BTC-USD:+400@{2.5 * i + 1:.1f}:{duration}"]
    return args


def latency(bootstrap: str, label: str, extra: dict[str, str], duration_s: float,
            workdir: Path, replay_args: list[str] | None = None) -> LatencyRun:
    """``extra`` without DEMO_MODE: the demo threshold, unless shocks (``replay_args``) make the
    opportunities at the default one."""
    prefix = f"lat-{label}-{time.time_ns()}"
    ensure_topics(bootstrap, topics(prefix), partitions=3)
    demo = {} if replay_args else {"DEMO_MODE": "TRUE"}
    env = job_env(bootstrap, prefix, **{**demo, **extra})
    proc = run_job(env, workdir / f"{prefix}.log", bounded=False)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": prefix,
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(f"{prefix}-alerts", p, 0) for p in range(3)]
                    + [TopicPartition(f"{prefix}-episodes", p, 0) for p in range(3)])
    prices = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{prefix}-prices",
                       "enable.auto.commit": False})
    prices.assign([TopicPartition(f"{prefix}-prices", p, OFFSET_END) for p in range(3)])
    stop_warmup = threading.Event()
    warm = threading.Thread(target=_warm_up, args=(bootstrap, prefix, stop_warmup))
    warm.start()
    run = LatencyRun([], [])
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # wait for the first warm-up alert
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and msg.key() == WARMUP_SYMBOL.encode():
                break
        else:
            raise SystemExit(f"{label}: job never answered, see its log in {workdir}")
        stop_warmup.set()
        warm.join()
        replay = subprocess.Popen(
            [sys.executable, "-m", "services.producer", "replay", "--speed", "1", "--loop",
             *(replay_args or [])],
            cwd=REPO, env={**env, "ARB_PRODUCER_METRICS_PORT": "0"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        # The warm-up symbol's partition holds the watermark until it is idle
        # (ARB_IDLE_TIMEOUT_MS): alerts of the first seconds measure that, not detection.
        settle_s = 5.0
        end = time.monotonic() + duration_s + settle_s
        settled = time.monotonic() + settle_s
        while time.monotonic() < end:
            for price in prices.consume(1000, 0):
                if not price.error():
                    record = json.loads(price.value())
                    run.produce_delay_s.append((price.timestamp()[1] - record["ts_ms"]) / 1000)
            msg = consumer.poll(0.05)
            if msg is None or msg.error() or msg.key() == WARMUP_SYMBOL.encode():
                continue
            alert = json.loads(msg.value())
            if msg.topic().endswith("-episodes"):
                if alert["is_open"] and time.monotonic() >= settled:
                    run.openings.append(OpeningTimes(
                        alert["start_ms"], alert["newest_recv_ts_ms"], alert["detected_ts_ms"],
                        msg.timestamp()[1]))
                continue
            if time.monotonic() >= settled:
                run.alerts.append(AlertTimes(
                    alert["window_start_ms"], alert["window_end_ms"],
                    alert["newest_recv_ts_ms"], alert["detected_ts_ms"], msg.timestamp()[1],
                ))
        replay.terminate()
        replay.wait(30)
    finally:
        stop_warmup.set()
        consumer.close()
        prices.close()
        proc.terminate()
        proc.wait(60)
    with open(workdir / f"{prefix}-alerts.csv", "w") as out:  # for a closer look at the tail
        out.write(",".join(AlertTimes.__dataclass_fields__) + "\n")
        out.writelines(",".join(str(v) for v in astuple(a)) + "\n" for a in run.alerts)
    with open(workdir / f"{prefix}-openings.csv", "w") as out:
        out.write(",".join(OpeningTimes.__dataclass_fields__) + "\n")
        out.writelines(",".join(str(v) for v in astuple(o)) + "\n" for o in run.openings)
    return run


def print_latency(label: str, run: LatencyRun) -> None:
    """The row of the table, then where the time goes: the replay's publish, the window firing
    (window end -> the join's CURRENT_TIMESTAMP: the watermark delay and the wait for the record
    that moves it) and the sink."""
    if not run.alerts:
        print(f"{label:<28}{0:>8}  (no alerts)")
        return
    rows = [(label, [a.latency_s for a in run.alerts]),
            ("  first detections only", [a.latency_s for a in run.alerts if not a.repeat])]
    for name, values in rows:
        if values:
            print(f"{name:<28}{len(values):>8}{pct(values, 50):>9.3f}{pct(values, 95):>9.3f}"
                  f"{pct(values, 99):>9.3f}{max(values):>9.3f}")
    parts = [
        ("price ts -> Kafka", run.produce_delay_s),
        ("window end -> join", [(a.detected_ts_ms - a.window_end_ms) / 1000 for a in run.alerts]),
        ("join -> alert in Kafka", [(a.kafka_ts_ms - a.detected_ts_ms) / 1000
                                    for a in run.alerts]),
    ]
    print("  " + "; ".join(f"{name} p50 {pct(v, 50):.3f} p99 {pct(v, 99):.3f}"
                           for name, v in parts if v))
    if run.openings:
        values = [o.latency_s for o in run.openings]
        print(f"{'  tick path, same run':<28}{len(values):>8}{pct(values, 50):>9.3f}"
              f"{pct(values, 95):>9.3f}{pct(values, 99):>9.3f}{max(values):>9.3f}  (openings)")
        job = [(o.kafka_ts_ms - o.detected_ts_ms) / 1000 for o in run.openings]
        before = [(o.detected_ts_ms - o.start_ms) / 1000 for o in run.openings]
        print(f"  opening quote -> job writes p50 {pct(before, 50):.3f} p99 {pct(before, 99):.3f}"
              f"; write -> in Kafka p50 {pct(job, 50):.3f} p99 {pct(job, 99):.3f}")


def latency_mode(spec: str) -> tuple[str, dict[str, str]]:
    """``WINDOW:WATERMARK[:REFRESH]`` in ms -> (label, environment)."""
    window, watermark, *refresh = spec.split(":")
    env = {"ARB_WINDOW_MS": window, "ARB_WATERMARK_MS": watermark}
    label = f"{window} ms, {watermark} ms watermark"
    if refresh:
        env["ARB_QUOTE_REFRESH_MS"] = refresh[0]
        label = f"{window}/{watermark}/{refresh[0]} ms"
    return label, env


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--duration-s", type=float, default=120.0,
                        help="latency: replay time per mode")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--depth-only", action="store_true",
                        help="throughput: only both paths at parallelism 1, with and without "
                             "ladders")
    parser.add_argument("--latency-mode", action="append", default=[], metavar="W:WM[:R]",
                        help="latency: only these window:watermark[:refresh] ms (e.g. 250:20)")
    parser.add_argument("--watermark-emit", choices=("on-event", "on-periodic"),
                        default="on-event", help="ARB_WATERMARK_EMIT for every run")
    args = parser.parse_args()
    os.environ["ARB_BENCH_WATERMARK_EMIT"] = args.watermark_emit
    workdir = Path(tempfile.mkdtemp(prefix="bench-detection-"))
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, "
          f"watermark emission: {args.watermark_emit}, logs: {workdir}")
    with LocalBroker(port=free_port()) as broker:
        if not args.skip_throughput:
            print("\n== throughput (bounded job over preloaded records, default mode) ==")
            # One venue in ARB_VENUES leaves the tick path out (nothing to pair): the window
            # path alone, side by side with both. Demo threshold: nearly every window alerts
            # and nearly every quote passes (the heaviest load); default: a calm market.
            one_path = {"ARB_VENUES": "coinbase"}
            calm = {"DEMO_MODE": "FALSE"}
            runs = [("both paths, demo", 1, {}, False),
                    ("both paths, demo, 3-size ladders", 1, {}, True),
                    ("window path only, demo", 1, one_path, False),
                    ("both paths, $50", 1, calm, False),
                    ("both paths, $50, 3-size ladders", 1, calm, True),
                    ("window path only, $50", 1, {**one_path, **calm}, False),
                    ("both paths, demo", 2, {}, False)]
            if args.depth_only:
                runs = [run for run in runs if run[1] == 1 and "both" in run[0]]
            for label, parallelism, extra, depth in runs:
                r = throughput(broker.bootstrap_servers, args.records, parallelism, workdir,
                               extra, depth)
                print(f"parallelism {parallelism}, {label}: {r['records']:.0f} records, job "
                      f"{r['total_s']:.1f} s in all, first to last output {r['busy_s']:.2f} s "
                      f"-> {r['events_per_s']:,.0f} events/s; {r['spreads_out']:.0f} spreads out")
        if not args.skip_latency:
            print("\n== detection latency: window path (newest contributing receive -> alert in "
                  "Kafka) and tick path (opening quote -> opened episode in Kafka) ==")
            # The watermark and the quote refresh follow the window by default: 250 ms windows
            # get a 50 ms watermark and a refresh every 125 ms. The low-latency profile of
            # docs/configuration.md halves the watermark and refreshes every 50 ms.
            # "shocks": the default $50 threshold on the shocked replay (shock_args), where
            # both paths have opportunities to find; the others use the demo threshold on the
            # plain replay, where the window path alerts all the time and the tick path sees
            # few, long episodes.
            shocks = shock_args()
            modes = [("default, shocks", {}, shocks),
                     ("default 1 s windows, demo", {}, None),
                     ("250 ms windows, shocks", {"ARB_WINDOW_MS": "250"}, shocks),
                     ("250 ms low-latency, demo", {"ARB_WINDOW_MS": "250",
                                                   "ARB_WATERMARK_MS": "25",
                                                   "ARB_QUOTE_REFRESH_MS": "50"}, None),
                     ("seed mode (10 s avg), demo", {"ARB_MODE": "seed"}, None)]
            if args.latency_mode:
                modes = [(*latency_mode(m), shocks) for m in args.latency_mode]
            print(f"{'mode':<28}{'alerts':>8}{'p50 s':>9}{'p95 s':>9}{'p99 s':>9}{'max s':>9}")
            for label, extra, replay_args in modes:
                duration = args.duration_s * (2 if extra.get("ARB_MODE") == "seed" else 1)
                name = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")  # a topic name
                print_latency(label, latency(broker.bootstrap_servers, name, extra, duration,
                                             workdir, replay_args))


if __name__ == "__main__":
    main()
