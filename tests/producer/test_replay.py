"""Replay: alignment, scaling, looping, shocks, refreshes, pacing, and a run into a real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from prometheus_client import CollectorRegistry

from services.common.config import DEFAULT_DEPTH_NOTIONALS_USD
from services.common.kafka import ensure_topics, make_consumer
from services.common.messages import Quote, Trade, parse_price_record
from services.producer import binance
from services.producer.feed import Feed
from services.producer.metrics import ProducerMetrics
from services.producer.publisher import KafkaPublisher
from services.producer.replay import (
    DEFAULT_RECORDINGS,
    VENUE_RECORDINGS,
    FeedEvent,
    Frame,
    Recording,
    Shock,
    build_replay,
    iter_replay,
    load_frames,
    parse_speed,
    plan_replay,
    publish_replay,
    recordings_for,
    shift,
)
from tests.producer.conftest import (
    BINANCE_FILE,
    COINBASE_FILE,
    ListSink,
    binance_kind,
    coinbase_msg,
)

START_MS = 1_900_000_000_000
REPO = Path(__file__).resolve().parents[2]
SKL_ONLY = Recording(COINBASE_FILE, "coinbase", {"SKL-USD": "BTC-USD"})


@pytest.fixture(scope="module")
def plan(fixtures_dir):
    return plan_replay(fixtures_dir, start_ms=START_MS)


def of(records, exchange, kind, *, refresh=None):
    return [r for r in records if r.exchange == exchange and isinstance(r, kind)
            and (refresh is None or getattr(r, "refresh", None) == refresh)]


def skl_usd(frame, *kinds) -> bool:
    msg = coinbase_msg(frame)
    return msg.get("product_id") == "SKL-USD" and msg["type"] in kinds


# --- shocks and speed specs ---------------------------------------------------------------

def test_shock_spec() -> None:
    assert Shock.parse("binance:BTC-USD:+150@10:2") == Shock("binance", "BTC-USD", 10_000, 2_000,
                                                              150.0)
    assert Shock.parse("coinbase:btc-usd:-0.5@1.5:0.25") == Shock("coinbase", "BTC-USD", 1_500,
                                                                  250, -0.5)


@pytest.mark.parametrize("spec", ["binance:BTC-USD:+150", "binance:+150@10:2",
                                  "binance:BTC-USD:x@10:2", "binance:BTC-USD:1@-1:2",
                                  "binance:BTC-USD:1@1:0", "binance:BTC-USD:nan@1:1"])
def test_bad_shock_spec(spec) -> None:
    with pytest.raises(ValueError, match="shock"):
        Shock.parse(spec)


def test_speed_spec() -> None:
    assert parse_speed("max") is None
    assert parse_speed("10") == 10.0
    assert parse_speed("2.5x") == 2.5
    with pytest.raises(ValueError):
        parse_speed("0")


# --- the default replay -------------------------------------------------------------------

def test_rest_lines_are_skipped(fixtures_dir) -> None:
    lines = (fixtures_dir / "binance.jsonl").read_text().splitlines()
    websocket = [json.loads(line) for line in lines if json.loads(line).get("source") != "rest"]

    frames = load_frames(fixtures_dir / "binance.jsonl")

    assert [f.raw for f in frames] == [r["raw"] for r in websocket]


def test_binance_replayed_whole_and_aligned(plan, binance_frames) -> None:
    first_ms = binance_frames[0].recv_ts_ms
    tickers = [f for f in binance_frames if binance_kind(f) == "bookTicker"]
    trades = [f for f in binance_frames if binance_kind(f) == "trade"]

    quotes = of(plan.records, "binance", Quote, refresh=False)
    replayed_trades = of(plan.records, "binance", Trade)

    assert len(quotes) == len(tickers)
    assert len(replayed_trades) == len(trades)
    assert plan.end_ms - plan.start_ms == binance_frames[-1].recv_ts_ms - first_ms
    # aligned: same offsets from the common start as from the recording's first frame
    assert [q.recv_ts_ms - START_MS for q in quotes] == [f.recv_ts_ms - first_ms for f in tickers]
    assert all(q.ts_ms == q.recv_ts_ms for q in quotes)
    # exchange time shifted like receive time: the recorded latency is kept
    recorded_latency = [f.recv_ts_ms - json.loads(f.raw)["data"]["T"] for f in trades]
    assert [t.recv_ts_ms - t.exchange_ts_ms for t in replayed_trades] == recorded_latency


def test_records_are_in_time_order(plan) -> None:
    times = [r.ts_ms for r in plan.records]
    assert times == sorted(times)
    assert times[0] >= START_MS and times[-1] <= plan.end_ms


def test_coinbase_skl_usd_scaled_to_binance_level(plan, fixtures_dir) -> None:
    quotes = of(plan.records, "coinbase", Quote, refresh=False)
    binance_quotes = of(plan.records, "binance", Quote, refresh=False)
    first_cb, first_bn = quotes[0], binance_quotes[0]

    assert first_cb.symbol == "BTC-USD" and first_cb.venue_symbol == "SKL-USD"
    assert (first_cb.bid + first_cb.ask) / 2 == pytest.approx((first_bn.bid + first_bn.ask) / 2)
    k = plan.scale[("coinbase", "BTC-USD")]
    raw = [coinbase_msg(f) for f in load_frames(fixtures_dir / COINBASE_FILE)]
    first_ticker = next(m for m in raw if m["type"] == "ticker" and m["product_id"] == "SKL-USD")
    assert first_cb.bid == pytest.approx(float(first_ticker["best_bid"]) * k)
    # trade sizes shrink by k so the notional is the recorded one
    first_match = next(m for m in raw if m["type"] in {"match", "last_match"}
                       and m["product_id"] == "SKL-USD")
    trade = of(plan.records, "coinbase", Trade)[0]
    assert trade.price * trade.size == pytest.approx(
        float(first_match["price"]) * float(first_match["size"]))


def test_short_coinbase_recording_loops_to_fill_the_span(plan, coinbase_frames) -> None:
    tickers = [coinbase_msg(f) for f in coinbase_frames if skl_usd(f, "ticker")]
    matches = [coinbase_msg(f) for f in coinbase_frames if skl_usd(f, "match", "last_match")]
    pattern = [(float(m["best_bid"]), float(m["best_ask"])) for m in tickers]
    k = plan.scale[("coinbase", "BTC-USD")]

    quotes = of(plan.records, "coinbase", Quote, refresh=False)
    trades = of(plan.records, "coinbase", Trade)

    replayed = [(round(q.bid / k, 8), round(q.ask / k, 8)) for q in quotes]
    loops = -(-len(replayed) // len(pattern))
    assert loops > 1
    assert replayed == (pattern * loops)[: len(replayed)]
    # trade ids: the original in loop 0, then "-L<n>" per loop, always unique
    per_loop = Counter(t.trade_id.partition("-L")[2] or "0" for t in trades)
    assert all(per_loop[str(n)] == len(matches) for n in range(loops - 1))
    assert len({t.trade_id for t in trades}) == len(trades)
    # the looped venue stays live up to the end of the replay
    assert max(q.ts_ms for q in of(plan.records, "coinbase", Quote)) > plan.end_ms - 500
    assert plan.skipped == Counter({"unknown_symbol": plan.skipped["unknown_symbol"]})


def test_refresh_records_on_the_virtual_clock(plan) -> None:
    cb = of(plan.records, "coinbase", Quote)
    last_update = None

    for q in cb:
        if not q.refresh:
            last_update = q
            continue
        assert last_update is not None
        assert (q.bid, q.ask) == (last_update.bid, last_update.ask)
        assert q.recv_ts_ms == last_update.recv_ts_ms
        assert q.exchange_ts_ms == last_update.exchange_ts_ms
        assert q.ts_ms > q.recv_ts_ms

    assert any(q.refresh for q in cb)
    assert max(b.ts_ms - a.ts_ms for a, b in pairwise(cb)) <= 500


def test_every_frame_counts_as_liveness(fixtures_dir, coinbase_frames) -> None:
    # SKL-USD alone is silent for >1 s at a time; the other products' frames never are
    skl = [f.recv_ts_ms for f in coinbase_frames if skl_usd(f, "ticker", "match", "last_match")]
    every = [f.recv_ts_ms for f in coinbase_frames]
    skl_gap = max(b - a for a, b in pairwise(skl))
    any_gap = max(b - a for a, b in pairwise(every))
    stale_ms = (skl_gap + any_gap) // 2
    assert any_gap < stale_ms < skl_gap

    records = build_replay(fixtures_dir, [SKL_ONLY], start_ms=START_MS, refresh_ms=50,
                           stale_ms=stale_ms)

    quotes = [r for r in records if isinstance(r, Quote)]
    assert max(b.ts_ms - a.ts_ms for a, b in pairwise(quotes)) <= 50


def test_silent_recording_stops_refreshing(tmp_path, fixtures_dir, coinbase_frames) -> None:
    # Cut 1.6 s out of the recording after the first SKL-USD quotes: the venue goes silent
    first_ms = coinbase_frames[0].recv_ts_ms
    lines = (fixtures_dir / COINBASE_FILE).read_text().splitlines()
    kept = [line for line in lines
            if not 400 <= json.loads(line)["recv_ts_ns"] // 1_000_000 - first_ms < 2000]
    (tmp_path / COINBASE_FILE).write_text("\n".join(kept) + "\n")

    records = build_replay(tmp_path, [SKL_ONLY], start_ms=START_MS, refresh_ms=100,
                           stale_ms=300)

    refresh_times = [r.ts_ms - START_MS for r in records if getattr(r, "refresh", False)]
    assert refresh_times
    assert not [t for t in refresh_times if 400 + 300 <= t < 2000]  # silent: no refresh
    assert [t for t in refresh_times if t < 400 + 300]  # live before the gap


def test_shocks_move_bid_and_ask_inside_their_window(plan, fixtures_dir) -> None:
    shocks = [Shock.parse("binance:BTC-USD:+150@10:2"), Shock.parse("coinbase:BTC-USD:-40@20:2")]

    shocked = plan_replay(fixtures_dir, start_ms=START_MS, shocks=shocks).records

    assert len(shocked) == len(plan.records)
    moved = Counter()
    for base, rec in zip(plan.records, shocked, strict=True):
        if not isinstance(rec, Quote):
            assert rec == base
            continue
        offset_ms = rec.ts_ms - START_MS
        expected = 0.0
        if rec.exchange == "binance" and 10_000 <= offset_ms < 12_000:
            expected = 150.0
        if rec.exchange == "coinbase" and 20_000 <= offset_ms < 22_000:
            expected = -40.0
        assert rec.bid == pytest.approx(base.bid + expected)
        assert rec.ask == pytest.approx(base.ask + expected)
        if expected:
            moved[(rec.exchange, rec.refresh)] += 1
    assert moved[("binance", False)] > 0 and moved[("coinbase", False)] > 0
    assert moved[("coinbase", True)] > 0  # refreshes are shocked too


def test_loop_repeats_the_whole_replay_shifted(plan) -> None:
    n = len(plan.records)
    period_ms = plan.end_ms - plan.start_ms + 500

    stream = iter_replay(plan, loop=True, gap_ms=500)
    records = [next(stream) for _ in range(3 * n)]

    assert records[:n] == plan.records
    for i in (0, n // 2, n - 1):
        again = records[n + i]
        assert again.ts_ms == plan.records[i].ts_ms + period_ms
        assert again.recv_ts_ms == plan.records[i].recv_ts_ms + period_ms
        assert records[2 * n + i].ts_ms == plan.records[i].ts_ms + 2 * period_ms
    trade_ids = [r.trade_id for r in records if isinstance(r, Trade)]
    assert len(set(trade_ids)) == len(trade_ids)
    assert list(iter_replay(plan, loop=False)) == plan.records


def test_a_replay_moved_in_time_keeps_everything_but_the_times(plan) -> None:
    n = len(plan.records)
    stream = iter_replay(plan, loop=True, gap_ms=500, start_ms=START_MS + 12_345)
    records = [next(stream) for _ in range(2 * n)]

    assert records[:n] == [shift(r, 12_345) for r in plan.records]
    assert records[n] == shift(plan.records[0], 12_345 + plan.end_ms - plan.start_ms + 500, "-P1")
    assert records[0].recv_ts_ms - records[0].exchange_ts_ms == (
        plan.records[0].recv_ts_ms - plan.records[0].exchange_ts_ms)


def test_default_recordings() -> None:
    assert [r.venue for r in DEFAULT_RECORDINGS] == ["binance", "coinbase"]
    assert DEFAULT_RECORDINGS[1].symbol_map == {"SKL-USD": "BTC-USD"}


# --- the live record path: sequence checks and feed metrics ---------------------------------

BTC_ONLY = Recording(BINANCE_FILE, "binance", {"BTCUSDT": "BTC-USD"})
SEQUENCE_ERRORS = {"sequence_gap", "duplicate", "out_of_order"}


def test_loops_start_a_new_numbering(plan) -> None:
    # Coinbase loops (the same trade ids and sequence numbers again): not a duplicate
    assert not SEQUENCE_ERRORS & plan.errors.keys()
    assert plan.errors == plan.skipped  # only the products nobody asked for


def test_a_replay_checks_sequences(tmp_path, fixtures_dir) -> None:
    # Arrange: the recording with one trade frame repeated, another deleted, a ticker replayed
    lines = (fixtures_dir / BINANCE_FILE).read_text().splitlines()
    kinds = [None if '"source"' in line[:80] else binance_kind(
        Frame(0, json.loads(line)["raw"])) for line in lines]
    trades = [i for i, k in enumerate(kinds) if k == "trade"]
    tickers = [i for i, k in enumerate(kinds) if k == "bookTicker"]
    edited = list(lines)
    edited[tickers[6]] = with_time(lines[tickers[3]], lines[tickers[6]])  # an older update, late
    edited[trades[5]] = with_time(lines[trades[4]], lines[trades[5]])  # trade 4 twice, no 5
    (tmp_path / BINANCE_FILE).write_text("\n".join(edited) + "\n")

    # Act
    plan = plan_replay(tmp_path, [BTC_ONLY], start_ms=START_MS)

    # Assert: counted as the live feed counts them; the duplicate and the older one dropped
    assert plan.errors["duplicate"] == 1 and plan.errors["out_of_order"] == 1
    assert plan.errors["sequence_gap"] == 1  # trade 5 is missing
    assert len(of(plan.records, "binance", Trade)) == len(trades) - 1
    assert len(of(plan.records, "binance", Quote, refresh=False)) == len(tickers) - 1
    counted = Counter(e.value for e in plan.events if e.name == "error")
    assert counted == plan.errors


def with_time(line: str, time_of: str) -> str:
    """``line``'s frame at the receive time of ``time_of``."""
    rec = json.loads(line)
    return json.dumps(rec | {"recv_ts_ns": json.loads(time_of)["recv_ts_ns"]})


