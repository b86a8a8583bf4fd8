"""Record mode: live frames to files in the fixtures format, rotated by size, and a recorded
folder replayed as recorded (venues in their real relative timing, nothing aligned or scaled)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.messages import Quote
from services.producer import binance
from services.producer.feed import Feed, FeedOptions
from services.producer.processor import FrameProcessor
from services.producer.recorder import MANIFEST, DiscardSink, FrameRecorder
from services.producer.replay import load_frames, plan_replay, recordings_in
from tests.producer.conftest import ListSink
from tests.producer.http_venue import RestVenue
from tests.producer.ws_venue import RecordedVenue, Session, run_until

REPO = Path(__file__).resolve().parents[2]
T0_NS = 1_700_000_000_000_000_000


def raw_frames(fixtures_dir: Path, name: str, count: int) -> list[str]:
    return [f.raw for f in load_frames(fixtures_dir / name)[:count]]


def test_recorder_writes_fixture_lines_and_rotates(tmp_path: Path) -> None:
    ticks = iter(range(T0_NS, T0_NS + 10**12, 1_000_000))
    recorder = FrameRecorder(tmp_path, {"binance": {"BTCUSDT": "BTC-USD"}},
                             max_file_bytes=300, clock_ns=lambda: next(ticks))

    for i in range(6):
        recorder.write("binance", json.dumps({"n": i, "pad": "x" * 60}))
    recorder.write("coinbase", b'{"type":"heartbeat"}')
    recorder.close()

    binance = sorted(tmp_path.glob("binance-*.jsonl"))
    assert [p.name for p in binance] == ["binance-0001.jsonl", "binance-0002.jsonl",
                                         "binance-0003.jsonl"]
    assert all(p.stat().st_size <= 300 for p in binance)
    lines = [json.loads(line) for p in binance for line in p.read_text().splitlines()]
    assert [json.loads(r["raw"])["n"] for r in lines] == list(range(6))
    assert [r["recv_ts_ns"] for r in lines] == [T0_NS + i * 1_000_000 for i in range(6)]
    assert {r["exchange"] for r in lines} == {"binance"}
    assert [f.recv_ts_ms for f in load_frames(binance[0])] == [T0_NS // 10**6, T0_NS // 10**6 + 1]
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["venues"] == {"binance": {"BTCUSDT": "BTC-USD"}}


def recorded_raws(folder: Path, venue: str) -> list[str]:
    return [json.loads(line)["raw"] for p in sorted(folder.glob(f"{venue}-*.jsonl"))
            for line in p.read_text().splitlines()]


def test_the_tap_sees_every_frame_before_the_processor(tmp_path, fixtures_dir, metrics) -> None:
    # Arrange: a feed whose tap is the recorder, and a tap that checks what the feed knew then
    recorder = FrameRecorder(tmp_path, {"binance": {"BTCUSDT": "BTC-USD"}})
    sink = ListSink()
    seen_before: list[int | None] = []
    write = recorder.tap("binance")

    def tap(raw: str | bytes) -> None:
        seen_before.append(feed.processor.last_alive_ms)
        write(raw)

    feed = Feed(binance.VENUE, ["BTC-USD"], sink, fx=1.0, metrics=metrics, tap=tap,
                clock_ms=iter(range(T0_NS // 10**6, T0_NS // 10**6 + 10**6)).__next__)
    frames = [*raw_frames(fixtures_dir, "binance.jsonl", 50), "garbage{", "[1,2]"]

    # Act: frames handed over as the read loop does, no socket
    usable = [feed.on_frame(raw) for raw in frames]
    recorder.close()

    # Assert: every frame recorded verbatim, garbage too; the feed went on as live
    assert recorded_raws(tmp_path, "binance") == frames
    assert seen_before[0] is None  # the first frame reached the tap before the processor
    assert usable == [True] * 50 + [False, False]
    alone = FrameProcessor(binance.VENUE, {"BTCUSDT": "BTC-USD"})
    assert sink.records == [r for i, raw in enumerate(frames)
                            for r in alone.process(raw, T0_NS // 10**6 + i).records]
    assert metrics.value("arb_feed_errors_total", exchange="binance", reason="not_json") == 1


def test_a_tapped_live_feed_records_what_it_reads(tmp_path, fixtures_dir, metrics) -> None:
    frames = raw_frames(fixtures_dir, "binance.jsonl", 200)
    recorder = FrameRecorder(tmp_path, {"binance": {"BTCUSDT": "BTC-USD"}},
                             max_file_bytes=20_000)
    sink = DiscardSink()

    with RecordedVenue([Session(frames)]) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink, FeedOptions(url=server.url), fx=1.0,
                    metrics=metrics, tap=recorder.tap("binance"))
        asyncio.run(run_until(feed, lambda: recorder.frames == len(frames)))
    recorder.close()

    assert recorded_raws(tmp_path, "binance") == frames
    assert len(recorder.files) > 1  # rotated
    quotes_and_trades = sum(1 for raw in frames
                            if json.loads(raw)["stream"].endswith(("@bookTicker", "@trade")))
    assert sink.records == quotes_and_trades


def test_recorded_folder_replays_as_recorded(tmp_path: Path, fixtures_dir: Path) -> None:
    """Two venues recorded together: Coinbase's first frame 250 ms after Binance's. The replay
    keeps that offset, plays each file once and scales no price."""
    clock = {"ns": T0_NS}
    recorder = FrameRecorder(tmp_path, {"binance": {"BTCUSDT": "BTC-USD"},
                                        "coinbase": {"SKL-USD": "BTC-USD"}},
                             max_file_bytes=20_000, clock_ns=lambda: clock["ns"])
    binance = raw_frames(fixtures_dir, "binance.jsonl", 400)
    coinbase = raw_frames(fixtures_dir, "coinbase_exchange_2021.jsonl", 200)
    for i, raw in enumerate(binance):
        clock["ns"] = T0_NS + i * 10_000_000  # every 10 ms
        recorder.write("binance", raw)
    for i, raw in enumerate(coinbase):
        clock["ns"] = T0_NS + 250_000_000 + i * 10_000_000
        recorder.write("coinbase", raw)
    recorder.close()

    recordings = recordings_in(tmp_path)
    plan = plan_replay(tmp_path, recordings, aligned=False, start_ms=5_000)

    assert recordings is not None and len(recordings) > 2  # rotated files, both venues
    assert recordings_in(fixtures_dir) is None  # the demo fixtures are aligned as before
    assert plan.frames == len(binance) + len(coinbase)  # once each, no looping
    assert plan.scale == {}
    first = {v: min(r.ts_ms for r in plan.records if r.exchange == v and not
                    getattr(r, "refresh", False)) for v in ("binance", "coinbase")}
    assert first["binance"] >= 5_000 and first["coinbase"] >= 5_250
    coinbase_quotes = [r for r in plan.records if isinstance(r, Quote)
                       and r.exchange == "coinbase"]
    assert coinbase_quotes and max(q.ask for q in coinbase_quotes) < 10  # SKL, unscaled
    assert plan.end_ms == 5_000 + (len(binance) - 1) * 10  # the later of the two last frames


@pytest.mark.integration
def test_record_mode_writes_live_frames(tmp_path: Path, fixtures_dir: Path,
                                        output_dir: Path) -> None:
    frames = raw_frames(fixtures_dir, "binance.jsonl", 300)
    out = tmp_path / "recorded"
    # the depth diffs ask for the REST snapshot: the recorded one, served here
    snapshot = next(json.loads(line) for line in (fixtures_dir / "binance.jsonl").open()
                    if '"source":"rest"' in line)
    path = "/api/v3/depth?symbol=BTCUSDT&limit=100"
    with (RecordedVenue(sessions=[Session([*frames, 0.5])]) as venue,
          RestVenue({path: [snapshot["raw"]]}) as rest):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "KAFKA_"))}
        env.update({"ARB_VENUES": "binance", "ARB_SYMBOLS": "BTC-USD",
                    "ARB_BINANCE_WS_URL": venue.url, "ARB_BINANCE_REST_URL": rest.url,
                    "ARB_PRODUCER_METRICS_PORT": "0",
                    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})  # no broker needed
        log = output_dir / "record.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "services.producer", "record", "--out", str(out),
                 "--max-file-mb", "0.02"], cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                written = sum(len(p.read_text().splitlines()) for p in out.glob("*.jsonl"))
                if written >= len(frames) + 1:
                    break
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=20)
    assert code == 0, log.read_text()[-2000:]
    files = sorted(out.glob("binance-*.jsonl"))
    assert len(files) >= 3  # about 95 kB of frames at 20 kB per file
    lines = [json.loads(line) for p in files for line in p.read_text().splitlines()]
    recorded = [r for r in lines if r.get("source") != "rest"]
    assert [r["raw"] for r in recorded] == frames
    # the snapshot it fetched is a line too, as the fixtures hold them
    (fetched,) = [r for r in lines if r.get("source") == "rest"]
    assert fetched["url"] == rest.url + path
    assert fetched["raw"] == snapshot["raw"]
    assert rest.requests == [path]
    assert all(r["exchange"] == "binance" for r in recorded)
    times = [r["recv_ts_ns"] for r in recorded]
    assert times == sorted(times)
    assert recordings_in(out) is not None
