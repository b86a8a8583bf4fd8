"""Depth ladder: a hand-computed book, a thin book, fx, and the recorded Binance BTCUSDT book."""

from __future__ import annotations

import json
import math
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.exceptions import RecordError
from services.common.messages import DepthLevel, Quote, to_json
from services.producer.books import binance
from services.producer.books.book import OrderBook
from services.producer.books.ladder import ladder


def _book(bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> OrderBook:
    book = OrderBook(100)
    book.load(bids, asks)
    return book


def test_hand_computed_vwaps() -> None:
    # asks 1 @ 100, 2 @ 110; bids 1 @ 99, 3 @ 90
    book = _book([(99.0, 1.0), (90.0, 3.0)], [(100.0, 1.0), (110.0, 2.0)])

    levels = ladder(book, (50.0, 210.0, 320.0, 400.0), 1.0)

    # buy $50: half a unit at 100; $210: 1 @ 100 + 1 @ 110 -> 210 / 2;
    # $320: the whole ask side, 3 units; $400: more than the asks hold
    assert [lv.ask_px for lv in levels] == [100.0, 105.0, pytest.approx(320.0 / 3), None]
    # sell $50 at 99; $210: 1 @ 99 + 111/90 units @ 90; $320: 1 @ 99 + 221/90 @ 90
    assert levels[0].bid_px == 99.0
    assert levels[1].bid_px == pytest.approx(210.0 / (1.0 + 111.0 / 90.0))
    assert levels[2].bid_px == pytest.approx(320.0 / (1.0 + 221.0 / 90.0))
    assert levels[3].bid_px is None  # 99 + 270 = 369 < 400
    assert [lv.notional_usd for lv in levels] == [50.0, 210.0, 320.0, 400.0]


def test_fx_converts_prices_and_notionals_to_usd() -> None:
    # quoted in a currency worth 0.5 USD: asks 1 @ 200 (=100 USD), 2 @ 220 (=110 USD)
    book = _book([(198.0, 1.0)], [(200.0, 1.0), (220.0, 2.0)])

    levels = ladder(book, (210.0,), 0.5)

    assert levels[0].ask_px == pytest.approx(105.0)
    assert levels[0].bid_px is None  # 1 @ 99 USD cannot fill $210


def test_exact_fill_of_a_level_and_order_of_notionals_kept() -> None:
    book = _book([(10.0, 10.0)], [(20.0, 5.0)])

    levels = ladder(book, (100.0, 50.0), 1.0)  # given out of order on purpose

    assert levels == (DepthLevel(100.0, 10.0, 20.0), DepthLevel(50.0, 10.0, 20.0))


def test_empty_book_and_no_notionals() -> None:
    assert ladder(OrderBook(5), (1000.0,), 1.0) == (DepthLevel(1000.0, None, None),)
    assert ladder(_book([(1.0, 1.0)], [(2.0, 1.0)]), (), 1.0) == ()


@pytest.mark.parametrize("fx", [0.0, -1.0, math.nan, math.inf])
def test_bad_fx_is_rejected(fx: float) -> None:
    with pytest.raises(RecordError) as err:
        ladder(_book([(1.0, 1.0)], [(2.0, 1.0)]), (1.0,), fx)
    assert err.value.reason == "bad_fx"


def test_a_ladder_goes_on_the_wire_with_the_contract_keys() -> None:
    book = OrderBook(5)
    book.load([(99.5, 100.0)], [])
    quote = Quote(exchange="binance", symbol="BTC-USD", venue_symbol="BTCUSDT", bid=99.5,
                  bid_size=100.0, ask=100.0, ask_size=1.0, quote_ccy="USD", fx_to_usd=1.0,
                  ts_ms=1, recv_ts_ms=1, exchange_ts_ms=None, refresh=False,
                  depth=ladder(book, (1000.0,), 1.0))
    out = json.loads(to_json(quote))["depth"]
    assert out == [{"notional_usd": 1000.0, "bid_px": 99.5, "ask_px": None}]


def _reference_vwap(levels: list[tuple[float, float]], notional_usd: float,
                    fx: float) -> float | None:
    """Straightforward reference: per level, take min(what is left, what the level holds)."""
    left = notional_usd
    qty = 0.0
    for price, size in levels:
        take_usd = min(left, price * fx * size)
        qty += take_usd / (price * fx)
        left -= take_usd
        if left <= 1e-9 * notional_usd:
            return notional_usd / qty
    return None


def test_recorded_binance_book_against_a_reference(recording) -> None:
    # 1000 levels: the recording's market moves past a 100-level book's edge, which then
    # rightly knows no bids at all (see test_binance_book)
    sync = binance.new_sync("BTCUSDT", 1000)
    for rec in recording("binance.jsonl"):
        if rec.rest:
            sync.on_snapshot(rec.msg)
        else:
            for _symbol, msg in binance.depth_parts(rec.msg) or ():
                sync.on_update(msg)
    assert sync.synced
    book = sync.book
    fx = 0.9995
    notionals = (1000.0, 10000.0, 100000.0, 1000000.0, 1e9)

    levels = ladder(book, notionals, fx)

    best_bid = book.best_bid()[0] * fx
    best_ask = book.best_ask()[0] * fx
    for lv in levels:
        ref_bid = _reference_vwap(book.bids(), lv.notional_usd, fx)
        ref_ask = _reference_vwap(book.asks(), lv.notional_usd, fx)
        assert (lv.bid_px is None) == (ref_bid is None)
        assert (lv.ask_px is None) == (ref_ask is None)
        if lv.bid_px is not None:
            assert lv.bid_px == pytest.approx(ref_bid, rel=1e-12)
            assert lv.bid_px <= best_bid * (1 + 1e-12)
        if lv.ask_px is not None:
            assert lv.ask_px == pytest.approx(ref_ask, rel=1e-12)
            assert lv.ask_px >= best_ask * (1 - 1e-12)
    # a billion dollars is more than 1000 levels of BTCUSDT hold; a thousand is not
    assert levels[-1] == DepthLevel(1e9, None, None)
    assert levels[0].bid_px is not None and levels[0].ask_px is not None
    # walking deeper never gives a better price
    asks = [lv.ask_px for lv in levels if lv.ask_px is not None]
    bids = [lv.bid_px for lv in levels if lv.bid_px is not None]
    assert all(a <= b * (1 + 1e-12) for a, b in pairwise(asks))
    assert all(a >= b * (1 - 1e-12) for a, b in pairwise(bids))
    # inside the top level the price is the top level's, exactly
    assert ladder(book, (1.0,), fx)[0] == DepthLevel(1.0, best_bid, best_ask)


_op = st.tuples(st.booleans(), st.integers(min_value=90, max_value=110).map(float),
                st.sampled_from([0.0, 0.25, 1.0, 4.0]))


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(_op, max_size=60), fx=st.sampled_from([1.0, 0.9995, 1.27]))
def test_the_cached_and_resumed_ladder_is_exactly_a_fresh_one(ops, fx) -> None:
    # Arrange: one book laddered after every change (its walk cached and resumed) ...
    book = OrderBook(8)
    notionals = (30.0, 150.0, 600.0)
    for is_bid, price, size in ops:
        if is_bid:
            book.set_bid(price - 11.0, size)
        else:
            book.set_ask(price + 11.0, size)
        # Act
        levels = ladder(book, notionals, fx)
        # ... and a fresh copy of the same levels, walked from scratch
        fresh = OrderBook(8)
        fresh.load(book.bids(), book.asks())
        # Assert: the same floats, not merely close ones
        assert levels == ladder(fresh, notionals, fx)