def feed_samples(metrics: ProducerMetrics) -> dict:
    """Every sample of the feed counters, by name and labels."""
    out = {}
    for family in metrics.registry.collect():
        if family.name in {"arb_feed_messages", "arb_feed_errors", "arb_feed_latency_seconds"}:
            for sample in family.samples:
                if not sample.name.endswith("_created"):
                    out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_a_replay_exports_the_feed_metrics_of_a_live_feed(fixtures_dir, binance_frames) -> None:
    # Arrange: the same recording read by a live feed (frames handed over, no socket) ...
    live = ProducerMetrics(CollectorRegistry())
    feed = Feed(binance.VENUE, ["BTC-USD"], ListSink(), fx=1.0, metrics=live,
                clock_ms=iter([f.recv_ts_ms for f in binance_frames]).__next__)
    for frame in binance_frames:
        feed.on_frame(frame.raw)
    # ... and replayed
    replayed = ProducerMetrics(CollectorRegistry())
    plan = plan_replay(fixtures_dir, [BTC_ONLY], start_ms=START_MS)

    # Act
    sent = publish_replay(plan, ListSink(), speed=None, metrics=replayed)

    # Assert: messages by kind, errors by reason, latency: sample for sample
    assert sent == len(plan.records)
    assert feed_samples(replayed) == feed_samples(live)
    assert feed_samples(live)[("arb_feed_messages_total", (("channel", "depthUpdate"),
                                                           ("exchange", "binance")))] > 0


