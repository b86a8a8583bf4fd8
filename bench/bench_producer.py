"""Producer benchmark: recorded frames per second through parse+normalize, the feed's per-frame
path, and parse+normalize+produce into a local Tansu broker.

Prints numbers; asserts nothing (machines are shared). Single process, single thread:

  python bench/bench_producer.py                # everything (about a minute)
  python bench/bench_producer.py --no-kafka     # CPU-only stages
  python bench/bench_producer.py --repeat 20    # more passes over the recordings

Workload: the recorded real frames of every venue this producer reads (Binance, Coinbase
Exchange, Kraken v1, OKX), sent through the connectors as they came. Every recorded product is
mapped onto itself and every non-USD quote currency converted at one rate, so each price frame
yields records, as it would for subscribed markets. Two frame sets are measured:

- ``subscribed``: the channels a live producer subscribes to (best bid/ask, trades, heartbeats,
  acks); the order-book channels the recorders also captured are left out.
- ``all``: every WebSocket frame of the recordings, book updates included (they parse to
  control kinds and yield no record).

Stages: ``parse+normalize`` is ``venue.parse_frame`` (JSON decode, dispatch, validation, USD
conversion, Quote/Trade records). ``feed path`` adds what the live loop does per frame
(``Feed.on_frame``: sequence checks, quote book, metrics) with a sink that drops records.
``+produce`` publishes every record to a local Tansu (topic with 1 partition, idempotent
producer, acks=all, waiting for room rather than dropping) and includes the final flush, so
every record counted was acknowledged by the broker.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prometheus_client import CollectorRegistry  # noqa: E402

from services.common.broker import LocalBroker, free_port  # noqa: E402
from services.common.exceptions import RecordError  # noqa: E402
from services.common.messages import Quote, Trade  # noqa: E402
from services.producer import binance, coinbase, kraken, okx  # noqa: E402
from services.producer.connector import Venue  # noqa: E402
from services.producer.feed import Feed  # noqa: E402
from services.producer.metrics import ProducerMetrics  # noqa: E402
from services.producer.publisher import KafkaPublisher  # noqa: E402
from services.producer.replay import Frame, default_fixtures_dir, load_frames  # noqa: E402

FX = 1.0003
RECORDINGS = (
    (binance.VENUE, "binance.jsonl"),
    (coinbase.VENUE, "coinbase_exchange_2021.jsonl"),
    (kraken.VENUE, "kraken.jsonl"),
    (okx.VENUE, "okx.jsonl"),
)
#: the channels the recorders captured that this producer never subscribes to
BOOK_KINDS = frozenset({"depthUpdate", "snapshot", "l2update", "book", "books"})


class _Everything(dict):
    """A symbol map that maps every venue symbol onto itself."""

    def get(self, key, default=None):
        return key if key.__class__ is str else default

    def __contains__(self, key) -> bool:
        return key.__class__ is str

    def __getitem__(self, key):
        return key


@dataclass
class Load:
    venue: Venue
    frames: list[Frame]


def loads(fixtures: Path, subscribed: bool) -> list[Load]:
    out = []
    for venue, file in RECORDINGS:
        frames = list(load_frames(fixtures / file))
        if subscribed:
            frames = [f for f in frames if _kind(venue, f) not in BOOK_KINDS]
        out.append(Load(venue, frames))
    return out


def _kind(venue: Venue, frame: Frame) -> str:
    try:
        return venue.parse_frame(frame.raw, 0, symbol_map=_Everything(), fx_to_usd=FX).kind
    except RecordError as exc:
        return exc.reason


def best_rate(run: Callable[[], int], repeat: int) -> tuple[float, int]:
    """(frames per second of the fastest pass, records per pass)."""
    best_s, records = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        records = run()
        best_s = min(best_s, time.perf_counter() - started)
    return best_s, records


def parse_pass(load: Load) -> Callable[[], int]:
    parse, everything = load.venue.parse_frame, _Everything()
    frames = [(f.raw, f.recv_ts_ms) for f in load.frames]

    def run() -> int:
        n = 0
        for raw, recv_ts_ms in frames:
            try:  # noqa: SIM105 - contextlib.suppress costs more than a parse here
                n += len(parse(raw, recv_ts_ms, symbol_map=everything, fx_to_usd=FX).records)
            except RecordError:
                pass
        return n

    return run


class _Drop:
    def __init__(self) -> None:
        self.n = 0

    def publish(self, record: Quote | Trade) -> bool:
        self.n += 1
        return True


def feed_pass(load: Load) -> Callable[[], int]:
    raws = [f.raw for f in load.frames]

    def run() -> int:
        sink = _Drop()
        feed = Feed(load.venue, [], sink, fx=FX, metrics=ProducerMetrics(CollectorRegistry()))
        feed.symbol_map = _Everything()
        for raw in raws:
            feed.on_frame(raw)
        return sink.n

    return run


def report(title: str, rows: Sequence[tuple[str, int, float, int]]) -> None:
    print(f"\n{title}")
    print(f"  {'venue':<10} {'frames':>7} {'records':>8} {'frames/s':>12} {'records/s':>12}")
    total_frames = total_records = 0
    total_s = 0.0
    for name, frames, seconds, records in rows:
        print(f"  {name:<10} {frames:>7} {records:>8} {frames / seconds:>12,.0f} "
              f"{records / seconds:>12,.0f}")
        total_frames += frames
        total_records += records
        total_s += seconds
    print(f"  {'all':<10} {total_frames:>7} {total_records:>8} {total_frames / total_s:>12,.0f} "
          f"{total_records / total_s:>12,.0f}")


def cpu_stages(fixtures: Path, repeat: int) -> None:
    for subscribed in (True, False):
        label = "subscribed channels" if subscribed else "all recorded frames"
        data = loads(fixtures, subscribed)
        for stage, make in (("parse+normalize", parse_pass), ("feed path (no Kafka)",
                                                                 feed_pass)):
            rows = []
            for load in data:
                seconds, records = best_rate(make(load), repeat)
                rows.append((load.venue.name, len(load.frames), seconds, records))
            report(f"{stage}, {label}, best of {repeat} passes", rows)


def kafka_stage(fixtures: Path, passes: int) -> None:
    """All venues' subscribed frames in one stream, ``passes`` times, into a local Tansu."""
    data = loads(fixtures, subscribed=True)
    stream = [(load.venue.parse_frame, f.raw, f.recv_ts_ms) for load in data
              for f in load.frames] * passes
    topic = "bench-prices"
    with LocalBroker(port=free_port(), topics=[topic], partitions=1) as broker:
        publisher = KafkaPublisher(broker.bootstrap_servers, topic,
                                   ProducerMetrics(CollectorRegistry()), block=True)
        everything = _Everything()
        # warm-up: connection, metadata, idempotent producer id
        publisher.publish(Quote("bench", "WARM-USD", "WARM", 1.0, 1.0, 2.0, 1.0, "USD", 1.0,
                                1, 1, None))
        publisher.flush(30)
        started = time.perf_counter()
        for parse, raw, recv_ts_ms in stream:
            try:
                records = parse(raw, recv_ts_ms, symbol_map=everything, fx_to_usd=FX).records
            except RecordError:
                continue
            for record in records:
                publisher.publish(record)
        handed_s = time.perf_counter() - started
        left = publisher.flush(120)
        seconds = time.perf_counter() - started
        delivered = publisher.delivered - 1
    print(f"\nparse+normalize+produce to local Tansu, subscribed channels of all venues, "
          f"{passes} passes")
    print(f"  frames {len(stream)}, records acknowledged {delivered} (undelivered {left}, "
          f"failed {publisher.failed}, dropped {publisher.dropped})")
    print(f"  until all handed to the producer: {handed_s:.2f} s, "
          f"{len(stream) / handed_s:,.0f} frames/s")
    print(f"  until all acknowledged by the broker: {seconds:.2f} s, "
          f"{len(stream) / seconds:,.0f} frames/s, {delivered / seconds:,.0f} records/s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="passes per CPU measurement")
    parser.add_argument("--kafka-passes", type=int, default=40,
                        help="passes over the recordings for the Kafka stage")
    parser.add_argument("--no-kafka", action="store_true", help="skip the broker stage")
    parser.add_argument("--fixtures-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    fixtures = args.fixtures_dir or default_fixtures_dir()
    print(f"python {sys.version.split()[0]}, fixtures {fixtures}, one thread")
    print("frames by venue:", json.dumps({v.name: len(load_frames(fixtures / f))
                                          for v, f in RECORDINGS}))
    cpu_stages(fixtures, args.repeat)
    if not args.no_kafka:
        kafka_stage(fixtures, args.kafka_passes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
