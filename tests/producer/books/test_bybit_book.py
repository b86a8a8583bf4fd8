"""Bybit orderbook: the recorded orderbook.1 spot snapshots, deltas built from real values, and
broken input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.exceptions import RecordError
from services.producer.books import bybit
from services.producer.books.base import BookStatus

FILE = "bybit_orderbook1_2025.jsonl"


@pytest.fixture
def spot(fixtures_dir: Path) -> list[dict[str, Any]]:
    """The decoded frames of the spot endpoint (the linear ones have the same topics)."""
    out = []
    with (fixtures_dir / FILE).open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["url"].endswith("/v5/public/spot"):
                out.append(json.loads(rec["raw"]))
    return out


@pytest.fixture
def kcs(spot) -> dict[str, Any]:
    """KCSUSDT's first recorded book, as a depth-50 snapshot message."""
    (_, msg), *_ = [p for f in spot for p in bybit.depth_parts(f) or () if p[0] == "KCSUSDT"]
    return {**msg, "depth": 50}


def _delta(base: dict[str, Any], u: int, b: list[list[str]] | None = None,
           a: list[list[str]] | None = None) -> dict[str, Any]:
    return {"s": base["s"], "type": "delta", "depth": base["depth"], "u": u,
            "b": b or [], "a": a or []}


def test_depth_and_topics():
    assert [bybit.book_depth(n) for n in (1, 50, 51, 200, 201, 5000)] == [
        50, 50, 200, 200, 1000, 1000]
    assert bybit.topics(["BTCUSDT"], 100) == ["orderbook.200.BTCUSDT"]
    msgs = bybit.subscribe_messages([f"S{i}USDT" for i in range(12)], 10)
    assert [len(json.loads(m)["args"]) for m in msgs] == [10, 2]


def test_every_recorded_spot_snapshot_becomes_the_book(spot):
    # Arrange
    syncs: dict[str, bybit.BybitBook] = {}
    last: dict[str, dict[str, Any]] = {}
    statuses = []
    # Act
    for frame in spot:
        for symbol, msg in bybit.depth_parts(frame) or ():
            statuses.append(syncs.setdefault(symbol, bybit.new_sync(symbol, 50)).on_update(msg))
            last[symbol] = frame["data"]
    # Assert: each book is its last recorded message, and re-pushes count as no change
    assert len(statuses) == sum(1 for f in spot if "topic" in f) > 100
    assert [s for s in statuses if s.problem is not None] == []
    for symbol, sync in syncs.items():
        data = last[symbol]
        assert sync.book.bids() == [(float(p), float(s)) for p, s in data["b"]]
        assert sync.book.asks() == [(float(p), float(s)) for p, s in data["a"]]
        assert sync.last_update_id == data["u"]
    repeats = 0
    seen: dict[str, Any] = {}
    for frame in spot:
        if "topic" in frame:
            d = frame["data"]
            key = (d["u"], json.dumps([d["b"], d["a"]]))
            repeats += seen.get(d["s"]) == key
            seen[d["s"]] = key
    assert sum(1 for s in statuses if not s.changed) == repeats > 0


def test_deltas_in_order_apply_and_a_gap_resubscribes(kcs):
    # Arrange: deltas built from KCSUSDT's recorded prices
    sync = bybit.new_sync("KCSUSDT", 50)
    sync.on_update(kcs)
    u = kcs["u"]
    bid = float(kcs["b"][0][0])
    # Act / Assert
    assert sync.on_update(_delta(kcs, u + 1, b=[["11.250", "3.5"]])) == BookStatus(True)
    assert sync.book.bids()[:2] == [(bid, float(kcs["b"][0][1])), (11.25, 3.5)]
    assert sync.on_update(_delta(kcs, u + 2, b=[[kcs["b"][0][0], "0"]])) == BookStatus(True)
    assert sync.book.best_bid() == (11.25, 3.5)
    assert sync.on_update(_delta(kcs, u + 2)) == BookStatus(False, "out_of_order")
    assert sync.on_update(_delta(kcs, u + 1)) == BookStatus(False, "out_of_order")
    assert sync.on_update(_delta(kcs, u + 4)) == BookStatus(True, "gap", "resubscribe")
    assert not sync.synced
    assert sync.on_update(_delta(kcs, u + 5)) == BookStatus(False)  # already asked
    assert sync.on_update(kcs) == BookStatus(True) and sync.synced


