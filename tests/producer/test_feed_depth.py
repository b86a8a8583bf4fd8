"""Live feeds with books, against local servers: a WebSocket venue (``ws_venue.py``) and, for
Binance, its REST snapshot endpoint (``http_venue.py``). Frames in the venues' wire formats
(``binance.jsonl`` and ``coinbase_exchange_2021.jsonl`` hold the same shapes).

- Binance: depth diffs buffered, the REST snapshot fetched and bridged, quotes with ladders; a
  gap refetches the snapshot; a failed fetch is counted and retried.
- The issue's scenario through two feeds: top of book shows a profitable spread, the second
  level does not; the ladders give exactly the first level's price at the first size and the
  level-2 VWAP beyond.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest

from services.common.messages import Quote
from services.producer import binance, coinbase
from services.producer.feed import Feed, FeedOptions
from tests.producer.conftest import ListSink
from tests.producer.http_venue import RestVenue
from tests.producer.test_depth_processor import depth_frame, snapshot, ticker
from tests.producer.ws_venue import CountingBackoff, RecordedVenue, Session, run_until

NOTIONALS = (1000.0, 10000.0)
SNAPSHOT_PATH = "/api/v3/depth?symbol=BTCUSDT&limit=50"
BIDS = [["99.0", "20"], ["90.0", "1000"]]
ASKS = [["100.0", "20"], ["110.0", "1000"]]


def options(ws_url: str, rest_url: str = "", **kw: Any) -> FeedOptions:
    return FeedOptions(url=ws_url, rest_url=rest_url, depth_notionals_usd=NOTIONALS,
                       book_levels=50, snapshot_min_interval_s=0.0,
                       snapshot_backoff=CountingBackoff(), refresh_ms=60_000, **kw)


def binance_feed(ws_url: str, rest_url: str, sink: ListSink, metrics: Any) -> Feed:
    venue = replace(binance.VENUE, symbols={"BTC-USD": "BTCUSDT"})
    return Feed(venue, ["BTC-USD"], sink, options(ws_url, rest_url), fx=1.0, metrics=metrics)


def with_depth(sink: ListSink, exchange: str) -> list[Quote]:
    return [q for q in sink.of(Quote) if q.exchange == exchange and q.depth is not None]


def vwap(notional: float, levels: list[tuple[float, float]]) -> Any:
    """The reference walk (whole levels, the last one partly), to float rounding."""
    filled_usd = filled_qty = 0.0
    for price, size in levels:
        take_usd = min(price * size, notional - filled_usd)
        filled_usd += take_usd
        filled_qty += take_usd / price
        if filled_usd >= notional:
            return pytest.approx(notional / filled_qty, rel=1e-12)
    raise AssertionError("book too thin")


def test_binance_book_from_the_rest_snapshot_and_a_gap_refetches_it(sink, metrics) -> None:
    later_asks = [["100.0", "20"], ["120.0", "1000"]]
    frames = [
        depth_frame(101, 101, [], []), 0.3,            # buffered; the snapshot is fetched
        ticker(5, "99.0", "100.0"), 0.1,
        depth_frame(102, 102, [], [["110.0", "0"], ["105.0", "1000"]]), 0.1,
        depth_frame(110, 110, [], []), 0.05,           # 103..109 missing: a gap
        depth_frame(111, 111, [], []), 0.3,            # buffered for the second snapshot
        ticker(6, "99.0", "100.0"),
    ]
    rest_answers: list[str | int] = [snapshot(100, BIDS, ASKS), snapshot(110, BIDS, later_asks)]
    with RecordedVenue([Session(frames)]) as ws, RestVenue({SNAPSHOT_PATH: rest_answers}) as rest:
        feed = binance_feed(ws.url, rest.url, sink, metrics)

        asyncio.run(run_until(feed, lambda: len(with_depth(sink, "binance")) >= 3
                              and len(rest.requests) >= 2 and sink.of(Quote)[-1].depth is not None
                              and sink.of(Quote)[-1].depth[1].ask_px > 110.0))

    assert rest.requests == [SNAPSHOT_PATH, SNAPSHOT_PATH]
    assert metrics.value("arb_book_gaps_total", exchange="binance") == 1
    assert metrics.value("arb_book_resyncs_total", exchange="binance", reason="gap") == 1
    quotes = sink.of(Quote)
    first = next(q for q in quotes if q.depth is not None)
    assert first.depth[1].ask_px == vwap(10000.0, [(100.0, 20), (110.0, 1000)])
    # the depth diff re-published the quote with the new second level
    moved = [q for q in quotes if q.depth is not None
             and vwap(10000.0, [(100.0, 20), (105.0, 1000)]) == q.depth[1].ask_px]
    assert moved
    # after the gap the ladder comes from the second snapshot only
    assert quotes[-1].depth[1].ask_px == vwap(10000.0, [(100.0, 20), (120.0, 1000)])
    assert feed.snapshots_fetched == 2


def test_failed_snapshot_fetch_is_counted_and_retried(sink, metrics) -> None:
    frames = [depth_frame(101, 101, [], []), 0.4, ticker(5, "99.0", "100.0")]
    with (RecordedVenue([Session(frames)]) as ws,
          RestVenue({SNAPSHOT_PATH: [500, snapshot(100, BIDS, ASKS)]}) as rest):
        feed = binance_feed(ws.url, rest.url, sink, metrics)

        asyncio.run(run_until(feed, lambda: bool(with_depth(sink, "binance"))))

    assert rest.requests == [SNAPSHOT_PATH, SNAPSHOT_PATH]
    assert feed.snapshot_failures == 1
    assert metrics.value("arb_feed_errors_total", exchange="binance",
                         reason="snapshot_failed") >= 1
    assert with_depth(sink, "binance")[0].depth[0].ask_px == 100.0


def coinbase_frames(bids: list[list[str]], asks: list[list[str]]) -> list[str | float]:
    return [
        json.dumps({"type": "snapshot", "product_id": "BTC-USD", "bids": bids, "asks": asks}),
        json.dumps({"type": "ticker", "sequence": 7, "product_id": "BTC-USD",
                    "best_bid": bids[0][0], "best_bid_size": bids[0][1],
                    "best_ask": asks[0][0], "best_ask_size": asks[0][1],
                    "time": "2024-08-09T00:00:00.000000Z"}),
    ]


def test_scenario_top_of_book_profitable_second_level_not(sink, metrics) -> None:
    """Buy on Binance (asks 100 x 20, then 110), sell on Coinbase (bids 105 x 20, then 90):
    5 USD a coin at the top, a loss one level down. The first ladder size ($1000) fits in both
    first levels: exactly 100 and 105; at $10000 both walk into level 2."""
    cb_bids = [["105.0", "20"], ["90.0", "1000"]]
    cb_asks = [["106.0", "20"], ["120.0", "1000"]]
    bn_frames = [depth_frame(101, 101, [], []), 0.3, ticker(5, "99.0", "100.0")]
    with (RecordedVenue([Session(bn_frames)]) as bn_ws,
          RecordedVenue([Session(coinbase_frames(cb_bids, cb_asks))], subscribe_count=4) as cb_ws,
          RestVenue({SNAPSHOT_PATH: [snapshot(100, BIDS, ASKS)]}) as rest):
        feeds = [
            binance_feed(bn_ws.url, rest.url, sink, metrics),
            Feed(replace(coinbase.VENUE, symbols={"BTC-USD": "BTC-USD"}), ["BTC-USD"], sink,
                 options(cb_ws.url), metrics=metrics),
        ]

        asyncio.run(run_until(feeds, lambda: bool(with_depth(sink, "binance"))
                              and bool(with_depth(sink, "coinbase"))))

    assert any('"level2_batch"' in m for m in cb_ws.received)  # the public depth channel
    buy = with_depth(sink, "binance")[-1]
    sell = with_depth(sink, "coinbase")[-1]
    assert sell.bid - buy.ask == 5.0  # top of book: profitable
    assert buy.depth[0].ask_px == 100.0
    assert sell.depth[0].bid_px == 105.0
    buy_10k = buy.depth[1].ask_px
    sell_10k = sell.depth[1].bid_px
    assert buy_10k == vwap(10000.0, [(100.0, 20), (110.0, 1000)])
    assert sell_10k == vwap(10000.0, [(105.0, 20), (90.0, 1000)])
    assert sell_10k < buy_10k  # one level down the spread is gone