# --- the quote's own top leads the walk ------------------------------------------------------

def test_stale_levels_better_than_the_quote_are_left_out_and_its_size_leads() -> None:
    # the book still holds asks at 99 and 100 the ticker says are gone: its best ask is 100.5
    book = _book([(98.0, 5.0), (97.0, 50.0)], [(99.0, 5.0), (100.0, 1.0), (101.0, 10.0)])

    levels = ladder(book, (50.0, 500.0), 1.0, top=(98.0, 2.0, 100.5, 3.0))

    # $50 fits in the quote's 3 @ 100.5; $500: 3 @ 100.5, then (500 - 301.5) / 101 @ 101
    assert levels[0].ask_px == 100.5
    assert levels[1].ask_px == pytest.approx(500.0 / (3.0 + (500.0 - 301.5) / 101.0))
    # the bid side: the quote's 2 @ 98 replaces the book's 5 @ 98, then 97
    assert levels[0].bid_px == 98.0
    assert levels[1].bid_px == pytest.approx(500.0 / (2.0 + (500.0 - 196.0) / 97.0))


def test_a_quote_better_than_the_book_leads_with_its_own_level() -> None:
    # a new best ask the depth stream has not delivered yet
    book = _book([(98.0, 5.0)], [(100.0, 1.0), (101.0, 10.0)])

    (level,) = ladder(book, (300.0,), 1.0, top=(98.0, 5.0, 99.5, 1.0))

    # 1 @ 99.5, 1 @ 100, then 100.5 / 101 units @ 101
    assert level.ask_px == pytest.approx(300.0 / (2.0 + 100.5 / 101.0))