def test_a_snapshot_with_u_1_restarts_the_book_and_an_older_one_is_dropped(kcs):
    sync = bybit.new_sync("KCSUSDT", 50)
    sync.on_update(kcs)
    older = {**kcs, "u": kcs["u"] - 5, "b": [["11.1", "1"]]}
    assert sync.on_update(older) == BookStatus(False, "out_of_order")
    restart = {**kcs, "u": 1, "b": [["11.2", "1"]]}
    assert sync.on_update(restart) == BookStatus(True)
    assert sync.book.best_bid() == (11.2, 1.0)
    assert sync.on_update(_delta(kcs, 2, a=[["11.3", "2"]])) == BookStatus(True)


def test_the_window_is_kept_exactly(kcs):
    sync = bybit.new_sync("KCSUSDT", 50)
    bids = [[f"{11.0 - i / 1000:.3f}", "1"] for i in range(50)]
    sync.on_update({**kcs, "b": bids})
    u = kcs["u"]
    sync.on_update(_delta(kcs, u + 1, b=[["11.0005", "2"]]))  # pushes the worst out
    assert sync.book.depth()[0] == 50 and sync.book.bids()[-1][0] == 10.952
    sync.on_update(_delta(kcs, u + 2, b=[["11.000", "0"], ["10.950", "4"]]))  # moves in
    assert sync.book.bids()[-1] == (10.95, 4.0)


@pytest.mark.parametrize("level", [
    ["nan", "1"], ["11", "-1"], ["11", "NaN"], ["x", "1"], ["11"], None, ["11", "inf"],
    [True, "1"],
])
def test_a_bad_level_rejects_the_delta_and_drops_the_book(kcs, level):
    sync = bybit.new_sync("KCSUSDT", 50)
    sync.on_update(kcs)
    status = sync.on_update(_delta(kcs, kcs["u"] + 1, b=[level]))
    assert status == BookStatus(True, "bad_level", "resubscribe")
    assert sync.book.depth() == (0, 0)


def test_a_crossing_delta_and_a_crossed_snapshot_are_rejected(kcs):
    sync = bybit.new_sync("KCSUSDT", 50)
    sync.on_update(kcs)
    status = sync.on_update(_delta(kcs, kcs["u"] + 1, b=[[kcs["a"][0][0], "1"]]))
    assert status == BookStatus(True, "crossed", "resubscribe")
    assert sync.on_update({**kcs, "b": kcs["a"]}).problem == "crossed"


def test_frames_that_are_not_orderbooks():
    assert bybit.depth_parts({"topic": "publicTrade.BTCUSDT", "data": []}) is None
    assert bybit.depth_parts({"success": True, "op": "subscribe"}) is None
    with pytest.raises(RecordError):
        bybit.depth_parts({"topic": "orderbook.x.BTCUSDT", "type": "delta", "data": {}})
    with pytest.raises(RecordError):
        bybit.depth_parts({"topic": "orderbook.50.BTCUSDT", "type": "delta",
                           "data": {"s": "ETHUSDT"}})


_text = st.one_of(
    st.sampled_from(["11.25", "11.26", "11.255", "0", "-1", "nan", "inf", "", "x", "2"]),
    st.text(max_size=5),
)
_value = st.one_of(_text, st.integers(), st.floats(), st.none(), st.booleans())
_level_st = st.one_of(
    st.lists(_text, min_size=2, max_size=3),
    st.tuples(st.floats(min_value=11.2, max_value=11.3).map(lambda p: f"{p:.3f}"),
              st.sampled_from(["0", "1", "2.5"])).map(list),
    _value,
)
_data = st.fixed_dictionaries(
    {"s": st.sampled_from(["KCSUSDT", "KCSUSDT", "ETHUSDT"]),
     "b": st.one_of(st.lists(_level_st, max_size=3), _value),
     "a": st.one_of(st.lists(_level_st, max_size=3), _value),
     "u": st.one_of(st.integers(min_value=-1, max_value=12), _value)},
)
_frame = st.one_of(
    st.fixed_dictionaries({
        "topic": st.sampled_from(["orderbook.50.KCSUSDT", "orderbook.1.KCSUSDT",
                                  "orderbook.²0.KCSUSDT", "tickers.KCSUSDT"]),
        "type": st.sampled_from(["snapshot", "delta", "delta", "delta", "x"]),
        "data": st.one_of(_data, _value),
    }),
    _value,
)


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(_frame, max_size=12))
def test_hostile_frames_raise_only_record_error_and_never_leave_a_crossed_book(frames):
    sync = bybit.new_sync("KCSUSDT", 50)
    sync.on_update({"type": "snapshot", "u": 5, "b": [["11.25", "1"]], "a": [["11.26", "1"]]})
    for frame in frames:
        try:
            for _symbol, msg in bybit.depth_parts(frame) or ():
                sync.on_update(msg)
        except RecordError:
            pass
        if sync.synced:
            assert not sync.book.crossed()
        assert max(sync.book.depth()) <= sync.depth
