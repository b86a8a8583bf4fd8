"""Kraken v1 book: the recorded book-1000 stream (every checksum), trimming, broken input."""

from __future__ import annotations

import copy
import json
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.exceptions import RecordError
from services.producer.books import kraken
from services.producer.books.base import BookStatus

FILE = "kraken.jsonl"


@pytest.fixture
def parts(recording) -> list[tuple[str, dict[str, Any]]]:
    """Every recorded book message, merged, in receive order."""
    return [part for rec in recording(FILE) for part in kraken.depth_parts(rec.msg) or ()]


def _snapshot_and_updates(parts, pair: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    msgs = [m for p, m in parts if p == pair]
    assert "as" in msgs[0]
    return msgs[0], msgs[1:]


def _crc_from_strings(asks: list[list[str]], bids: list[list[str]]) -> int:
    """The README's checksum, computed independently from [price, volume] strings."""
    def part(level: list[str]) -> str:
        return "".join(x.replace(".", "").lstrip("0") for x in level[:2])
    return zlib.crc32("".join(part(lv) for lv in asks[:10] + bids[:10]).encode())


def _level(price: float, volume: str = "1.00000000") -> list[str]:
    return [f"{price:.5f}", volume, "1618678132.000000"]


def _small_snapshot(n: int = 10) -> dict[str, Any]:
    """A made-up book around 100: asks 100.1.., bids 99.9.. (n levels each)."""
    return {"as": [_level(100.0 + (i + 1) / 10) for i in range(n)],
            "bs": [_level(100.0 - (i + 1) / 10) for i in range(n)]}


def test_depth_is_the_smallest_subscribable_that_holds_max_levels():
    assert [kraken.book_depth(n) for n in (1, 10, 11, 100, 101, 999, 5000)] == [
        10, 10, 25, 100, 500, 1000, 1000]
    (msg,) = kraken.subscribe_messages(["XBT/USD", "ETH/USD"], 100)
    assert json.loads(msg) == {"event": "subscribe", "pair": ["XBT/USD", "ETH/USD"],
                               "subscription": {"name": "book", "depth": 100}}


def test_every_recorded_update_passes_its_checksum(parts):
    # Arrange
    syncs: dict[str, kraken.KrakenBook] = {}
    statuses: list[BookStatus] = []
    # Act
    for pair, msg in parts:
        sync = syncs.setdefault(pair, kraken.new_sync(pair, 100))
        statuses.append(sync.on_update(msg))
    # Assert
    with_checksum = sum(1 for _, m in parts if "c" in m)
    snapshots = sum(1 for _, m in parts if "as" in m)
    assert with_checksum > 2000 and snapshots == len(syncs) == 10
    assert [s for s in statuses if s.problem is not None] == []
    assert all(sync.synced and not sync.book.crossed() for sync in syncs.values())
    # the recording subscribed book-1000: each book keeps that window
    assert {sync.depth for sync in syncs.values()} == {1000}


def test_a_frame_touching_both_sides_is_merged(parts):
    both = [m for _, m in parts if "a" in m and "b" in m]
    assert both, "the recording has a two-payload frame"
    assert all(m["depth"] == 1000 and "c" in m for m in both)
    frame = [1, {"a": []}, {"a": []}, "book-10", "XBT/USD"]
    with pytest.raises(RecordError):
        kraken.depth_parts(frame)
    assert kraken.depth_parts([1, {"a": []}, "ticker", "XBT/USD"]) is None


def test_a_changed_volume_fails_the_checksum_and_asks_for_a_resubscribe(parts):
    # Arrange: the first pair's snapshot, then its first update with one volume altered
    pair = parts[0][0]
    snapshot, updates = _snapshot_and_updates(parts, pair)
    sync = kraken.new_sync(pair, 1000)
    assert sync.on_update(snapshot) == BookStatus(True)
    bad = copy.deepcopy(updates[0])
    side = "a" if "a" in bad else "b"
    bad[side][0][1] = "1" + bad[side][0][1]
    # Act
    status = sync.on_update(bad)
    # Assert
    assert status == BookStatus(True, "checksum", "resubscribe")
    assert not sync.synced and sync.book.best_bid() is None
    assert sync.on_update(updates[1]) == BookStatus(False)  # waiting, asked once
    assert sync.on_update(snapshot) == BookStatus(True) and sync.synced


def test_a_missed_update_shows_up_as_a_checksum_failure(parts):
    pair = parts[0][0]
    snapshot, updates = _snapshot_and_updates(parts, pair)
    sync = kraken.new_sync(pair, 1000)
    sync.on_update(snapshot)
    statuses = [sync.on_update(m) for m in updates[1:]]  # the first update is lost
    assert statuses[0].problem == "checksum"


def test_an_insert_into_a_full_window_drops_the_worst_level():
    # Arrange: depth 10, ten asks; a better ask comes
    sync = kraken.new_sync("XBT/USD", 10)
    snap = _small_snapshot()
    sync.on_update(snap)
    new_ask = _level(100.05, "2.50000000")
    asks = sorted(snap["as"] + [new_ask], key=lambda lv: float(lv[0]))[:10]
    crc = _crc_from_strings(asks, snap["bs"])
    # Act
    status = sync.on_update({"a": [new_ask], "c": str(crc), "depth": 10})
    # Assert
    assert status == BookStatus(True)
    assert [p for p, _ in sync.book.asks()] == [float(lv[0]) for lv in asks]
    # a level outside the window is not kept, and the checksum still holds
    far = _level(200.0)
    assert sync.on_update({"a": [far], "c": str(crc)}) == BookStatus(False)


def test_a_delete_lets_the_next_level_into_the_window():
    sync = kraken.new_sync("XBT/USD", 10)
    snap = _small_snapshot()
    sync.on_update(snap)
    nxt = _level(101.1)
    asks = [*snap["as"][1:], nxt]
    crc = _crc_from_strings(asks, snap["bs"])
    status = sync.on_update({"a": [_level(100.1, "0.00000000"), nxt], "c": str(crc)})
    assert status == BookStatus(True)
    assert sync.book.best_ask() == (100.2, 1.0) and sync.book.depth() == (10, 10)


@pytest.mark.parametrize("level", [
    ["nan", "1.0", "0"], ["100.0", "-1.0", "0"], ["100.0", "NaN", "0"], ["x", "1", "0"],
    [100.0, "1.0", "0"], ["100.0", "inf", "0"], ["0", "1.0", "0"], ["100.0"], "100.0",
])
def test_a_bad_level_rejects_the_update_and_drops_the_book(level):
    sync = kraken.new_sync("XBT/USD", 10)
    sync.on_update(_small_snapshot())
    status = sync.on_update({"b": [level]})
    assert status == BookStatus(True, "bad_level", "resubscribe")
    assert not sync.synced and sync.book.depth() == (0, 0)


def test_a_bad_snapshot_or_checksum_text_is_rejected():
    sync = kraken.new_sync("XBT/USD", 10)
    snap = _small_snapshot()
    snap["bs"][3][1] = "-2"
    assert sync.on_update(snap).problem == "bad_level" and not sync.synced
    sync.on_update(_small_snapshot())
    assert sync.on_update({"a": [], "c": "12ab"}).problem == "bad_level"


def test_an_update_that_crosses_the_book_is_rejected():
    sync = kraken.new_sync("XBT/USD", 10)
    sync.on_update(_small_snapshot())
    status = sync.on_update({"b": [_level(100.5)]})
    assert status == BookStatus(True, "crossed", "resubscribe") and not sync.synced


def test_an_update_before_any_snapshot_asks_for_a_resubscribe_once():
    sync = kraken.new_sync("XBT/USD", 10)
    assert sync.on_update({"a": [_level(100.0)]}) == BookStatus(False, "unsynced", "resubscribe")
    assert sync.on_update({"a": [_level(100.0)]}) == BookStatus(False)
    sync.reset()
    assert sync.on_update({"a": []}).need == "resubscribe"


def test_the_text_memory_stays_bounded():
    sync = kraken.new_sync("XBT/USD", 10)
    sync.on_update(_small_snapshot())
    for i in range(500):  # levels beyond the window keep coming (and are dropped)
        sync.on_update({"a": [_level(150.0 + i)]})
    assert len(sync._ask_texts) <= 2 * sync.depth + kraken._SLACK + 1
    assert sync.book.depth() == (10, 10)


_text = st.one_of(
    st.sampled_from(["100.0", "99.9", "100.1", "0", "-1", "nan", "inf", "1e400", "", "abc",
                     "0.00000000", "2.5", "100.05"]),
    st.text(max_size=6),
)
_value = st.one_of(_text, st.integers(), st.floats(allow_nan=True), st.none(), st.booleans())
_level_st = st.one_of(
    st.lists(_text, min_size=3, max_size=4),
    st.lists(_value, max_size=5),
    st.tuples(st.floats(min_value=99.0, max_value=101.0).map(lambda p: f"{p:.2f}"),
              st.sampled_from(["0.00000000", "1.5", "0.3"]),
              st.just("1.0")).map(list),
    _value,
)
_payload = st.dictionaries(
    st.sampled_from(["a", "b", "c", "as", "bs", "x"]),
    st.one_of(st.lists(_level_st, max_size=4), _value), max_size=3,
)
_frame = st.one_of(
    st.tuples(st.integers(), _payload, st.sampled_from(["book-10", "book-1000", "book-x",
                                                         "book-²", "ticker"]),
              st.sampled_from(["XBT/USD", 5])).map(list),
    st.tuples(st.integers(), _payload, _payload, st.just("book-10"),
              st.just("XBT/USD")).map(list),
    _value,
)


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(_frame, max_size=12))
def test_hostile_frames_raise_only_record_error_and_never_leave_a_crossed_book(frames):
    sync = kraken.new_sync("XBT/USD", 10)
    sync.on_update(_small_snapshot())
    for frame in frames:
        try:
            for _pair, msg in kraken.depth_parts(frame) or ():
                status = sync.on_update(msg)
                assert status.problem is None or status.problem in {
                    "bad_level", "checksum", "crossed", "unsynced"}
        except RecordError:
            pass
        if sync.synced:
            assert not sync.book.crossed()
        assert max(sync.book.depth()) <= sync.depth