def test_feed_events_are_exported_on_the_replay_clock(plan, sink, metrics) -> None:
    window = plan.until(START_MS + 1000)
    events = list(iter_replay(window, feed_events=True))
    published_at = []

    class Watching(ListSink):
        def publish(self, record):
            published_at.append(metrics.value("arb_feed_messages_total", exchange="binance",
                                              channel="bookTicker"))
            return super().publish(record)

    publish_replay(window, Watching(), speed=None, metrics=metrics)

    times = [e.ts_ms for e in events]
    assert times == sorted(times)
    assert [e for e in events if isinstance(e, FeedEvent)] == window.events
    # when the first Binance quote goes out, exactly the ticker frames before it were counted
    first = next(i for i, r in enumerate(window.records) if r.exchange == "binance"
                 and isinstance(r, Quote))
    before = [e for e in window.events if e.ts_ms <= window.records[first].ts_ms
              and e.name == "message" and e.value == "bookTicker"]
    assert published_at[first] == len(before)


# --- publishing ---------------------------------------------------------------------------

def test_paced_publishing(plan, sink, metrics) -> None:
    window = plan.until(START_MS + 2000)  # its records, with the frames' feed events
    span_s = (window[-1].ts_ms - window[0].ts_ms) / 1000

    began = time.monotonic()
    sent = publish_replay(window, sink, speed=20, metrics=metrics)
    elapsed_s = time.monotonic() - began

    assert sent == len(window) == len(sink.records)
    assert span_s / 20 - 0.01 <= elapsed_s < span_s / 20 + 0.5
    last_bid = of(window, "binance", Quote)[-1].bid
    assert metrics.value("arb_best_bid_usd", exchange="binance", symbol="BTC-USD") == last_bid
    n_trades = len(of(window, "binance", Trade))
    assert metrics.value("arb_feed_messages_total", exchange="binance", channel="trade") == n_trades
    assert abs(metrics.value("arb_feed_last_message_timestamp_seconds", exchange="binance")
               - time.time()) < 5


