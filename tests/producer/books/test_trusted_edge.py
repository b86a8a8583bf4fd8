"""Bounded books never invent depth: against an unbounded model, every ladder price is the
model's or None, for the venues whose diffs cover the whole book (Binance, Coinbase, Bitstamp).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.producer.books import binance, bitstamp, coinbase
from services.producer.books.book import OrderBook
from services.producer.books.ladder import ladder

NOTIONALS_USD = (50.0, 250.0, 700.0)
FX = 1.0


def _model_vwap(levels: list[tuple[float, float]], notional_usd: float) -> float | None:
    """Straightforward reference: per level, take min(what is left, what the level holds)."""
    left = notional_usd
    qty = 0.0
    for price, size in levels:
        take = min(left, price * FX * size)
        qty += take / (price * FX)
        left -= take
        if left <= 1e-9 * notional_usd:
            return notional_usd / qty
    return None


def _text(levels: dict[float, float], reverse: bool) -> list[list[str]]:
    return [[repr(p), repr(s)] for p, s in sorted(levels.items(), reverse=reverse)]


class _Venue:
    """One venue's messages for a (model) snapshot and one change."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seq = 1

    def new_sync(self, max_levels: int) -> Any:
        module = {"binance": binance, "coinbase": coinbase, "bitstamp": bitstamp}[self.name]
        return module.new_sync("X", max_levels)

    def snapshot(self, sync: Any, bids: dict[float, float], asks: dict[float, float]) -> Any:
        b, a = _text(bids, True), _text(asks, False)
        if self.name == "binance":
            return sync.on_snapshot({"lastUpdateId": self.seq, "bids": b, "asks": a})
        if self.name == "bitstamp":
            return sync.on_snapshot({"microtimestamp": str(self.seq), "bids": b, "asks": a})
        return sync.on_update({"type": "snapshot", "product_id": "X", "bids": b, "asks": a})

    def update(self, sync: Any, is_bid: bool, price: float, size: float) -> Any:
        self.seq += 1
        level = [repr(price), repr(size)]
        if self.name == "binance":
            return sync.on_update({"e": "depthUpdate", "s": "X", "U": self.seq, "u": self.seq,
                                   "b": [level] if is_bid else [], "a": [] if is_bid else [level]})
        if self.name == "bitstamp":
            return sync.on_update({"microtimestamp": str(self.seq),
                                   "bids": [level] if is_bid else [],
                                   "asks": [] if is_bid else [level]})
        return sync.on_update({"type": "l2update", "product_id": "X",
                               "changes": [["buy" if is_bid else "sell", *level]]})


_size = st.sampled_from([0.5, 1.0, 2.0])
_change = st.tuples(st.booleans(), st.integers(min_value=80, max_value=120).map(float),
                    st.sampled_from([0.0, 0.0, 0.5, 1.0, 3.0]))


@pytest.mark.parametrize("venue", ["binance", "coinbase", "bitstamp"])
@settings(max_examples=150, deadline=None)
@given(max_levels=st.integers(min_value=1, max_value=6),
       bids=st.dictionaries(st.integers(min_value=85, max_value=99).map(float), _size,
                            max_size=12),
       asks=st.dictionaries(st.integers(min_value=101, max_value=115).map(float), _size,
                            max_size=12),
       changes=st.lists(st.tuples(_change, st.booleans()), max_size=40))
def test_every_ladder_price_is_the_unbounded_books_or_none(venue, max_levels, bids, asks,
                                                           changes) -> None:
    v = _Venue(venue)
    sync = v.new_sync(max_levels)
    v.snapshot(sync, bids, asks)
    model_bids, model_asks = dict(bids), dict(asks)
    thin_asked = 0
    for (is_bid, price, size), answer in changes:
        side = model_bids if is_bid else model_asks
        if size:
            side[price] = size
        else:
            side.pop(price, None)
        if model_bids and model_asks and max(model_bids) >= min(model_asks):
            return  # a venue's book never crosses; a crossed one is rejected elsewhere
        status = v.update(sync, is_bid, price, size)
        assert status.problem is None, status
        if status.need is not None:
            thin_asked += 1
            if answer:  # the fresh snapshot comes (at once: nothing to bridge)
                v.snapshot(sync, model_bids, model_asks)
        # Assert: the ladder of the bounded book is the model's wherever it gives a price
        assert sync.synced
        ref_bids = sorted(model_bids.items(), reverse=True)
        ref_asks = sorted(model_asks.items())
        for lv in ladder(sync.book, NOTIONALS_USD, FX):
            ref_bid = _model_vwap(ref_bids, lv.notional_usd)
            ref_ask = _model_vwap(ref_asks, lv.notional_usd)
            assert lv.bid_px is None or lv.bid_px == pytest.approx(ref_bid, rel=1e-9)
            assert lv.ask_px is None or lv.ask_px == pytest.approx(ref_ask, rel=1e-9)
        # and a side too thin for the configured depth has asked for a snapshot
        if sync.book.thin(getattr(sync, "thin_levels", (max_levels + 1) // 2)):
            assert thin_asked


def test_a_thin_side_says_none_rather_than_reaching_past_its_edge() -> None:
    # Arrange: three asks kept of a deeper book; the best two are then taken
    book = OrderBook(3, trusted_edge=True)
    book.load([(99.0, 1.0)], [(100.0, 1.0), (101.0, 1.0), (102.0, 1.0), (103.0, 5.0)])
    assert book.edges()[1] == 103.0
    book.set_ask(100.0, 0.0)
    book.set_ask(101.0, 0.0)
    # Act: a new level beyond the edge (the venue's 103 lies between, unknown to the book)
    book.set_ask(104.0, 10.0)
    levels = ladder(book, (50.0, 500.0), 1.0)
    # Assert: 50 USD fits in 102; 500 would need 103, which the book no longer knows
    assert levels[0].ask_px == 102.0
    assert levels[1].ask_px is None
    assert book.thin(2) and book.depth() == (1, 1)
