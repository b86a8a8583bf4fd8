"""Binance depth sync on the recorded BTCUSDT diffs and REST snapshot, and on broken input."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from services.producer.books import binance
from services.producer.books.base import BookStatus

SYMBOL = "BTCUSDT"


@pytest.fixture
def stream(recording) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the REST snapshot, every depthUpdate payload in receive order)."""
    snapshot = None
    diffs = []
    for rec in recording("binance.jsonl"):
        if rec.rest:
            snapshot = rec.msg
        else:
            diffs += [msg for _s, msg in binance.depth_parts(rec.msg) or ()]
    assert snapshot is not None
    return snapshot, diffs


def _reference(snapshot: dict[str, Any], diffs: list[dict[str, Any]],
               upto_id: int | None = None) -> tuple[dict[float, float], dict[float, float], int]:
    """Plain dicts: the snapshot plus every diff newer than it (up to ``upto_id``)."""
    bids = {float(p): float(s) for p, s in snapshot["bids"] if float(s)}
    asks = {float(p): float(s) for p, s in snapshot["asks"] if float(s)}
    last = snapshot["lastUpdateId"]
    for d in diffs:
        if d["u"] <= last:
            continue
        if upto_id is not None and d["u"] > upto_id:
            break
        for side, key in ((bids, "b"), (asks, "a")):
            for p, s in d[key]:
                if float(s):
                    side[float(p)] = float(s)
                else:
                    side.pop(float(p), None)
        last = d["u"]
    return bids, asks, last


def _as_snapshot(bids: dict[float, float], asks: dict[float, float], last: int) -> dict[str, Any]:
    return {"lastUpdateId": last, "bids": [[str(p), str(s)] for p, s in bids.items()],
            "asks": [[str(p), str(s)] for p, s in asks.items()]}


def _synced(snapshot: dict[str, Any], diffs: list[dict[str, Any]],
            max_levels: int = 100) -> binance.BinanceDepthSync:
    """A sync given every diff up to the snapshot's arrival (the 8th line), then the snapshot."""
    sync = binance.new_sync(SYMBOL, max_levels)
    for d in diffs:
        if d["U"] > snapshot["lastUpdateId"]:
            break
        sync.on_update(d)
    sync.on_snapshot(snapshot)
    return sync


def test_recording_syncs_once_and_matches_the_reference(stream) -> None:
    snapshot, diffs = stream
    sync = binance.new_sync(SYMBOL, 10_000)  # deep enough to keep every level
    statuses = []
    snap_at = next(i for i, d in enumerate(diffs) if d["U"] > snapshot["lastUpdateId"])
    for i, d in enumerate(diffs):
        if i == snap_at:
            statuses.append(sync.on_snapshot(snapshot))
        statuses.append(sync.on_update(d))

    problems = [s for s in statuses if s.problem is not None]
    needs = [s.need for s in statuses if s.need is not None]
    assert problems == []
    assert needs == ["snapshot"]  # asked once, by the first buffered diff
    assert sync.synced
    bids, asks, last = _reference(snapshot, diffs)
    assert sync.last_update_id == last == diffs[-1]["u"]
    # the 1000-level snapshot was cut there: levels the diffs add beyond its last one may sit
    # behind levels never sent, so the book keeps exactly the reference up to that edge
    bid_edge, ask_edge = sync.book.edges()
    assert bid_edge == math.nextafter(min(float(p) for p, _ in snapshot["bids"]), -math.inf)
    assert sync.book.bids() == [lv for lv in sorted(bids.items(), reverse=True)
                                if lv[0] > bid_edge]
    assert sync.book.asks() == [lv for lv in sorted(asks.items()) if lv[0] < ask_edge]
    assert len(sync.book.bids()) > 900 and len(sync.book.asks()) > 900


def test_recorded_snapshot_is_bridged_by_a_buffered_diff(stream) -> None:
    snapshot, diffs = stream
    bridge = [d for d in diffs if d["U"] <= snapshot["lastUpdateId"] + 1 <= d["u"]]
    assert len(bridge) == 1  # the README's U 50093239208, u 50093239224

    sync = _synced(snapshot, diffs)

    assert sync.last_update_id == bridge[0]["u"]


def test_bounded_book_keeps_an_exact_prefix_and_asks_for_a_snapshot_when_thin(stream) -> None:
    snapshot, diffs = stream
    sync = _synced(snapshot, diffs, max_levels=100)
    statuses = [sync.on_update(d) for d in diffs]
    bids, asks, _ = _reference(snapshot, diffs)

    # every kept level is the venue's, and nothing better than the edge is missing
    _assert_exact_prefix(sync.book, bids, asks)
    assert not sync.book.crossed()
    # the market moved past the kept 100 levels on a side: it asked for a fresh snapshot,
    # once, and kept serving meanwhile
    assert min(sync.book.depth()) < sync.thin_levels
    assert [s.need for s in statuses if s.need] == ["snapshot"]
    assert all(s.problem in (None, "out_of_order") for s in statuses) and sync.synced


