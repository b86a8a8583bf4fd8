"""OrderBook: order, bounds, removal, snapshots; a dict model under random operations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.exceptions import RecordError
from services.producer.books.base import read_level, read_levels
from services.producer.books.book import OrderBook


def test_levels_come_best_first_on_both_sides() -> None:
    book = OrderBook(10)
    for price in (100.0, 102.0, 101.0):
        book.set_bid(price, 1.0)
    for price in (105.0, 103.0, 104.0):
        book.set_ask(price, 2.0)

    assert book.bids() == [(102.0, 1.0), (101.0, 1.0), (100.0, 1.0)]
    assert book.asks() == [(103.0, 2.0), (104.0, 2.0), (105.0, 2.0)]
    assert book.best_bid() == (102.0, 1.0)
    assert book.best_ask() == (103.0, 2.0)
    assert book.bids(2) == [(102.0, 1.0), (101.0, 1.0)]
    assert book.depth() == (3, 3)
    assert not book.crossed()


def test_zero_removes_and_reports_change() -> None:
    book = OrderBook(10)
    assert book.set_bid(100.0, 1.0)
    assert not book.set_bid(100.0, 1.0)  # same size: nothing changed
    assert book.set_bid(100.0, 0.5)
    assert book.set_bid(100.0, 0.0)
    assert not book.set_bid(100.0, 0.0)  # removing an absent level
    assert book.best_bid() is None
    assert book.depth() == (0, 0)


def test_full_side_drops_the_worst_and_ignores_worse_levels() -> None:
    book = OrderBook(2)
    book.set_bid(100.0, 1.0)
    book.set_bid(99.0, 1.0)
    assert not book.set_bid(98.0, 1.0)  # worse than the worst of a full side
    assert book.set_bid(101.0, 1.0)     # better: 99 goes
    book.set_ask(110.0, 1.0)
    book.set_ask(111.0, 1.0)
    assert book.set_ask(109.0, 1.0)     # 111 goes

    assert book.bids() == [(101.0, 1.0), (100.0, 1.0)]
    assert book.asks() == [(109.0, 1.0), (110.0, 1.0)]


def test_load_replaces_skips_zeros_and_keeps_the_best() -> None:
    book = OrderBook(2)
    book.set_bid(50.0, 9.0)
    book.load([(100.0, 1.0), (99.0, 0.0), (98.0, 2.0), (97.0, 3.0)],
              [(102.0, 1.0), (101.0, 0.0), (103.0, 2.0), (104.0, 3.0)])

    assert book.bids() == [(100.0, 1.0), (98.0, 2.0)]
    assert book.asks() == [(102.0, 1.0), (103.0, 2.0)]


def test_load_takes_the_last_size_of_a_repeated_price() -> None:
    book = OrderBook(5)
    book.load([(100.0, 1.0), (100.0, 0.0), (99.0, 2.0), (99.0, 3.0)], [])
    assert book.bids() == [(99.0, 3.0)]


def test_crossed_and_clear() -> None:
    book = OrderBook(5)
    book.set_bid(101.0, 1.0)
    book.set_ask(101.0, 1.0)
    assert book.crossed()
    book.clear()
    assert book.depth() == (0, 0)
    assert not book.crossed()


def test_max_levels_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_levels"):
        OrderBook(0)


def test_read_level_is_strict() -> None:
    assert read_level(["1.5", "0"]) == (1.5, 0.0)
    assert read_level([2, 3.5, "extra"]) == (2.0, 3.5)
    assert read_levels(None) == []
    bad_levels = (["nan", "1"], ["1", str(math.nan)], ["1", "-1"], ["0", "1"], ["1", "inf"],
                  ["1"], "12", [None, "1"], [True, "1"], ["1", 10**400], {"0": 1, "1": 2})
    for bad in bad_levels:
        with pytest.raises(RecordError) as err:
            read_level(bad)
        assert err.value.reason == "bad_level"
    with pytest.raises(RecordError):
        read_levels([["1", "1"], ["x", "1"]])
    with pytest.raises(RecordError):
        read_levels("1,1")


# ---- model test ---------------------------------------------------------------------------

_prices = st.integers(min_value=1, max_value=60).map(lambda i: i / 4)
_sizes = st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.5])
_ops = st.lists(st.tuples(st.booleans(), _prices, _sizes), max_size=200)


def _model_set(model: dict[float, float], price: float, size: float, max_levels: int,
               bid: bool) -> None:
    """The plain reference: apply, then cut the side to its best ``max_levels``."""
    if size == 0.0:
        model.pop(price, None)
    else:
        model[price] = size
    best = sorted(model, reverse=bid)[:max_levels]
    for p in list(model):
        if p not in best:
            del model[p]


@settings(max_examples=300, deadline=None)
@given(max_levels=st.integers(min_value=1, max_value=8), ops=_ops,
       snapshot=st.lists(st.tuples(_prices, _sizes), max_size=30))
def test_random_operations_match_a_dict_model(
        max_levels: int, ops: list[tuple[bool, float, float]],
        snapshot: list[tuple[float, float]]) -> None:
    # a consistent snapshot: bids at or below 7.5, asks above it
    bids = [(p, s) for p, s in snapshot if p <= 7.5]
    asks = [(p, s) for p, s in snapshot if p > 7.5]
    book = OrderBook(max_levels)
    book.load(bids, asks)
    model_bids: dict[float, float] = {}
    model_asks: dict[float, float] = {}
    for p, s in dict(bids).items():
        if s:
            _model_set(model_bids, p, s, max_levels, True)
    for p, s in dict(asks).items():
        if s:
            _model_set(model_asks, p, s, max_levels, False)
    assert not book.crossed()

    for is_bid, price, size in ops:
        if is_bid:
            book.set_bid(price, size)
            _model_set(model_bids, price, size, max_levels, True)
        else:
            book.set_ask(price, size)
            _model_set(model_asks, price, size, max_levels, False)
        assert book.bids() == sorted(model_bids.items(), reverse=True)
        assert book.asks() == sorted(model_asks.items())
        assert book.depth() == (len(model_bids), len(model_asks))
        assert book.crossed() == bool(model_bids and model_asks
                                      and max(model_bids) >= min(model_asks))
