"""Live feed loop against local WebSocket servers that send each venue's recorded frames verbatim.

Every venue is played in its own wire format: the records must match values computed here from
the raw messages; a dropped connection, a silent one, garbage frames and a broken WebSocket
stream must all end in a counted reconnect, never a crash.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import structlog

from services.common.backoff import Backoff
from services.common.kafka import ensure_topics
from services.common.messages import Quote, Trade, parse_price_record
from services.producer import binance, coinbase, kraken, okx
from services.producer.connector import Venue
from services.producer.feed import Feed, FeedOptions
from services.producer.fx import FxRates
from services.producer.replay import Frame, load_frames
from tests.producer.conftest import (
    BINANCE_FILE,
    COINBASE_FILE,
    KRAKEN_FILE,
    OKX_FILE,
    ListSink,
    binance_kind,
    liveness_stream,
)
from tests.producer.test_replay import consume_all
from tests.producer.ws_venue import (
    BroadcastVenue,
    CountingBackoff,
    RecordedVenue,
    Session,
    Step,
    run_until,
    running,
    until,
)

REPO = Path(__file__).resolve().parents[2]
CROSSED_BID = "99999999.0"


# --- each venue as the tests see it ---------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """A venue, the recording it is played from and the recorded product that plays BTC-USD."""

    venue: Venue
    file: str
    subscribe_count: int
    product: str
    #: (bid, ask, bid_size, ask_size) of each quote the raw message holds for ``product``
    quotes_of: Callable[[Any, str], list[tuple]]
    #: (price, size, taker side) of each trade
    trades_of: Callable[[Any, str], list[tuple]]
    #: the raw message with its best bid raised above the ask
    crossed: Callable[[Any], Any]
    #: how many frames the feed tests play (whole recordings except Binance's 4888)
    frames: int | None = None


def _f(text: str | None) -> float | None:
    return None if text is None else float(text)


def _binance_quotes(msg: Any, product: str) -> list[tuple]:
    d = msg.get("data", {})
    if not msg.get("stream", "").endswith("@bookTicker") or d.get("s") != product:
        return []
    return [(float(d["b"]), float(d["a"]), float(d["B"]), float(d["A"]))]


def _binance_trades(msg: Any, product: str) -> list[tuple]:
    d = msg.get("data", {})
    if not msg.get("stream", "").endswith("@trade") or d.get("s") != product:
        return []
    return [(float(d["p"]), float(d["q"]), "sell" if d["m"] else "buy")]


def _binance_crossed(msg: Any) -> Any:
    return msg | {"data": msg["data"] | {"b": CROSSED_BID}}


def _coinbase_quotes(msg: Any, product: str) -> list[tuple]:
    if msg.get("type") != "ticker" or msg.get("product_id") != product:
        return []
    return [(float(msg["best_bid"]), float(msg["best_ask"]), _f(msg.get("best_bid_size")),
             _f(msg.get("best_ask_size")))]


def _coinbase_trades(msg: Any, product: str) -> list[tuple]:
    if msg.get("type") not in {"match", "last_match"} or msg.get("product_id") != product:
        return []
    return [(float(msg["price"]), float(msg["size"]), "buy" if msg["side"] == "sell" else "sell")]


def _kraken_quotes(msg: Any, product: str) -> list[tuple]:
    if not isinstance(msg, list) or msg[-2:] != ["ticker", product]:
        return []
    a, b = msg[1]["a"], msg[1]["b"]
    return [(float(b[0]), float(a[0]), float(b[2]), float(a[2]))]


def _kraken_trades(msg: Any, product: str) -> list[tuple]:
    if not isinstance(msg, list) or msg[-2:] != ["trade", product]:
        return []
    return [(float(t[0]), float(t[1]), {"b": "buy", "s": "sell"}[t[3]]) for t in msg[1]]


def _kraken_crossed(msg: Any) -> Any:
    payload = dict(msg[1])
    payload["b"] = [CROSSED_BID, *payload["b"][1:]]
    return [msg[0], payload, *msg[2:]]


def _okx_items(msg: Any, channel: str, product: str) -> list[dict]:
    if not isinstance(msg, dict) or msg.get("arg", {}).get("channel") != channel:
        return []
    return [d for d in msg.get("data", []) if d.get("instId") == product]


def _okx_quotes(msg: Any, product: str) -> list[tuple]:
    return [(float(d["bidPx"]), float(d["askPx"]), float(d["bidSz"]), float(d["askSz"]))
            for d in _okx_items(msg, "tickers", product)]


def _okx_trades(msg: Any, product: str) -> list[tuple]:
    return [(float(d["px"]), float(d["sz"]), d["side"]) for d in _okx_items(msg, "trades", product)]


def _okx_crossed(msg: Any) -> Any:
    return msg | {"data": [msg["data"][0] | {"bidPx": CROSSED_BID}]}


CASES: dict[str, Case] = {
    "binance": Case(binance.VENUE, BINANCE_FILE, 0, "BTCUSDT", _binance_quotes, _binance_trades,
                    _binance_crossed, frames=300),
    # The recordings hold no BTC on Coinbase or Kraken: their products play BTC-USD here.
    "coinbase": Case(replace(coinbase.VENUE, symbols={"BTC-USD": "SKL-USD"}), COINBASE_FILE, 3,
                     "SKL-USD", _coinbase_quotes, _coinbase_trades,
                     lambda m: m | {"best_bid": CROSSED_BID}),
    "kraken": Case(replace(kraken.VENUE, symbols={"BTC-USD": "XMR/USD"}), KRAKEN_FILE, 2,
                   "XMR/USD", _kraken_quotes, _kraken_trades, _kraken_crossed),
    "okx": Case(okx.VENUE, OKX_FILE, 1, "BTC-USDT", _okx_quotes, _okx_trades, _okx_crossed),
}
VENUE_NAMES = sorted(CASES)


@pytest.fixture(params=VENUE_NAMES)
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


def frames_of(case: Case, fixtures_dir: Path) -> list[Frame]:
    frames = load_frames(fixtures_dir / case.file)
    return list(frames[:case.frames] if case.frames else frames)


def expected(case: Case, raws: list[str]) -> tuple[list[tuple], list[tuple]]:
    msgs = [json.loads(raw) for raw in raws]
    quotes = [q for m in msgs for q in case.quotes_of(m, case.product)]
    trades = [t for m in msgs for t in case.trades_of(m, case.product)]
    return quotes, trades


def published(sink: ListSink) -> tuple[list[tuple], list[tuple]]:
    quotes = [(q.bid, q.ask, q.bid_size, q.ask_size) for q in sink.of(Quote, refresh=False)]
    trades = [(t.price, t.size, t.side) for t in sink.of(Trade)]
    return quotes, trades


def feed_for(case: Case, url: str, sink: ListSink, metrics, **kw: Any) -> Feed:
    kw.setdefault("backoff", CountingBackoff())
    return Feed(case.venue, ["BTC-USD"], sink, FeedOptions(url=url, **kw), fx=1.0,
                metrics=metrics)


def first_quote_raw(case: Case, raws: list[str]) -> str:
    return next(r for r in raws if case.quotes_of(json.loads(r), case.product))


def errors(metrics, exchange: str, reason: str) -> float:
    return metrics.value("arb_feed_errors_total", exchange=exchange, reason=reason)


def reconnects(metrics, exchange: str) -> float:
    return metrics.value("arb_feed_reconnects_total", exchange=exchange)


# --- backoff ------------------------------------------------------------------------------

def test_backoff_is_exponential_capped_and_jittered() -> None:
    backoff = Backoff(initial_s=0.5, max_s=4.0, factor=2.0, jitter=0.5)

    no_jitter = [backoff.delay_s(n, rand=lambda: 0.0) for n in range(6)]
    full_jitter = [backoff.delay_s(n, rand=lambda: 1.0) for n in range(6)]

    assert no_jitter == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert full_jitter == [d / 2 for d in no_jitter]


# --- every venue: recorded frames through a real socket -------------------------------------

def test_recorded_frames_become_the_expected_records(case, fixtures_dir, sink, metrics) -> None:
    # Arrange: the venue's recording, verbatim, on a local server
    raws = [f.raw for f in frames_of(case, fixtures_dir)]
    want_quotes, want_trades = expected(case, raws)
    assert want_quotes and want_trades

    # Act
    with RecordedVenue([Session(raws)], subscribe_count=case.subscribe_count) as server:
        feed = feed_for(case, server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: published(sink) == (want_quotes, want_trades)))

    # Assert: field by field against the raw messages, plus what the venue was asked for
    name = case.venue.name
    assert published(sink) == (want_quotes, want_trades)
    assert {r.symbol for r in sink.records} == {"BTC-USD"}
    assert {r.venue_symbol for r in sink.records} == {case.product}
    assert all(r.exchange == name and r.ts_ms == r.recv_ts_ms for r in sink.records)
    assert all(abs(r.recv_ts_ms - time.time() * 1000) < 60_000 for r in sink.records)
    expected_url = case.venue.connect_url(server.url, [case.product])
    assert server.paths == [expected_url.removeprefix(server.url) or "/"]
    sent = case.venue.subscribe_messages([case.product])
    assert server.received == sent
    assert metrics.value("arb_best_bid_usd", exchange=name, symbol="BTC-USD") == want_quotes[-1][0]
    assert metrics.value("arb_feed_last_message_timestamp_seconds", exchange=name) > 0
    assert metrics.value("arb_feed_connected", exchange=name) == 0  # after shutdown
    assert reconnects(metrics, name) == 0
    assert errors(metrics, name, "sequence_gap") == 0


def test_dropped_connection_reconnects(case, fixtures_dir, sink, metrics) -> None:
    raws = [f.raw for f in frames_of(case, fixtures_dir)]
    half = len(raws) // 2
    want = expected(case, raws)
    backoff = CountingBackoff()

    sessions = [Session(raws[:half], close=True), Session(raws[half:])]
    with RecordedVenue(sessions, subscribe_count=case.subscribe_count) as server:
        feed = feed_for(case, server.url, sink, metrics, backoff=backoff)
        asyncio.run(run_until(feed, lambda: published(sink) == want))

    assert server.connections == feed.connections == 2
    assert reconnects(metrics, case.venue.name) == 1
    assert backoff.attempts == [0]
    assert len(server.received) == 2 * case.subscribe_count  # resubscribed


def test_disconnect_storm_loses_nothing(case, fixtures_dir, sink, metrics) -> None:
    """Ten drops in a row, each after a few frames: every drop is a counted reconnect with a
    resubscribe, nothing is parsed twice or lost, and the feed is still there at the end."""
    raws = [f.raw for f in frames_of(case, fixtures_dir)]
    want = expected(case, raws)
    cuts = [len(raws) * k // 11 for k in range(12)]
    sessions = [Session(raws[a:b], close=b < len(raws)) for a, b in itertools.pairwise(cuts)]
    with RecordedVenue(sessions, subscribe_count=case.subscribe_count) as server:
        feed = feed_for(case, server.url, sink, metrics, backoff=CountingBackoff())
        # Some slices hold only book frames, so the records can be complete before the last
        # connection is: wait until both ends have seen all eleven handshakes and subscriptions.
        asyncio.run(run_until(
            feed, lambda: (server.connections == feed.connections == 11
                           and len(server.received) == 11 * case.subscribe_count
                           and published(sink) == want),
        ))

    assert server.connections == feed.connections == 11
    assert reconnects(metrics, case.venue.name) == 10
    assert len(server.received) == 11 * case.subscribe_count  # resubscribed every time
    assert published(sink) == want


def test_silent_connection_trips_the_watchdog(case, fixtures_dir, sink, metrics) -> None:
    raws = [f.raw for f in frames_of(case, fixtures_dir)]
    half = len(raws) // 2
    want = expected(case, raws)

    # the first connection delivers half the recording, then stays open and says nothing
    sessions = [Session(raws[:half]), Session(raws[half:])]
    with RecordedVenue(sessions, subscribe_count=case.subscribe_count) as server:
        feed = feed_for(case, server.url, sink, metrics, watchdog_ms=300)
        asyncio.run(run_until(feed, lambda: published(sink) == want))

    name = case.venue.name
    assert server.connections == 2
    assert errors(metrics, name, "silent") == 1
    assert reconnects(metrics, name) == 1


def test_garbage_only_connection_is_replaced(case, fixtures_dir, sink, metrics) -> None:
    raws = [f.raw for f in frames_of(case, fixtures_dir)]
    want = expected(case, raws)
    garbage: list[Step] = []
    for _ in range(10):
        garbage += ["garbage{", 0.05, "\x00\x01", 0.05, "[1,2]", 0.05]

    # frames keep coming but none is a venue message: the watchdog must not be fooled
    with RecordedVenue([Session(garbage), Session(raws)],
                       subscribe_count=case.subscribe_count) as server:
        feed = feed_for(case, server.url, sink, metrics, watchdog_ms=400)
        asyncio.run(run_until(feed, lambda: published(sink) == want))

    name = case.venue.name
    assert server.connections == 2
    assert errors(metrics, name, "not_json") >= 2
    assert errors(metrics, name, "unknown_type") >= 1
    assert errors(metrics, name, "silent") == 1
    assert reconnects(metrics, name) == 1


def test_broken_websocket_stream_reconnects(case, fixtures_dir, sink, metrics) -> None:
    raws = [f.raw for f in frames_of(case, fixtures_dir)]
    half = len(raws) // 2
    want = expected(case, raws)

    # after half the recording the server writes bytes that are not a WebSocket frame
    sessions = [Session(raws[:half], garbage=True), Session(raws[half:])]
    with RecordedVenue(sessions, subscribe_count=case.subscribe_count) as server:
        feed = feed_for(case, server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: published(sink) == want))

    assert server.connections == feed.connections == 2
    assert reconnects(metrics, case.venue.name) == 1


def test_bad_values_are_counted_and_the_loop_goes_on(case, fixtures_dir, sink, metrics) -> None:
    raws = [f.raw for f in frames_of(case, fixtures_dir)]
    good = first_quote_raw(case, raws)
    crossed = json.dumps(case.crossed(json.loads(good)))
    steps: list[Step] = ["garbage{", crossed, '{"unexpected":"message"}', good]

    with RecordedVenue([Session(steps)], subscribe_count=case.subscribe_count) as server:
        feed = feed_for(case, server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: len(sink.records) == 1))

    name = case.venue.name
    assert errors(metrics, name, "not_json") == 1
    assert errors(metrics, name, "crossed_book") == 1
    assert errors(metrics, name, "unknown_type") == 1
    assert published(sink)[0] == expected(case, [good])[0]
    assert feed.connections == 1 and reconnects(metrics, name) == 0


def test_the_server_ping_is_answered(case, fixtures_dir, sink, metrics) -> None:
    raws = [f.raw for f in frames_of(case, fixtures_dir)][:20]

    with RecordedVenue([Session(raws)], subscribe_count=case.subscribe_count,
                       ping_client=True) as server:
        feed = feed_for(case, server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: server.pongs == 1))

    assert feed.connections == 1


# --- sequence numbers ---------------------------------------------------------------------

SEQUENCED = ["binance", "coinbase", "okx"]  # Kraken v1 sends no trade ids or sequence numbers


def trade_frames(case: Case, raws: list[str]) -> list[int]:
    return [i for i, r in enumerate(raws) if case.trades_of(json.loads(r), case.product)]


@pytest.mark.parametrize("name", SEQUENCED)
def test_a_deleted_trade_is_a_sequence_gap(name, fixtures_dir, sink, metrics) -> None:
    # Arrange: the recording with one trade message deleted
    case = CASES[name]
    raws = [f.raw for f in frames_of(case, fixtures_dir)]
    deleted = trade_frames(case, raws)[2]
    del raws[deleted]
    want = expected(case, raws)

    # Act
    with structlog.testing.capture_logs() as logs, RecordedVenue(
            [Session(raws)], subscribe_count=case.subscribe_count) as server:
        feed = feed_for(case, server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: published(sink) == want))

    # Assert: counted once, logged with the ids around the hole, nothing else dropped
    assert errors(metrics, name, "sequence_gap") == 1
    [gap] = [e for e in logs if e["event"] == "feed_sequence_gap"]
    assert gap["missing"] == 1 and gap["next"] == gap["after"] + 2
    assert gap["exchange"] == name and gap["stream"] == "trade"


@pytest.mark.parametrize("name", SEQUENCED)
def test_a_repeated_trade_is_dropped_as_duplicate(name, fixtures_dir, sink, metrics) -> None:
    case = CASES[name]
    raws = [f.raw for f in frames_of(case, fixtures_dir)]
    want = expected(case, raws)
    repeated = trade_frames(case, raws)[1]
    raws.insert(repeated + 1, raws[repeated])

    with RecordedVenue([Session(raws)], subscribe_count=case.subscribe_count) as server:
        feed = feed_for(case, server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: published(sink) == want
                              and errors(metrics, name, "duplicate") == 1))

    assert published(sink) == want
    assert errors(metrics, name, "sequence_gap") == 0


def test_an_older_book_ticker_is_dropped(fixtures_dir, sink, metrics) -> None:
    case = CASES["binance"]
    raws = [f.raw for f in frames_of(case, fixtures_dir)]
    tickers = [i for i, r in enumerate(raws) if binance_kind(Frame(0, r)) == "bookTicker"]
    older = raws[tickers[3]]
    raws.insert(tickers[6] + 1, older)  # a late copy of an earlier update
    want = expected(case, [r for i, r in enumerate(raws) if i != tickers[6] + 1])

    with RecordedVenue([Session(raws)]) as server:
        feed = feed_for(case, server.url, sink, metrics)
        asyncio.run(run_until(feed, lambda: published(sink) == want
                              and errors(metrics, "binance", "out_of_order") == 1))

    assert published(sink) == want


# --- Binance's 24 h limit: a planned reconnect with overlap ---------------------------------

def broadcast(fixtures_dir: Path, frames: int, speed: float) -> tuple[list[str], list[float]]:
    """Binance bookTicker and trade frames with their recorded gaps, ``speed`` x faster."""
    kept = [f for f in load_frames(fixtures_dir / BINANCE_FILE)
            if binance_kind(f) in {"bookTicker", "trade"}][:frames]
    gaps = [0.0] + [(b.recv_ts_ms - a.recv_ts_ms) / 1000 / speed
                     for a, b in pairwise(kept)]
    return [f.raw for f in kept], gaps


def trade_ids(sink: ListSink) -> list[int]:
    return [int(t.trade_id) for t in sink.of(Trade)]


def test_rollover_before_the_age_limit_loses_nothing(fixtures_dir, sink, metrics) -> None:
    # Arrange: a venue that closes connections at 1.5 s, a feed told so, rolling 0.6 s early
    raws, gaps = broadcast(fixtures_dir, frames=1500, speed=4.0)
    want_quotes, want_trades = expected(CASES["binance"], raws)
    connected: list[float] = []

    with BroadcastVenue(raws, gaps, max_connection_s=1.5) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink,
                    FeedOptions(url=server.url, max_connection_s=1.5, rollover_margin_s=0.6,
                                overlap_s=0.2, backoff=CountingBackoff()),
                    fx=1.0, metrics=metrics)

        async def scenario() -> None:
            async def sample() -> None:
                while not server.done:  # the feed is cancelled only after this is seen
                    connected.append(metrics.value("arb_feed_connected", exchange="binance"))
                    await asyncio.sleep(0.005)

            sampler = asyncio.create_task(sample())
            await run_until(feed, lambda: server.done and published(sink) == (
                want_quotes, want_trades), timeout_s=30)
            await sampler

        # Act
        asyncio.run(scenario())

    # Assert: every trade exactly once, in order, every quote once; never disconnected
    ids = trade_ids(sink)
    assert len(ids) == len(want_trades)
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert published(sink) == (want_quotes, want_trades)
    assert feed.rollovers >= 2 and feed.connections == feed.rollovers + 1
    assert server.expired == 0  # the venue never had to cut the feed off
    first_up = connected.index(1.0)
    assert 0.0 not in connected[first_up:]
    assert errors(metrics, "binance", "sequence_gap") == 0
    assert errors(metrics, "binance", "duplicate") > 0  # the overlap, deduplicated


def test_without_rollover_the_age_limit_costs_trades(fixtures_dir, sink, metrics) -> None:
    # The same venue, a feed that does not know the limit: each cut is a gap in the trades
    raws, gaps = broadcast(fixtures_dir, frames=1500, speed=4.0)
    _, want_trades = expected(CASES["binance"], raws)

    with BroadcastVenue(raws, gaps, max_connection_s=1.5) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink,
                    FeedOptions(url=server.url, max_connection_s=None,
                                backoff=Backoff(initial_s=0.2, jitter=0.0)),
                    fx=1.0, metrics=metrics)
        asyncio.run(run_until(feed, lambda: server.done, timeout_s=30))

    assert server.expired >= 1
    assert len(trade_ids(sink)) < len(want_trades)
    assert reconnects(metrics, "binance") >= 1


def test_trades_missed_across_a_reconnect_are_counted(fixtures_dir, sink, metrics) -> None:
    """The same cuts: the trade ids go on where they were across each reconnect, so the first
    trade after it counts the trades that went by meanwhile, exactly the ids never received."""
    raws, gaps = broadcast(fixtures_dir, frames=1500, speed=4.0)
    with structlog.testing.capture_logs() as logs, BroadcastVenue(
            raws, gaps, max_connection_s=1.5) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink,
                    FeedOptions(url=server.url, max_connection_s=None,
                                backoff=Backoff(initial_s=0.2, jitter=0.0)),
                    fx=1.0, metrics=metrics)
        asyncio.run(run_until(feed, lambda: server.done, timeout_s=30))

    ids = trade_ids(sink)
    assert ids == sorted(set(ids)), "no trade twice, none out of order"
    never_received = (ids[-1] - ids[0] + 1) - len(ids)
    missed = [e for e in logs if e["event"] == "feed_trades_missed_across_reconnect"]
    assert server.expired >= 1 and never_received > 0
    assert sum(e["missing"] for e in missed) == never_received
    assert errors(metrics, "binance", "missed_across_reconnect") == len(missed) >= 1
    assert errors(metrics, "binance", "sequence_gap") == 0  # the recording has no hole
    assert all(e["next"] == e["after"] + e["missing"] + 1 for e in missed)


def test_a_failed_rollover_keeps_the_old_connection_and_retries(binance_frames, sink,
                                                                metrics) -> None:
    # the first replacement never delivers; the old connection goes on; the next one works
    raws = [f.raw for f in binance_frames if binance_kind(f) == "bookTicker"]
    steady: list[Step] = []
    for raw in raws[:60]:
        steady += [raw, 0.04]
    sessions = [Session(steady), Session([]), Session(raws[60:80])]

    with structlog.testing.capture_logs() as logs, RecordedVenue(sessions) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink,
                    FeedOptions(url=server.url, max_connection_s=0.3, rollover_margin_s=0.1,
                                overlap_s=0.05, watchdog_ms=300),
                    fx=1.0, metrics=metrics)
        asyncio.run(run_until(feed, lambda: feed.rollovers == 1, timeout_s=10))

    events = [e["event"] for e in logs]
    assert events.index("feed_rollover_failed") < events.index("feed_rolled_over")
    assert "feed_disconnected" not in events
    assert server.connections == 3 and feed.connections == 2
    assert reconnects(metrics, "binance") == 1  # the rollover itself


# --- keepalive ------------------------------------------------------------------------------

def test_okx_gets_its_text_ping_when_quiet(okx_frames, sink, metrics) -> None:
    raws = [f.raw for f in okx_frames][:30]

    # quiet for 1.2 s after the frames; the server answers "ping" with "pong", like OKX
    with RecordedVenue([Session([*raws, 1.2])], subscribe_count=1,
                       replies={"ping": "pong"}) as server:
        feed = Feed(okx.VENUE, ["BTC-USD"], sink,
                    FeedOptions(url=server.url, ping_after_s=0.15, watchdog_ms=500),
                    fx=1.0, metrics=metrics)
        asyncio.run(run_until(feed, lambda: server.received.count("ping") >= 4))

    assert feed.connections == 1
    assert errors(metrics, "okx", "silent") == 0
    assert metrics.value("arb_feed_messages_total", exchange="okx", channel="pong") >= 3


def test_unanswered_ping_ends_in_a_reconnect(okx_frames, sink, metrics) -> None:
    raws = [f.raw for f in okx_frames][:30]

    with RecordedVenue([Session(raws), Session(raws)], subscribe_count=1) as server:
        feed = Feed(okx.VENUE, ["BTC-USD"], sink,
                    FeedOptions(url=server.url, ping_after_s=0.1, watchdog_ms=400,
                                backoff=CountingBackoff()),
                    fx=1.0, metrics=metrics)
        asyncio.run(run_until(feed, lambda: server.connections == 2))

    assert "ping" in server.received
    assert errors(metrics, "okx", "silent") == 1


# --- freshness ------------------------------------------------------------------------------

def test_refresh_while_live_then_silence_stops_it(binance_frames, sink, metrics) -> None:
    # one quote, then only depth frames (liveness, no quote) for 0.6 s, then silence
    steps = liveness_stream(binance_frames, frames=12, gap_s=0.05)

    with structlog.testing.capture_logs() as logs, RecordedVenue([Session(steps)]) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink,
                    FeedOptions(url=server.url, refresh_ms=100, stale_ms=300), metrics=metrics)

        async def scenario() -> None:
            async with running(feed):
                await until(lambda: metrics.value(
                    "arb_feed_messages_total", exchange="binance", channel="depthUpdate") == 12)
                last_frame_ms = feed.book.last_message_ms("binance")
                await asyncio.sleep(0.6)  # silent for twice stale_ms
                assert feed.connected
                refreshes = sink.of(Quote, refresh=True)
                assert len(refreshes) >= 4
                assert max(q.ts_ms for q in refreshes) < last_frame_ms + 300

        asyncio.run(scenario())

    [quote] = sink.of(Quote, refresh=False)
    for refresh in sink.of(Quote, refresh=True):
        assert refresh.recv_ts_ms == quote.recv_ts_ms and refresh.bid == quote.bid
        assert refresh.exchange_ts_ms == quote.exchange_ts_ms
        assert refresh.ts_ms > quote.recv_ts_ms
    events = [e["event"] for e in logs if e.get("exchange") == "binance"]
    assert events.index("feed_connected") < events.index("feed_fresh") < events.index(
        "feed_stale")
    [stale] = [e for e in logs if e["event"] == "feed_stale"]
    assert stale["silent_ms"] >= 300 and stale["connected"] is True


def test_connect_and_disconnect_are_logged(binance_frames, sink, metrics) -> None:
    raws = [f.raw for f in binance_frames[:20]]
    with structlog.testing.capture_logs() as logs, RecordedVenue(
            [Session(raws, close=True), Session(raws)]) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink,
                    FeedOptions(url=server.url, backoff=CountingBackoff()), metrics=metrics)
        asyncio.run(run_until(feed, lambda: feed.connections == 2))

    events = [e["event"] for e in logs]
    assert events.count("feed_connected") == 2
    [down] = [e for e in logs if e["event"] == "feed_disconnected"]
    assert down["exchange"] == "binance" and down["reason"] == "ConnectionClosedError"
    assert "feed_reconnecting" in events


def test_backoff_grows_while_connects_fail_and_resets_after_data(binance_frames, sink,
                                                                 metrics) -> None:
    backoff = CountingBackoff()
    # nothing listens on this port: every attempt fails
    with RecordedVenue([]) as probe:
        dead_url = probe.url
    feed = Feed(binance.VENUE, ["BTC-USD"], sink, FeedOptions(url=dead_url, backoff=backoff),
                metrics=metrics)

    asyncio.run(run_until(feed, lambda: len(backoff.attempts) >= 4))

    assert backoff.attempts[:4] == [0, 1, 2, 3]
    assert reconnects(metrics, "binance") >= 4

    # a connection that delivered data resets the backoff
    healthy = CountingBackoff()
    frames = [f.raw for f in binance_frames[:5]]
    sessions = [Session(frames, close=True), Session(frames, close=True), Session(frames)]
    with RecordedVenue(sessions) as server:
        feed = Feed(binance.VENUE, ["BTC-USD"], sink,
                    FeedOptions(url=server.url, backoff=healthy), metrics=metrics)
        asyncio.run(run_until(feed, lambda: feed.connections == 3))
    assert healthy.attempts == [0, 0]


# --- stablecoin rates -----------------------------------------------------------------------

def usdt_usd_ticker(coinbase_frames, bid: str, ask: str) -> str:
    """A recorded Coinbase ticker re-labelled as USDT-USD with the given prices (derived from a
    real message: no USDT-USD frame was recorded)."""
    msg = next(json.loads(f.raw) for f in coinbase_frames
               if json.loads(f.raw).get("type") == "ticker")
    return json.dumps(msg | {"product_id": "USDT-USD", "best_bid": bid, "best_ask": ask})


def test_live_usdt_rate_from_coinbase_converts_binance(coinbase_frames, binance_frames,
                                                       sink, metrics) -> None:
    # Arrange: Coinbase quotes USDT-USD at 1.0001/1.0003 then drops; Binance plays BTCUSDT
    rate_ticker = usdt_usd_ticker(coinbase_frames, "1.0001", "1.0003")
    tickers = [f.raw for f in binance_frames if binance_kind(f) == "bookTicker"][:40]
    fx = FxRates({"USDT": 0.999, "USDC": 1.0}, max_age_ms=60_000)
    cb_venue = replace(coinbase.VENUE, symbols={"BTC-USD": "SKL-USD"})

    with RecordedVenue([Session([rate_ticker, 0.3], close=True)], subscribe_count=3) as cb, \
            RecordedVenue([Session([0.1, *tickers[:20], 0.5, *tickers[20:]])]) as bn:
        cb_feed = Feed(cb_venue, ["BTC-USD"], sink,
                       FeedOptions(url=cb.url, rate_markets=("USDT-USD",),
                                   backoff=Backoff(initial_s=30)),
                       fx=fx, metrics=metrics)
        bn_feed = Feed(binance.VENUE, ["BTC-USD"], sink, FeedOptions(url=bn.url), fx=fx,
                       metrics=metrics)

        # Act
        asyncio.run(run_until([cb_feed, bn_feed], lambda: len(sink.of(Quote)) >= 40))

    # Assert: the rate market was asked for (quotes only), used, and never published
    subscribes = {tuple(m["channels"]): m["product_ids"] for m in map(json.loads, cb.received)}
    assert subscribes[("ticker",)] == ["SKL-USD", "USDT-USD"]
    assert subscribes[("matches",)] == ["SKL-USD"]
    quotes = [q for q in sink.of(Quote, refresh=False) if q.exchange == "binance"]
    live, fallback = quotes[:20], quotes[20:40]
    assert all(q.fx_to_usd == pytest.approx(1.0002) for q in live)
    assert {q.fx_to_usd for q in fallback} == {0.999}  # Coinbase gone: the fallback
    for quote, raw in zip(quotes[:40], tickers, strict=True):
        data = json.loads(raw)["data"]
        assert quote.bid == pytest.approx(float(data["b"]) * quote.fx_to_usd)
        assert quote.bid / quote.fx_to_usd == pytest.approx(float(data["b"]))
        assert quote.quote_ccy == "USDT"
    assert not [r for r in sink.records if r.symbol == "USDT-USD"]


def test_a_clock_step_moves_the_rates_this_venue_gives_and_no_others(sink, metrics) -> None:
    """A step of the host clock seen by the Coinbase feed: the USDT rate Coinbase gives keeps
    its age on the new clock (still live), Kraken's rate is left for Kraken's feed to move."""
    offset_ms = [0]
    fx = FxRates({"USDT": 0.999, "USDC": 1.0}, max_age_ms=60_000)
    feed = Feed(coinbase.VENUE, ["BTC-USD"], sink, FeedOptions(url="ws://unused"), fx=fx,
                metrics=metrics, clock_ms=lambda: int(time.time() * 1000) + offset_ms[0])
    start_ms = feed.now_ms()
    for exchange, mid in (("coinbase", 1.0002), ("kraken", 1.0005)):
        fx.on_quote(Quote(exchange=exchange, symbol="USDT-USD", venue_symbol="USDT-USD",
                          bid=mid, bid_size=1.0, ask=mid, ask_size=1.0, quote_ccy="USD",
                          fx_to_usd=1.0, ts_ms=start_ms, recv_ts_ms=start_ms,
                          exchange_ts_ms=None))

    offset_ms[0] = 3_600_000
    stepped_ms = feed.now_ms()

    assert feed.clock_jumps == 1
    assert fx.source("USDT", stepped_ms) == "coinbase"
    assert fx.rate("USDT", stepped_ms) == pytest.approx(1.0002)
    fx.forget("coinbase")
    assert fx.source("USDT", stepped_ms) == "fallback"  # Kraken's rate is an hour old here


# --- the service end to end ------------------------------------------------------------------

@pytest.mark.integration
def test_live_mode_publishes_every_venue_to_kafka(broker, fixtures_dir, unique) -> None:
    topic = f"crypto-prices-{unique}"
    ensure_topics(broker.bootstrap_servers, [topic], partitions=1)
    counts = {}
    servers = {}
    for name, case in CASES.items():
        raws = [f.raw for f in frames_of(case, fixtures_dir)]
        quotes, trades = expected(case, raws)
        counts[name] = (len(quotes), len(trades))
        servers[name] = RecordedVenue([Session(raws)], subscribe_count=case.subscribe_count)
    for server in servers.values():
        server.__enter__()
    try:
        env = os.environ | {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "ARB_PRICES_TOPIC": topic,
            "ARB_VENUES": "coinbase,binance,kraken,okx",
            "ARB_SYMBOLS": "BTC-USD",
            "ARB_COINBASE_SYMBOLS": "BTC-USD=SKL-USD",
            "ARB_KRAKEN_SYMBOLS": "BTC-USD=XMR/USD",
            "ARB_PRODUCER_METRICS_PORT": "0",
            "ARB_QUOTE_REFRESH_MS": "60000",  # no refresh records in this count
            "ARB_USDT_USD": "1.0005",
            # top of book only: the recorded depth diffs would ask for REST snapshots
            # (tests/producer/test_feed_depth.py serves those)
            "ARB_DEPTH_NOTIONALS_USD": "none",
            "ARB_BINANCE_REST_URL": "http://127.0.0.1:9",
        } | {f"ARB_{name.upper()}_WS_URL": s.url for name, s in servers.items()}
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.producer", "live"], cwd=REPO, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            total = sum(q + t for q, t in counts.values())
            messages = consume_all(broker.bootstrap_servers, topic, total)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)

    assert proc.returncode == 0, stderr[-2000:]
    assert servers["binance"].paths == [
        "/stream?streams=btcusdt@bookTicker/btcusdt@trade/btcusdt@depth@100ms"]
    # USDT is needed (Binance, OKX): Coinbase and Kraken were asked for their USDT-USD ticker
    assert "USDT-USD" in servers["coinbase"].received[1]
    assert "USDT/USD" in servers["kraken"].received[0]
    records = [parse_price_record(m.value()) for m in messages]
    for name, (n_quotes, n_trades) in counts.items():
        mine = [r for r in records if r.exchange == name]
        assert sum(isinstance(r, Quote) for r in mine) == n_quotes, name
        assert sum(isinstance(r, Trade) for r in mine) == n_trades, name
    assert {r.fx_to_usd for r in records if r.quote_ccy == "USDT"} == {1.0005}
    assert {m.key() for m in messages} == {b"BTC-USD"}