def test_duplicated_and_old_updates_are_dropped(stream) -> None:
    snapshot, diffs = stream
    sync = _synced(snapshot, diffs)
    applied = [d for d in diffs if d["U"] > snapshot["lastUpdateId"]][:5]
    for d in applied:
        sync.on_update(d)
    before = (sync.book.bids(), sync.book.asks(), sync.last_update_id)

    again = sync.on_update(applied[-1])
    older = sync.on_update(applied[1])

    assert again == older == BookStatus(False, "out_of_order", None)
    assert (sync.book.bids(), sync.book.asks(), sync.last_update_id) == before
    assert sync.synced


def test_missing_update_is_a_gap_then_a_new_snapshot_resyncs(stream) -> None:
    snapshot, diffs = stream
    sync = _synced(snapshot, diffs)
    later = [d for d in diffs if d["U"] > snapshot["lastUpdateId"]]
    for d in later[:10]:
        assert sync.on_update(d).problem is None

    status = sync.on_update(later[11])  # later[10] lost

    assert status == BookStatus(True, "gap", "snapshot")
    assert not sync.synced
    assert sync.book.depth() == (0, 0)
    # the diffs that follow are buffered without asking again
    assert all(sync.on_update(d) == BookStatus(False) for d in later[12:20])
    # a snapshot taken at later[14] bridges into the buffer and the book is right again
    bids, asks, last = _reference(snapshot, diffs, upto_id=later[14]["u"])
    assert sync.on_snapshot(_as_snapshot(bids, asks, last)) == BookStatus(True)
    for d in later[20:]:
        assert sync.on_update(d).problem is None
    ref_bids, ref_asks, _ = _reference(snapshot, diffs)
    # 100 levels kept: exactly the venue's best levels down to the edge (where the market
    # moved past what the book knows, a side thins out and asks for a snapshot instead)
    _assert_exact_prefix(sync.book, ref_bids, ref_asks)
    assert sync.book.depth() != (0, 0)


def _assert_exact_prefix(book: Any, bids: dict[float, float], asks: dict[float, float]) -> None:
    """The kept levels are the reference's, all of them better than the book's edges."""
    bid_edge, ask_edge = book.edges()
    assert book.bids() == [lv for lv in sorted(bids.items(), reverse=True) if lv[0] > bid_edge]
    assert book.asks() == [lv for lv in sorted(asks.items()) if lv[0] < ask_edge]


def test_snapshot_older_than_the_buffer_is_stale(stream) -> None:
    snapshot, diffs = stream
    later = [d for d in diffs if d["U"] > snapshot["lastUpdateId"] + 1]
    sync = binance.new_sync(SYMBOL, 100)
    for d in later[:30]:  # the buffer starts well after the snapshot
        sync.on_update(d)

    status = sync.on_snapshot(snapshot)

    assert status == BookStatus(False, "stale_snapshot", "snapshot")
    assert not sync.synced and sync.book.depth() == (0, 0)
    # the buffer was kept: a fresh enough snapshot syncs from it
    bids, asks, last = _reference(snapshot, diffs, upto_id=later[5]["u"])
    assert sync.on_snapshot(_as_snapshot(bids, asks, last)) == BookStatus(True)
    assert sync.last_update_id == later[29]["u"]


def test_zero_size_levels_in_a_snapshot_are_skipped(stream) -> None:
    snapshot, _diffs = stream
    snap = copy.deepcopy(snapshot)
    snap["bids"][0][1] = "0.00000000"
    sync = binance.new_sync(SYMBOL, 100)  # nothing buffered: the snapshot alone

    assert sync.on_snapshot(snap) == BookStatus(True)
    assert sync.book.best_bid() == (float(snap["bids"][1][0]), float(snap["bids"][1][1]))


@pytest.mark.parametrize("size", ["NaN", "-0.5", "abc", "inf", None, True])
def test_bad_level_rejects_the_whole_diff_and_resyncs(stream, size: Any) -> None:
    snapshot, diffs = stream
    sync = _synced(snapshot, diffs)
    bad = copy.deepcopy(next(d for d in diffs if d["u"] > sync.last_update_id))
    first_price = float(bad["b"][0][0]) if bad["b"] else None
    bad["a"][-1][1] = size  # the last level bad: nothing before it may be applied

    status = sync.on_update(bad)

    assert status == BookStatus(True, "bad_level", "snapshot")
    assert not sync.synced and sync.book.depth() == (0, 0)
    assert first_price is None or first_price not in dict(sync.book.bids())


