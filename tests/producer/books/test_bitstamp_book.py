"""Bitstamp diff book: the recorded REST snapshots and diffs against a full-book reference, the
buffer, stale snapshots, the kept-book horizon, and broken input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.exceptions import RecordError
from services.producer import bitstamp as connector
from services.producer.books import bitstamp
from services.producer.books.base import BookStatus

FILE = "bitstamp.jsonl"
PAIR = "ethusd"


@pytest.fixture
def lines(fixtures_dir: Path) -> list[tuple[str | None, Any]]:
    """(REST url or None, decoded body or frame), in receive order."""
    out = []
    with (fixtures_dir / FILE).open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            out.append((rec.get("url") if rec.get("source") == "rest" else None,
                        json.loads(rec["raw"])))
    return out


def _diff(ts_us: int, bids: list[list[str]] | None = None,
          asks: list[list[str]] | None = None) -> dict[str, Any]:
    return {"timestamp": str(ts_us // 10**6), "microtimestamp": str(ts_us),
            "bids": bids or [], "asks": asks or []}


def _snapshot(ts_us: int, n: int = 5) -> dict[str, Any]:
    """A made-up book: bids 99, 98, ...; asks 101, 102, ... (n each)."""
    return _diff(ts_us, [[f"{99 - i}.00", "1.0"] for i in range(n)],
                 [[f"{101 + i}.00", "1.0"] for i in range(n)])


def test_the_recorded_books_match_a_full_book_prefix_after_every_diff(lines):
    # Arrange: our bounded books, and the connector's unbounded DiffBook as the reference
    syncs: dict[str, bitstamp.BitstampBook] = {}
    full: dict[str, connector.DiffBook] = {}
    statuses: list[BookStatus] = []
    compared = refreshes = 0
    # Act
    for url, msg in lines:
        if url is not None:
            pair = bitstamp.pair_of_url(url)
            assert pair is not None
            statuses.append(syncs.setdefault(pair, bitstamp.new_sync(pair, 20)).on_snapshot(msg))
            full[pair] = connector.DiffBook.from_snapshot(
                int(msg["microtimestamp"]), msg["bids"], msg["asks"])
            continue
        for pair, data in bitstamp.depth_parts(msg) or ():
            status = syncs[pair].on_update(data)
            statuses.append(status)
            ts_us = int(data["microtimestamp"])
            ref = full[pair]
            if ts_us > ref.ts_us:
                ref.apply(ts_us, connector.diff_levels(data["bids"], "bids"),
                          connector.diff_levels(data["asks"], "asks"))
            if status.need == "snapshot":  # the book grew thin: answer with the venue's book
                refreshes += 1
                assert syncs[pair].on_snapshot(_body(ref)) == BookStatus(True)
            # Assert: every kept level is the venue's, in the venue's order, from the top
            book = syncs[pair].book
            n_bids, n_asks = book.depth()
            assert book.bids() == sorted(ref.bids.items(), reverse=True)[:n_bids]
            assert book.asks() == sorted(ref.asks.items())[:n_asks]
            assert n_bids >= 10 or n_bids == len(ref.bids)
            assert n_asks >= 10 or n_asks == len(ref.asks)
            compared += 1
    assert compared == sum(1 for u, m in lines if u is None and bitstamp.depth_parts(m)) > 600
    assert [s for s in statuses if s.problem is not None] == []
    assert all(s.synced for s in syncs.values())
    assert refreshes > 0  # the busy pairs thin out within the recording


def _body(ref: connector.DiffBook) -> dict[str, Any]:
    """A REST order-book body of the reference book at its time."""
    return _diff(ref.ts_us, [[repr(p), repr(s)] for p, s in sorted(ref.bids.items())[::-1]],
                 [[repr(p), repr(s)] for p, s in sorted(ref.asks.items())])


def test_diffs_before_a_snapshot_are_buffered_and_bridged():
    # Arrange
    sync = bitstamp.new_sync(PAIR, 10)
    # Act / Assert: the first diff asks for a snapshot, once
    assert sync.on_update(_diff(1_000, bids=[["99.50", "2"]])) == BookStatus(False, None,
                                                                               "snapshot")
    assert sync.on_update(_diff(3_000, asks=[["100.50", "3"]])) == BookStatus(False)
    assert sync.on_update(_diff(3_000)) == BookStatus(False, "out_of_order")
    assert sync.on_snapshot(_snapshot(2_000)) == BookStatus(True)
    # the diff at 1000 is older than the snapshot (dropped), the one at 3000 applied
    assert sync.book.best_bid() == (99.0, 1.0) and sync.book.best_ask() == (100.5, 3.0)
    assert sync.on_update(_diff(1_500, bids=[["99.9", "1"]])) == BookStatus(False)  # old
    assert sync.on_update(_diff(4_000, bids=[["99.00", "0"]])) == BookStatus(True)
    assert sync.book.best_bid() == (98.0, 1.0)
    assert sync.on_snapshot(_snapshot(5_000)) == BookStatus(False)  # a late answer


def test_a_snapshot_older_than_every_buffered_diff_is_stale():
    sync = bitstamp.new_sync(PAIR, 10)
    sync.on_update(_diff(5_000, bids=[["99.5", "2"]]))
    assert sync.on_snapshot(_snapshot(4_000)) == BookStatus(False, "stale_snapshot", "snapshot")
    assert not sync.synced
    assert sync.on_snapshot(_snapshot(6_000)) == BookStatus(True)


def test_a_snapshot_older_than_a_diff_the_full_buffer_let_go_is_stale():
    sync = bitstamp.new_sync(PAIR, 10)
    for i in range(bitstamp.MAX_BUFFERED + 5):
        sync.on_update(_diff(10_000 + i))
    # the oldest kept diff is at 10_005, but 10_000..10_004 were let go
    assert sync.on_snapshot(_snapshot(10_002)).problem == "stale_snapshot"
    assert sync.on_snapshot(_snapshot(10_004 + 1)) == BookStatus(True)


def test_a_repeated_diff_is_dropped_and_an_older_one_resyncs():
    sync = bitstamp.new_sync(PAIR, 10)
    sync.on_snapshot(_snapshot(1_000))
    assert sync.on_update(_diff(2_000, bids=[["99.5", "1"]])) == BookStatus(True)
    assert sync.on_update(_diff(2_000, bids=[["99.5", "1"]])) == BookStatus(False, "out_of_order")
    assert sync.on_update(_diff(1_500, bids=[["97.5", "1"]])) == BookStatus(
        True, "out_of_order", "snapshot")
    assert not sync.synced and sync.book.depth() == (0, 0)


def test_a_thin_book_asks_for_a_fresh_snapshot_and_bridges_it():
    # Arrange: 4 of 8 bids kept; deleting three leaves under half
    sync = bitstamp.new_sync(PAIR, 4)
    sync.on_snapshot(_snapshot(1_000, n=8))
    assert sync.on_update(_diff(2_000, bids=[["99.00", "0"], ["98.00", "0"]])) == BookStatus(
        True)
    # Act
    status = sync.on_update(_diff(3_000, bids=[["97.00", "0"]]))
    later = sync.on_update(_diff(5_000, asks=[["101.00", "7"]]))
    # Assert: it asked, kept serving, and the newer diff survives the older snapshot
    assert status == BookStatus(True, None, "snapshot") and later == BookStatus(True)
    assert sync.on_snapshot(_snapshot(2_999, n=8)) == BookStatus(False, "stale_snapshot",
                                                                   "snapshot")
    fresh = _snapshot(4_000, n=8)
    fresh["bids"] = fresh["bids"][3:]
    assert sync.on_snapshot(fresh) == BookStatus(True)
    assert sync.book.bids() == [(96.0, 1.0), (95.0, 1.0), (94.0, 1.0), (93.0, 1.0)]
    assert sync.book.best_ask() == (101.0, 7.0)
    assert sync.on_snapshot(fresh) == BookStatus(False)  # no refresh pending any more


def test_the_kept_book_never_guesses_beyond_its_horizon():
    # Arrange: 3 levels kept of a 5-level snapshot: bids 99, 98, 97 (96 and 95 beyond)
    sync = bitstamp.new_sync(PAIR, 3)
    sync.on_snapshot(_snapshot(1_000))
    # Act / Assert: a level beyond the horizon is ignored, even after a delete makes room
    sync.on_update(_diff(2_000, bids=[["99.00", "0"]]))
    sync.on_update(_diff(3_000, bids=[["95.50", "4"]]))
    assert sync.book.bids() == [(98.0, 1.0), (97.0, 1.0)]
    # a better level pushes the worst out, and the horizon moves up to it
    sync.on_update(_diff(4_000, bids=[["98.50", "2"], ["99.50", "1"]]))
    assert sync.book.bids() == [(99.5, 1.0), (98.5, 2.0), (98.0, 1.0)]
    sync.on_update(_diff(5_000, bids=[["99.50", "0"], ["97.00", "3"]]))
    assert sync.book.bids() == [(98.5, 2.0), (98.0, 1.0)]
    # updating a kept level of a full side keeps the horizon where it is
    sync.on_update(_diff(6_000, asks=[["101.00", "5"]]))
    sync.on_update(_diff(7_000, asks=[["102.00", "0"]]))
    assert sync.book.asks() == [(101.0, 5.0), (103.0, 1.0)]


@pytest.mark.parametrize("level", [
    ["nan", "1"], ["99", "-1"], ["99", "NaN"], ["x", "1"], ["99"], None, ["99", "inf"],
    [False, "1"],
])
def test_a_bad_level_rejects_the_diff_and_drops_the_book(level):
    sync = bitstamp.new_sync(PAIR, 10)
    sync.on_snapshot(_snapshot(1_000))
    status = sync.on_update(_diff(2_000, bids=[level]))
    assert status == BookStatus(True, "bad_level", "snapshot")
    assert sync.book.depth() == (0, 0) and not sync.synced


def test_a_bad_snapshot_and_a_crossing_diff_are_rejected():
    sync = bitstamp.new_sync(PAIR, 10)
    bad = _snapshot(1_000)
    bad["microtimestamp"] = "12x"
    assert sync.on_snapshot(bad) == BookStatus(False, "bad_level", "snapshot")
    sync.on_snapshot(_snapshot(1_000))
    assert sync.on_update(_diff(2_000, bids=[["101.00", "1"]])) == BookStatus(
        True, "crossed", "snapshot")


def test_urls_channels_and_frames():
    url = bitstamp.snapshot_url(PAIR)
    assert url == "https://www.bitstamp.net/api/v2/order_book/ethusd"
    assert bitstamp.pair_of_url(url) == PAIR and bitstamp.pair_of_url("https://x/") is None
    (msg,) = bitstamp.subscribe_messages([PAIR])
    assert json.loads(msg)["data"]["channel"] == "diff_order_book_ethusd"
    assert bitstamp.depth_parts({"event": "trade", "channel": "live_trades_ethusd"}) is None
    with pytest.raises(RecordError):
        bitstamp.depth_parts({"event": "data", "channel": "diff_order_book_ethusd", "data": 1})


# --- property tests ----------------------------------------------------------------------

_price = st.integers(min_value=90, max_value=110).map(lambda p: f"{p}.00")
_valid_diff_levels = st.lists(st.tuples(_price, st.sampled_from(["0", "1.5", "2", "0.1"])),
                              max_size=4)


@settings(max_examples=200, deadline=None)
@given(max_levels=st.integers(min_value=1, max_value=6),
       diffs=st.lists(st.tuples(_valid_diff_levels, _valid_diff_levels), max_size=25))
def test_valid_diffs_keep_an_exact_prefix_of_the_full_book(max_levels, diffs):
    # Arrange: a full reference book (dicts) and a bounded sync, both from one snapshot
    ref_bids = {99.0 - i: 1.0 for i in range(8)}
    ref_asks = {101.0 + i: 1.0 for i in range(8)}
    sync = bitstamp.new_sync(PAIR, max_levels)
    sync.on_snapshot(_diff(1, [[f"{p}", f"{s}"] for p, s in ref_bids.items()],
                           [[f"{p}", f"{s}"] for p, s in ref_asks.items()]))
    asked = False  # a snapshot was asked for (once: it stays asked until it comes)
    for ts, (bids, asks) in enumerate(diffs, start=2):
        # Act
        status = sync.on_update(_diff(ts, [list(lv) for lv in bids], [list(lv) for lv in asks]))
        asked = asked or status.need == "snapshot"
        for side, levels in ((ref_bids, bids), (ref_asks, asks)):
            for p, s in levels:
                if float(s):
                    side[float(p)] = float(s)
                else:
                    side.pop(float(p), None)
        if max(ref_bids, default=0) >= min(ref_asks, default=1e9):
            # crossed, or the crossing level lies beyond the cut-off: a side that ran thin asks
            # for a snapshot before anything more is read from it (maybe at an earlier diff)
            assert status.problem == "crossed" or asked, status
            return
        # Assert
        n_bids, n_asks = sync.book.depth()
        assert sync.book.bids() == sorted(ref_bids.items(), reverse=True)[:n_bids]
        assert sync.book.asks() == sorted(ref_asks.items())[:n_asks]


_text = st.one_of(st.sampled_from(["99", "101", "0", "-1", "nan", "inf", "", "x", "1.5"]),
                  st.text(max_size=5))
_value = st.one_of(_text, st.integers(), st.floats(), st.none(), st.booleans())
_level_st = st.one_of(st.lists(_text, min_size=2, max_size=3), _value,
                      st.tuples(_price, st.sampled_from(["0", "1"])).map(list))
_data = st.fixed_dictionaries(
    {"microtimestamp": st.one_of(st.integers(min_value=0, max_value=30).map(str), _value),
     "bids": st.one_of(st.lists(_level_st, max_size=3), _value),
     "asks": st.one_of(st.lists(_level_st, max_size=3), _value)},
)
_frame = st.one_of(
    st.fixed_dictionaries({
        "event": st.sampled_from(["data", "data", "trade"]),
        "channel": st.sampled_from(["diff_order_book_ethusd", "diff_order_book_", "x"]),
        "data": st.one_of(_data, _value),
    }),
    _value,
)


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(_frame, max_size=12), snapshots=st.lists(_data, max_size=3))
def test_hostile_frames_raise_only_record_error_and_never_leave_a_crossed_book(frames,
                                                                             snapshots):
    sync = bitstamp.new_sync(PAIR, 5)
    sync.on_snapshot(_snapshot(10))
    for i, frame in enumerate(frames):
        try:
            for _pair, data in bitstamp.depth_parts(frame) or ():
                sync.on_update(data)
            if i < len(snapshots):
                sync.on_snapshot(snapshots[i])
        except RecordError:
            pass
        if sync.synced:
            assert not sync.book.crossed()
