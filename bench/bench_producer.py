"""Producer benchmark: recorded frames per second through JSON decoding, parse+normalize, the
feed's per-frame path (the shared frame processor), and the same path into a local Tansu broker.

Prints numbers; asserts nothing (machines are shared). Single process, single thread:

  python bench/bench_producer.py                # everything (about a minute)
  python bench/bench_producer.py --no-kafka     # CPU-only stages
  python bench/bench_producer.py --repeat 20    # more passes over the recordings

Workload: the recorded real frames of every venue this producer reads (Binance, Coinbase
Exchange, Kraken v1, OKX, Bybit v5 spot, Bitstamp), sent through the connectors as they came:
of each file the venue's live feed as the replay reads it (Bybit's spot endpoint, not its
linear frames; Bitstamp's REST snapshots as the book frames that start its diff books). Every
recorded product is mapped onto itself and every non-USD quote currency converted at one rate,
so each price frame yields records, as it would for subscribed markets. Two frame sets are measured:

- ``subscribed``: the channels a live producer subscribes to (best bid/ask, trades, heartbeats,
  acks); the order-book channels the recorders also captured are left out.
- ``all``: every WebSocket frame of the recordings, book updates included (they parse to
  control kinds and yield no record).

Stages: ``decode`` compares the standard library's ``json.loads`` with the producer's decoder
(orjson, with json's answers: ``services/producer/decoding.py``). ``parse+normalize`` is
``venue.parse_frame`` (decode, dispatch, validation, USD conversion, Quote/Trade records).
``feed path`` is what the live feed does per frame, ``Feed.on_frame``: the receive clock, the
shared :class:`FrameProcessor` (parse, sequence checks, fx, quote book, metrics on a private
registry) and a sink that drops records; the replay and record mode run the same processor.
``+produce`` runs parse+normalize (as before the frame processor), then the feed path, into a
local Tansu (topic with 1 partition, idempotent producer, acks=all, waiting for room rather
than dropping) and includes the final flush, so every record counted was acknowledged by the
broker.

``feed path with depth`` is the feed path with books on (ARB_DEPTH_NOTIONALS_USD =
1000,10000,100000, ARB_BOOK_LEVELS = 100) over all recorded frames: every depth message kept
in its market's book by the venue's rules, the REST snapshot lines handed to ``on_rest``, the
ladder computed for each quote published and each depth change that moves it (re-published
quotes are records too). It runs three times; "depth cost" compares it with the feed path
on the same frames without books.

The last lines sum up the two figures the producer is held to: parse+normalize frames/s on the
subscribed channels, and feed-path records/s (subscribed channels and all recorded frames).
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
from services.producer import binance, bitstamp, bybit, coinbase, kraken, okx  # noqa: E402
from services.producer.connector import Venue  # noqa: E402
from services.producer.decoding import decode  # noqa: E402
from services.producer.feed import Feed  # noqa: E402
from services.producer.metrics import ProducerMetrics  # noqa: E402
from services.producer.processor import FrameProcessor  # noqa: E402
from services.producer.publisher import KafkaPublisher, Sink  # noqa: E402
from services.producer.replay import Frame, default_fixtures_dir, venue_frames  # noqa: E402

FX = 1.0003
RECORDINGS = (
    (binance.VENUE, "binance.jsonl"),
    (coinbase.VENUE, "coinbase_exchange_2021.jsonl"),
    (kraken.VENUE, "kraken.jsonl"),
    (okx.VENUE, "okx.jsonl"),
    (bybit.VENUE, "bybit_orderbook1_2025.jsonl"),
    (bitstamp.VENUE, "bitstamp.jsonl"),
)
#: the bar each venue is held to alone: parse+normalize frames/s on its subscribed channels
VENUE_TARGET_FPS = 100_000
#: the depth channels (read only with books on: ``feed path with depth``)
BOOK_KINDS = frozenset({"depthUpdate", "snapshot", "l2update", "book", "books", "rest"})
#: the ladder sizes and book depth of the depth stage (the defaults)
DEPTH_NOTIONALS_USD = (1000.0, 10_000.0, 100_000.0)
BOOK_LEVELS = 100


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
        frames = list(venue_frames(fixtures / file, venue))
        if subscribed:
            frames = [f for f in frames if _kind(venue, f) not in BOOK_KINDS]
        out.append(Load(venue, frames))
    return out


def _kind(venue: Venue, frame: Frame) -> str:
    if frame.rest:
        return "rest"
    try:
        return venue.parse_frame(frame.raw, 0, symbol_map=_Everything(), fx_to_usd=FX).kind
    except RecordError as exc:
        return exc.reason


def best_rate(run: Callable[[], int], repeat: int) -> tuple[float, int]:
    """(seconds of the fastest pass, records per pass)."""
    best_s, records = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        records = run()
        best_s = min(best_s, time.perf_counter() - started)
    return best_s, records


def decode_pass(loads: Callable[[str], object]) -> Callable[[Load], Callable[[], int]]:
    def make(load: Load) -> Callable[[], int]:
        raws = [f.raw for f in load.frames]

        def run() -> int:
            for raw in raws:
                try:  # noqa: SIM105 - contextlib.suppress costs more than a decode here
                    loads(raw)
                except (ValueError, RecordError):
                    pass
            return 0

        return run

    return make


def _as_frame(venue: Venue, frame: Frame) -> str:
    """A REST line as the frame the venue reads it as (Bitstamp), else the frame itself."""
    if frame.rest and venue.snapshot_frame is not None:
        return venue.snapshot_frame(frame.url or "", frame.raw) or frame.raw
    return frame.raw


def parse_pass(load: Load) -> Callable[[], int]:
    everything = _Everything()
    frames = [(_as_frame(load.venue, f), f.recv_ts_ms) for f in load.frames]

    def run() -> int:
        parse = load.venue.make_parser()  # each pass a new stream (Bitstamp: new books)
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


def bench_feed(venue: Venue, sink: Sink, metrics: ProducerMetrics, *,
               depth: bool = False) -> Feed:
    """A live feed (never connected) reading every recorded product, as a subscribed market;
    with ``depth`` keeping books and ladders."""
    feed = Feed(venue, [], sink, fx=FX, metrics=metrics)
    feed.processor = FrameProcessor(
        venue, _Everything(), fx=FX, book=feed.book, counts=metrics.feed(venue.name),
        depth_notionals_usd=DEPTH_NOTIONALS_USD if depth else (), book_levels=BOOK_LEVELS,
        book_counts=metrics.book(venue.name))
    return feed


def _feed_pass(load: Load, depth: bool) -> Callable[[], int]:
    frames = load.frames
    raws = [f.raw if depth else _as_frame(load.venue, f) for f in frames]
    rest = [f.rest for f in frames]

    def run() -> int:
        sink = _Drop()
        feed = bench_feed(load.venue, sink, ProducerMetrics(CollectorRegistry()), depth=depth)
        on_frame, processor = feed.on_frame, feed.processor
        for raw, frame, is_rest in zip(raws, frames, rest, strict=True):
            if is_rest and depth:  # what the live feed does with a snapshot it fetched
                sink.n += len(processor.on_rest(frame.url or "", raw, 0).records)
            else:
                on_frame(raw)
        return sink.n

    return run


def feed_pass(load: Load) -> Callable[[], int]:
    return _feed_pass(load, depth=False)


def depth_feed_pass(load: Load) -> Callable[[], int]:
    return _feed_pass(load, depth=True)


Rows = list[tuple[str, int, float, int]]


#: (stage, subscribed) -> venue -> frames/s, filled by cpu_stages
PER_VENUE: dict[tuple[str, bool], dict[str, float]] = {}


def report(title: str, rows: Rows) -> tuple[float, float]:
    """Prints one table; returns (frames/s, records/s) of all venues together."""
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
    return total_frames / total_s, total_records / total_s


STAGES = (
    ("decode, json.loads (stdlib)", decode_pass(json.loads)),
    ("decode, producer decoder (orjson + stdlib answers)", decode_pass(decode)),
    ("parse+normalize", parse_pass),
    ("feed path (Feed.on_frame -> FrameProcessor, no Kafka)", feed_pass),
)


def cpu_stages(fixtures: Path, repeat: int) -> dict[tuple[str, bool], tuple[float, float]]:
    """(stage, subscribed) -> (frames/s, records/s) of all venues together."""
    totals = {}
    for subscribed in (True, False):
        label = "subscribed channels" if subscribed else "all recorded frames"
        data = loads(fixtures, subscribed)
        for stage, make in STAGES:
            rows = []
            for load in data:
                seconds, records = best_rate(make(load), repeat)
                rows.append((load.venue.name, len(load.frames), seconds, records))
            totals[(stage, subscribed)] = report(f"{stage}, {label}, best of {repeat} passes",
                                                 rows)
            PER_VENUE[(stage, subscribed)] = {name: n / s for name, n, s, _ in rows}
    return totals


def summary(totals: dict[tuple[str, bool], tuple[float, float]]) -> None:
    parse_fps = totals[("parse+normalize", True)][0]
    feed = STAGES[-1][0]
    print("\nsummary (all venues together)")
    print(f"  parse+normalize, subscribed channels:  {parse_fps:>10,.0f} frames/s "
          f"(target >= 150,000)")
    print(f"  feed path, subscribed channels:        {totals[(feed, True)][1]:>10,.0f} records/s "
          f"(target >= 100,000)")
    print(f"  feed path, all recorded frames:        {totals[(feed, False)][1]:>10,.0f} records/s "
          f"(target >= 100,000)")
    print(f"  parse+normalize per venue, subscribed channels (target >= {VENUE_TARGET_FPS:,}):")
    for name, fps in PER_VENUE[("parse+normalize", True)].items():
        verdict = "ok" if fps >= VENUE_TARGET_FPS else "BELOW TARGET"
        print(f"    {name:<10} {fps:>10,.0f} frames/s  {verdict}")
    old, new = (totals[(STAGES[i][0], True)][0] for i in (0, 1))
    print(f"  decode, subscribed channels: stdlib {old:,.0f}, producer {new:,.0f} frames/s "
          f"({new / old:.1f}x)")


def depth_stage(fixtures: Path, repeat: int, runs: int = 3) -> None:
    """The feed path with books on, over all recorded frames, ``runs`` times; and its cost
    against the same frames without books."""
    data = loads(fixtures, subscribed=False)
    plain = sum(best_rate(feed_pass(load), repeat)[0] for load in data)
    frames = sum(len(load.frames) for load in data)
    for run in range(1, runs + 1):
        rows = []
        for load in data:
            seconds, records = best_rate(depth_feed_pass(load), repeat)
            rows.append((load.venue.name, len(load.frames), seconds, records))
        fps, rps = report(f"feed path with depth (books + ladder + quote records), all recorded "
                          f"frames, run {run} of {runs}, best of {repeat} passes", rows)
        with_s = frames / fps
        print(f"  depth on: {fps:,.0f} frames/s, {rps:,.0f} records/s; without books "
              f"{frames / plain:,.0f} frames/s: depth costs {1e6 * (with_s - plain) / frames:.1f}"
              f" us per frame on average ({with_s / plain:.2f}x)")


def kafka_stage(fixtures: Path, passes: int, *, feed_path: bool) -> None:
    """All venues' subscribed frames in one stream, ``passes`` times, into a local Tansu: parsed
    and published (as the bench measured before the frame processor), or through the feed path
    (each pass as a new connection, so the sequence checks start over)."""
    data = loads(fixtures, subscribed=True)
    topic = "bench-prices"
    everything = _Everything()
    with LocalBroker(port=free_port(), topics=[topic], partitions=1) as broker:
        metrics = ProducerMetrics(CollectorRegistry())
        publisher = KafkaPublisher(broker.bootstrap_servers, topic, metrics, block=True)
        feeds = {load.venue.name: bench_feed(load.venue, publisher, metrics) for load in data}
        # warm-up: connection, metadata, idempotent producer id
        publisher.publish(Quote("bench", "WARM-USD", "WARM", 1.0, 1.0, 2.0, 1.0, "USD", 1.0,
                                1, 1, None))
        publisher.flush(30)
        started = time.perf_counter()
        frames = 0
        for _ in range(passes):
            for load in data:
                frames += len(load.frames)
                if feed_path:
                    feed = feeds[load.venue.name]
                    feed.processor.forget()
                    for f in load.frames:
                        feed.on_frame(f.raw)
                    continue
                parse = load.venue.make_parser()
                for f in load.frames:
                    try:
                        records = parse(f.raw, f.recv_ts_ms, symbol_map=everything,
                                        fx_to_usd=FX).records
                    except RecordError:
                        continue
                    for record in records:
                        publisher.publish(record)
        handed_s = time.perf_counter() - started
        left = publisher.flush(120)
        seconds = time.perf_counter() - started
        delivered = publisher.delivered - 1
    stage = "feed path" if feed_path else "parse+normalize"
    print(f"\n{stage}+produce to local Tansu, subscribed channels of all venues, {passes} passes")
    print(f"  frames {frames}, records acknowledged {delivered} (undelivered {left}, "
          f"failed {publisher.failed}, dropped {publisher.dropped})")
    print(f"  until all handed to the producer: {handed_s:.2f} s, "
          f"{frames / handed_s:,.0f} frames/s")
    print(f"  until all acknowledged by the broker: {seconds:.2f} s, "
          f"{frames / seconds:,.0f} frames/s, {delivered / seconds:,.0f} records/s")


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
    print("frames by venue:", json.dumps({v.name: len(venue_frames(fixtures / f, v))
                                          for v, f in RECORDINGS}))
    totals = cpu_stages(fixtures, args.repeat)
    summary(totals)
    depth_stage(fixtures, args.repeat)
    if not args.no_kafka:
        kafka_stage(fixtures, args.kafka_passes, feed_path=False)
        kafka_stage(fixtures, args.kafka_passes, feed_path=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