def test_max_speed_and_stop(plan, sink) -> None:
    assert publish_replay(plan.records, sink, speed=None) == len(plan.records)

    stop = threading.Event()
    stop.set()
    assert publish_replay(plan.records, sink, speed=1, stop=stop) == 0


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = make_consumer(bootstrap, f"test-{topic}")
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                out.append(msg)
    finally:
        consumer.close()
    return out


@pytest.mark.integration
def test_replay_into_a_real_broker(broker, plan, unique, metrics) -> None:
    topic = f"crypto-prices-{unique}"
    ensure_topics(broker.bootstrap_servers, [topic], partitions=1)
    publisher = KafkaPublisher(broker.bootstrap_servers, topic, metrics, block=True)

    sent = publish_replay(plan.records, publisher, speed=None)
    remaining = publisher.flush(30)
    messages = consume_all(broker.bootstrap_servers, topic, sent)

    assert remaining == 0 and sent == len(plan.records)
    assert [parse_price_record(m.value()) for m in messages] == plan.records
    assert {m.key() for m in messages} == {b"BTC-USD"}
    assert metrics.value("arb_kafka_produced_total", topic=topic) == sent
    assert metrics.value("arb_kafka_delivery_latency_seconds_count") == sent


def cli_env(broker, topic: str) -> dict[str, str]:
    """The producer CLI publishing to ``topic`` of the test broker."""
    return os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "ARB_PRICES_TOPIC": topic,
        "ARB_TOPIC_PARTITIONS": "1",
        "ARB_PRODUCER_METRICS_PORT": "0",
    }