def test_a_quote_without_sizes_keeps_the_book_level_at_its_price() -> None:
    book = _book([(98.0, 5.0)], [(99.0, 5.0), (100.0, 1.0), (101.0, 10.0)])

    (level,) = ladder(book, (300.0,), 1.0, top=(98.0, None, 100.0, None))

    # the stale 99 is left out; the book's own 1 @ 100 leads, then 101
    assert level.ask_px == pytest.approx(300.0 / (1.0 + 200.0 / 101.0))


def test_a_top_the_book_agrees_with_is_the_plain_walk() -> None:
    book = _book([(99.0, 1.0), (90.0, 3.0)], [(100.0, 1.0), (110.0, 2.0)])
    plain = ladder(_book(book.bids(), book.asks()), (50.0, 210.0, 400.0), 0.9995)

    agreed = ladder(book, (50.0, 210.0, 400.0), 0.9995, top=(99.0, 1.0, 100.0, 1.0))

    assert agreed == plain
    assert book.ask_side.memo is not None  # the side's cached walk served it


_price = st.integers(min_value=90, max_value=110).map(float)


@settings(max_examples=200, deadline=None)
@given(bids=st.dictionaries(_price, st.sampled_from([0.5, 1.0, 4.0]), max_size=8),
       asks=st.dictionaries(_price, st.sampled_from([0.5, 1.0, 4.0]), max_size=8),
       top_bid=_price, top_ask=_price, size=st.sampled_from([None, 0.25, 2.0]))
def test_the_ladder_with_a_top_is_the_ladder_of_the_book_the_quote_describes(
        bids, asks, top_bid, top_ask, size) -> None:
    # Arrange: a book at 11 apart (never crossed), and a quote's top anywhere in it
    book = _book([(p - 11.0, s) for p, s in bids.items()],
                 [(p + 11.0, s) for p, s in asks.items()])
    bid, ask = top_bid - 11.0, top_ask + 11.0
    notionals = (30.0, 150.0, 600.0)
    # the book the quote describes: its level first, the book's worse ones after it
    bid_levels = [(p, s) for p, s in book.bids() if p < bid or (size is None and p == bid)]
    ask_levels = [(p, s) for p, s in book.asks() if p > ask or (size is None and p == ask)]
    if size is not None:
        bid_levels.insert(0, (bid, size))
        ask_levels.insert(0, (ask, size))

    # Act
    levels = ladder(book, notionals, 1.0, top=(bid, size, ask, size))

    # Assert: the same floats as a walk of that book, and never better than the quote
    assert levels == ladder(_book(bid_levels, ask_levels), notionals, 1.0)
    assert all(lv.ask_px is None or lv.ask_px >= ask for lv in levels)
    assert all(lv.bid_px is None or lv.bid_px <= bid for lv in levels)