@pytest.mark.parametrize("price", ["0", "-1", "nan", "", 1e400])
def test_bad_price_before_sync_restarts_the_buffer(stream, price: Any) -> None:
    snapshot, diffs = stream
    sync = binance.new_sync(SYMBOL, 10_000)
    sync.on_update(diffs[0])
    bad = copy.deepcopy(diffs[1])
    bad["b"] = [[price, "1.0"]]

    assert sync.on_update(bad) == BookStatus(False, "bad_level", None)  # a snapshot is due
    # the rest of the stream then syncs as usual, and the bad level is nowhere
    snap_at = next(i for i, d in enumerate(diffs) if d["U"] > snapshot["lastUpdateId"])
    for d in diffs[2:snap_at]:
        sync.on_update(d)
    assert sync.on_snapshot(snapshot) == BookStatus(True)
    for d in diffs[snap_at:]:
        assert sync.on_update(d).problem is None
    bids, asks, _ = _reference(snapshot, diffs)
    _assert_exact_prefix(sync.book, bids, asks)
    assert len(sync.book.bids()) > 900 and len(sync.book.asks()) > 900


@pytest.mark.parametrize("field", ["U", "u"])
def test_missing_update_id_is_rejected(stream, field: str) -> None:
    snapshot, diffs = stream
    sync = _synced(snapshot, diffs)
    bad = dict(next(d for d in diffs if d["u"] > sync.last_update_id))
    del bad[field]
    assert sync.on_update(bad) == BookStatus(True, "bad_level", "snapshot")


def test_crossing_update_resyncs(stream) -> None:
    snapshot, diffs = stream
    sync = _synced(snapshot, diffs)
    nxt = dict(next(d for d in diffs if d["u"] > sync.last_update_id))
    best_ask = sync.book.best_ask()[0]
    nxt["b"] = [*nxt["b"], [str(best_ask + 1.0), "1.0"]]

    assert sync.on_update(nxt) == BookStatus(True, "crossed", "snapshot")
    assert not sync.synced and sync.book.depth() == (0, 0)


def test_crossed_snapshot_is_refused(stream) -> None:
    snapshot, diffs = stream
    snap = copy.deepcopy(snapshot)
    snap["bids"].append([str(float(snap["asks"][0][0]) + 5), "1.0"])
    sync = _synced(snap, diffs)
    assert not sync.synced and sync.book.depth() == (0, 0)


def test_bad_snapshot_is_rejected_and_asked_again() -> None:
    sync = binance.new_sync(SYMBOL, 100)
    status = sync.on_snapshot({"lastUpdateId": 5, "bids": [["1", "x"]], "asks": []})
    assert status == BookStatus(False, "bad_level", "snapshot")
    assert sync.on_snapshot({"bids": [], "asks": []}).problem == "bad_level"


def test_late_snapshot_after_sync_is_ignored(stream) -> None:
    snapshot, diffs = stream
    sync = _synced(snapshot, diffs)
    depth = sync.book.depth()
    assert sync.on_snapshot({"lastUpdateId": 1, "bids": [], "asks": []}) == BookStatus(False)
    assert sync.book.depth() == depth


def test_reset_empties_and_asks_again(stream) -> None:
    snapshot, diffs = stream
    sync = _synced(snapshot, diffs)
    sync.reset()
    assert not sync.synced and sync.book.depth() == (0, 0)
    assert sync.on_update(diffs[-1]) == BookStatus(False, None, "snapshot")


def test_depth_parts_tells_depth_frames_from_others(recording) -> None:
    kinds = {"depth": 0, "other": 0}
    for rec in recording("binance.jsonl"):
        if rec.rest:
            continue
        parts = binance.depth_parts(rec.msg)
        is_depth = rec.msg["stream"].endswith("@depth@100ms")
        kinds["depth" if is_depth else "other"] += 1
        if is_depth:
            assert parts == [(SYMBOL, rec.msg["data"])]
        else:
            assert parts is None
    assert kinds["depth"] == 449 and kinds["other"] > 0
    assert binance.depth_parts([1, 2]) is None
    assert binance.depth_parts({"e": "depthUpdate", "s": 5}) is None


def test_snapshot_url() -> None:
    assert binance.snapshot_url("BTCUSDT") == (
        "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000")
    with pytest.raises(ValueError, match="limit"):
        binance.snapshot_url("BTCUSDT", 7)
    assert binance.pair_of_url(binance.snapshot_url("ETHUSDT", 100)) == "ETHUSDT"
    assert binance.pair_of_url("https://api.binance.com/api/v3/ticker?symbol=X") is None
    assert binance.pair_of_url("https://api.binance.com/api/v3/depth?limit=5") is None