@pytest.mark.integration
def test_cli_replay_exits_zero_after_publishing_everything(broker, fixtures_dir, unique) -> None:
    topic = f"crypto-prices-{unique}"
    env = cli_env(broker, topic)
    # the CLI replays with the default ladder sizes and book depth (ARB_DEPTH_NOTIONALS_USD)
    expected = build_replay(fixtures_dir, start_ms=START_MS,
                            shocks=[Shock.parse("binance:BTC-USD:+150@10:2")],
                            depth_notionals_usd=DEFAULT_DEPTH_NOTIONALS_USD, book_levels=100)

    done = subprocess.run(
        [sys.executable, "-m", "services.producer", "replay", "--speed", "max",
         "--shock", "binance:BTC-USD:+150@10:2", "--fixtures-dir", str(fixtures_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    messages = consume_all(broker.bootstrap_servers, topic, len(expected))

    assert done.returncode == 0, done.stderr[-2000:]
    records = [parse_price_record(m.value()) for m in messages]
    # the CLI started at "now": the same replay, shifted by the difference in start time
    offset_ms = records[0].ts_ms - expected[0].ts_ms
    assert records == [shift(r, offset_ms) for r in expected]


@pytest.mark.integration
def test_cli_paced_replay_stamps_records_when_they_are_sent(broker, fixtures_dir, unique) -> None:
    """At 1x, receive times are wall-clock times: a record reaches Kafka right after its
    ts_ms, not later by however long the replay took to build."""
    topic = f"crypto-prices-{unique}"
    env = cli_env(broker, topic)
    replay = subprocess.Popen(
        [sys.executable, "-m", "services.producer", "replay", "--speed", "1",
         "--fixtures-dir", str(fixtures_dir)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        messages = consume_all(broker.bootstrap_servers, topic, 200)
    finally:
        replay.terminate()
        replay.wait(30)

    assert len(messages) == 200
    delays_ms = sorted(m.timestamp()[1] - json.loads(m.value())["ts_ms"] for m in messages)
    # linger, a poll step and a shared machine's hiccups, but not the ~100-200 ms build time
    assert delays_ms[0] >= -5
    assert delays_ms[len(delays_ms) // 2] < 50, delays_ms


def test_cli_rejects_a_bad_shock() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.producer", "replay", "--shock", "nonsense"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert "EXCHANGE:SYMBOL:DELTA_USD@START_S:DURATION_S" in done.stderr


def test_cli_rejects_bad_configuration() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.producer", "replay"],
        cwd=REPO, env=os.environ | {"ARB_USDT_USD": "-1"}, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert done.returncode == 2
    assert "ARB_USDT_USD" in done.stderr


def book_samples(metrics: ProducerMetrics) -> dict:
    """Every sample of the book families (arb_book_*), by name and labels."""
    out = {}
    for family in metrics.registry.collect():
        if family.name.startswith("arb_book_"):
            for sample in family.samples:
                if not sample.name.endswith("_created"):
                    out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_a_replay_exports_the_book_metrics_as_it_reaches_them(tmp_path, fixtures_dir) -> None:
    # Arrange: the Binance recording with one depth diff deleted: a gap, then a resync
    lines = (fixtures_dir / BINANCE_FILE).read_text().splitlines()
    kinds = [None if '"source"' in line[:80] else binance_kind(
        Frame(0, json.loads(line)["raw"])) for line in lines]
    diffs = [i for i, k in enumerate(kinds) if k == "depth@100ms"]
    assert len(diffs) > 20
    (tmp_path / BINANCE_FILE).write_text(
        "\n".join(line for i, line in enumerate(lines) if i != diffs[len(diffs) // 2]) + "\n")
    plan = plan_replay(tmp_path, [BTC_ONLY], start_ms=START_MS, depth_notionals_usd=(1000.0,))
    metrics = ProducerMetrics(CollectorRegistry())
    stopped = threading.Event()
    stopped.set()

    # Act: nothing published yet, then all of it
    publish_replay(plan, ListSink(), speed=None, stop=stopped, metrics=metrics)
    at_start = book_samples(metrics)
    publish_replay(plan, ListSink(), speed=None, metrics=metrics)
    at_end = book_samples(metrics)

    # Assert: every counter's series is there at 0 before any book message ...
    assert plan.book_venues == {"binance"}
    counters = {k for k in at_start if k[0].endswith("_total")}
    assert ("arb_book_gaps_total", (("exchange", "binance"),)) in counters
    assert ("arb_book_resyncs_total", (("exchange", "binance"), ("reason", "gap"))) in counters
    assert {v for k, v in at_start.items() if k in counters} == {0.0}
    # ... the gap is counted once, as the plan saw it, and the book is there with its depth
    statuses = [e.value for e in plan.events if e.name == "book_status"]
    assert [s.problem for s in statuses] == ["gap"]
    assert at_end[("arb_book_gaps_total", (("exchange", "binance"),))] == 1
    assert at_end[("arb_book_resyncs_total", (("exchange", "binance"), ("reason", "gap")))] == 1
    # (the recording has no second snapshot: after the gap the book stays empty, and says so)
    depths = [e.value for e in plan.events if e.name == "book_depth"]
    assert {d[0] for d in depths} == {"BTC-USD"}
    assert max(min(d[1:]) for d in depths) > 0 and depths[-1][1:] == (0, 0)
    market = (("exchange", "binance"), ("symbol", "BTC-USD"))
    for side, n_levels in zip(("bid", "ask"), depths[-1][1:], strict=True):
        assert at_end[("arb_book_levels", (*market[:1], ("side", side), *market[1:]))] == \
            n_levels
    assert 0 <= at_end[("arb_book_age_seconds", market)] < 60


def test_no_ladder_is_better_than_the_quote_it_rides(fixtures_dir) -> None:
    # Every venue's recording with its books: tickers and depth channels are separate streams
    # (Binance's depth 100 ms behind its bookTicker; Kraken's, Coinbase's and OKX's tickers
    # far behind their books), and a ladder built from the book alone was better than the
    # quote's own top on hundreds of these quotes.
    plan = plan_replay(fixtures_dir, recordings_for(tuple(VENUE_RECORDINGS)), start_ms=START_MS,
                       depth_notionals_usd=DEFAULT_DEPTH_NOTIONALS_USD, book_levels=100)
    laddered: Counter[str] = Counter()
    better: Counter[str] = Counter()

    for quote in (r for r in plan if isinstance(r, Quote) and r.depth):
        laddered[quote.exchange] += 1
        for level in quote.depth:
            if ((level.ask_px is not None and level.ask_px < quote.ask * (1 - 1e-12))
                    or (level.bid_px is not None and level.bid_px > quote.bid * (1 + 1e-12))):
                better[quote.exchange] += 1

    assert set(laddered) == {"binance", "coinbase", "kraken", "okx", "bitstamp"}
    assert min(laddered.values()) >= 100
    assert better == Counter()
