"""Replays carry depth through the live path: every venue whose recording holds its depth
channel publishes quotes with ladders (Bybit's file holds only ``orderbook.1``, its best
bid/offer channel, so it stays at top of book), the REST snapshot lines start the Binance and
Bitstamp books, and the ladders sit on the replay's price level."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from services.common.messages import Quote, validate_quote
from services.producer.replay import Shock, plan_replay, recordings_for, venue_frames
from services.producer.venues import get_venue

NOTIONALS = (1000.0, 10000.0, 100000.0)
ALL = ("binance", "coinbase", "kraken", "okx", "bybit", "bitstamp")
WITH_DEPTH = ("binance", "coinbase", "kraken", "okx", "bitstamp")


@pytest.fixture(scope="module")
def plan(fixtures_dir: Path):
    return plan_replay(fixtures_dir, recordings_for(ALL), start_ms=1_000_000,
                       depth_notionals_usd=NOTIONALS)


def quotes(plan, exchange: str) -> list[Quote]:
    return [r for r in plan.records if isinstance(r, Quote) and r.exchange == exchange]


@pytest.mark.parametrize("exchange", WITH_DEPTH)
def test_venue_with_recorded_depth_publishes_ladders(plan, exchange: str) -> None:
    mine = quotes(plan, exchange)
    laddered = [q for q in mine if q.depth is not None]

    assert laddered, exchange
    assert len(laddered) >= len(mine) // 2  # from its first synced book on, nearly all
    for q in laddered:
        validate_quote(q)
        assert [lv.notional_usd for lv in q.depth] == list(NOTIONALS)
        first = q.depth[0]
        # a VWAP walks away from the top: the ask side only rises with size, the bid side falls
        prices = [lv.ask_px for lv in q.depth if lv.ask_px is not None]
        assert prices == sorted(prices)
        prices = [lv.bid_px for lv in q.depth if lv.bid_px is not None]
        assert prices == sorted(prices, reverse=True)
        if first.bid_px is not None and first.ask_px is not None:
            assert first.bid_px < first.ask_px


def test_bybit_recording_has_no_depth_channel(plan) -> None:
    assert quotes(plan, "bybit")
    assert all(q.depth is None for q in quotes(plan, "bybit"))


def test_rest_snapshot_lines_reach_the_books(fixtures_dir: Path) -> None:
    binance = get_venue("binance")
    frames = venue_frames(fixtures_dir / "binance.jsonl", binance)

    rest = [f for f in frames if f.rest]

    assert len(rest) == 1
    assert binance.depth is not None and binance.depth.pair_of_url is not None
    assert binance.depth.pair_of_url(rest[0].url or "") == "BTCUSDT"


def test_ladders_are_on_the_replays_price_level(plan) -> None:
    """Kraken's XMR/USD plays BTC-USD scaled to Binance's price: its ladder is scaled too, so
    its first rung lies near its own best bid/ask, not at XMR's price."""
    laddered = [q for q in quotes(plan, "kraken") if q.depth is not None
                and q.depth[0].ask_px is not None]
    q = laddered[-1]
    assert math.isclose(q.depth[0].ask_px, q.ask, rel_tol=0.01)


def test_no_sizes_configured_gives_top_of_book_only(fixtures_dir: Path) -> None:
    plan = plan_replay(fixtures_dir, recordings_for(("binance", "coinbase")), start_ms=0)

    assert all(r.depth is None for r in plan.records if isinstance(r, Quote))


def test_shock_moves_the_ladder_with_the_quote(fixtures_dir: Path) -> None:
    shock = Shock.parse("binance:BTC-USD:+150@10:2")
    base = plan_replay(fixtures_dir, recordings_for(("binance",)), start_ms=0,
                       depth_notionals_usd=NOTIONALS)
    shocked = plan_replay(fixtures_dir, recordings_for(("binance",)), start_ms=0,
                          depth_notionals_usd=NOTIONALS, shocks=[shock])

    pairs = [(a, b) for a, b in zip(base.records, shocked.records, strict=True)
             if isinstance(a, Quote) and a.depth is not None and b.bid != a.bid]
    assert pairs
    for a, b in pairs:
        assert b.depth[0].ask_px == pytest.approx(a.depth[0].ask_px + 150)
