"""OKX books: the recorded 2022 stream (every checksum), seqId chains on real values, bad input."""

from __future__ import annotations

import copy
import json
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.exceptions import RecordError
from services.producer.books import okx
from services.producer.books.base import BookStatus

FILE = "okx.jsonl"
INST = "BTC-USDT"


@pytest.fixture
def parts(recording) -> list[tuple[str, dict[str, Any]]]:
    """Every recorded books data item (with its action), in receive order."""
    return [part for rec in recording(FILE) for part in okx.depth_parts(rec.msg) or ()]


@pytest.fixture
def btc(parts) -> list[dict[str, Any]]:
    msgs = [copy.deepcopy(m) for p, m in parts if p == INST]
    assert msgs[0]["action"] == "snapshot" and len(msgs) > 20
    return msgs


def _chained(msgs: list[dict[str, Any]], first_seq: int = 1000) -> list[dict[str, Any]]:
    """The messages with seqId/prevSeqId as OKX now sends them (steps of 3)."""
    out = []
    prev = -1
    for i, msg in enumerate(msgs):
        seq = first_seq + 3 * i
        out.append({**msg, "seqId": seq, "prevSeqId": prev})
        prev = seq
    return out


def _signed_crc(text: str) -> int:
    crc = zlib.crc32(text.encode())
    return crc - 2**32 if crc >= 2**31 else crc


def test_every_recorded_frame_passes_its_checksum(parts):
    # Arrange
    syncs: dict[str, okx.OkxBook] = {}
    # Act
    statuses = [syncs.setdefault(p, okx.new_sync(p, 100)).on_update(m) for p, m in parts]
    # Assert
    checked = sum(1 for _, m in parts if m.get("checksum"))
    assert checked == len(parts) > 250  # the 2022 capture checks every frame
    assert [s for s in statuses if s.problem is not None] == []
    assert len(syncs) == 3 and all(s.synced and not s.book.crossed() for s in syncs.values())


def test_the_checksum_matches_an_independent_computation(btc):
    sync = okx.new_sync(INST, 100)
    sync.on_update(btc[0])
    bids, asks = btc[0]["bids"][:25], btc[0]["asks"][:25]
    text = ":".join(f"{b[0]}:{b[1]}:{a[0]}:{a[1]}" for b, a in zip(bids, asks, strict=True))
    assert okx.checksum(sync.book, sync._bid_texts, sync._ask_texts) == _signed_crc(text)
    assert _signed_crc(text) == btc[0]["checksum"]


def test_a_changed_size_fails_the_checksum_unless_it_is_zero(btc):
    # Arrange: the first update with its first level's size altered
    bad = copy.deepcopy(btc[1])
    side = "bids" if bad["bids"] else "asks"
    bad[side][0][1] = bad[side][0][1] + "1"
    sync = okx.new_sync(INST, 100)
    sync.on_update(btc[0])
    # Act / Assert
    assert sync.on_update(bad) == BookStatus(True, "checksum", "resubscribe")
    assert not sync.synced
    assert sync.on_update(btc[2]) == BookStatus(False)  # asked once already
    sync.on_update(btc[0])
    assert sync.on_update({**bad, "checksum": 0}).problem is None  # 0: OKX sent no checksum


def test_a_chained_sequence_applies_and_a_gap_resubscribes(btc):
    msgs = _chained(btc[:6])
    sync = okx.new_sync(INST, 100)
    assert [sync.on_update(m).problem for m in msgs[:4]] == [None] * 4
    # the last message again
    assert sync.on_update(msgs[3]) == BookStatus(False, "out_of_order")
    # a keep-alive without change: seqId == prevSeqId == the last seqId
    seq = msgs[3]["seqId"]
    beat = {"action": "update", "asks": [], "bids": [], "seqId": seq, "prevSeqId": seq,
            "checksum": 0}
    assert sync.on_update(beat) == BookStatus(False)
    # msgs[4] is lost
    assert sync.on_update(msgs[5]) == BookStatus(True, "gap", "resubscribe")
    assert not sync.synced


def test_a_sequence_reset_still_chains(btc):
    msgs = _chained(btc[:3])
    sync = okx.new_sync(INST, 100)
    sync.on_update(msgs[0])
    sync.on_update(msgs[1])
    lower = {**msgs[2], "seqId": 7, "prevSeqId": msgs[1]["seqId"]}  # maintenance restart
    assert sync.on_update(lower).problem is None
    assert sync.on_update({**btc[3], "seqId": 9, "prevSeqId": 7}).problem is None


def test_a_book_started_with_sequence_ids_rejects_an_update_without(btc):
    msgs = _chained(btc[:2])
    sync = okx.new_sync(INST, 100)
    sync.on_update(msgs[0])
    assert sync.on_update(btc[1]).problem == "bad_level"


@pytest.mark.parametrize("level", [
    ["nan", "1", "0", "1"], ["30000", "-1", "0", "1"], ["30000", "NaN", "0", "1"],
    [30000, "1", "0", "1"], ["30000"], ["30000", "inf", "0", "1"], None,
])
def test_a_bad_level_rejects_the_update_and_drops_the_book(btc, level):
    sync = okx.new_sync(INST, 100)
    sync.on_update(btc[0])
    status = sync.on_update({"action": "update", "bids": [level], "asks": [], "checksum": 0})
    assert status == BookStatus(True, "bad_level", "resubscribe")
    assert sync.book.depth() == (0, 0)


def test_a_crossing_update_is_rejected(btc):
    sync = okx.new_sync(INST, 100)
    sync.on_update(btc[0])
    best_ask = btc[0]["asks"][0][0]
    status = sync.on_update({"action": "update", "bids": [[best_ask, "1", "0", "1"]],
                             "asks": [], "checksum": 0})
    assert status == BookStatus(True, "crossed", "resubscribe")


def test_frames_that_are_not_books_are_not_depth():
    assert okx.depth_parts({"event": "subscribe", "arg": {"channel": "books"}}) is None
    assert okx.depth_parts({"arg": {"channel": "tickers", "instId": INST}, "data": []}) is None
    with pytest.raises(RecordError):
        okx.depth_parts({"arg": {"channel": "books", "instId": INST}, "action": "x",
                         "data": []})
    (msg,) = okx.subscribe_messages([INST])
    assert json.loads(msg)["args"] == [{"channel": "books", "instId": INST}]


def test_the_book_keeps_the_whole_400_level_window():
    sync = okx.new_sync(INST, 10)
    asks = [[f"{100 + i / 100:.2f}", "1", "0", "1"] for i in range(1, 501)]
    bids = [[f"{100 - i / 100:.2f}", "1", "0", "1"] for i in range(1, 501)]
    assert sync.on_update({"action": "snapshot", "asks": asks, "bids": bids}).problem is None
    assert sync.book.depth() == (400, 400)


_text = st.one_of(
    st.sampled_from(["30000", "29999.9", "30000.1", "0", "-1", "nan", "inf", "", "x", "1.5"]),
    st.text(max_size=5),
)
_value = st.one_of(_text, st.integers(), st.floats(), st.none(), st.booleans())
_level_st = st.one_of(
    st.lists(_text, min_size=2, max_size=4),
    st.tuples(st.floats(min_value=29990, max_value=30010).map(lambda p: f"{p:.1f}"),
              st.sampled_from(["0", "0.5", "2"]), st.just("0"), st.just("1")).map(list),
    _value,
)
_item = st.fixed_dictionaries(
    {"asks": st.lists(_level_st, max_size=4), "bids": st.lists(_level_st, max_size=4)},
    optional={"checksum": st.one_of(st.integers(), _value), "seqId": _value,
              "prevSeqId": _value, "ts": _value},
)
_frame = st.one_of(
    st.fixed_dictionaries({
        "arg": st.fixed_dictionaries({"channel": st.sampled_from(["books", "tickers"]),
                                      "instId": st.sampled_from([INST, 3])}),
        "action": st.sampled_from(["snapshot", "update", "update", "bogus"]),
        "data": st.one_of(st.lists(st.one_of(_item, _value), max_size=2), _value),
    }),
    _value,
)


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(_frame, max_size=10))
def test_hostile_frames_raise_only_record_error_and_never_leave_a_crossed_book(frames):
    sync = okx.new_sync(INST, 100)
    sync.on_update({"action": "snapshot", "asks": [["30000.5", "1", "0", "1"]],
                    "bids": [["29999.5", "1", "0", "1"]]})
    for frame in frames:
        try:
            for _inst, msg in okx.depth_parts(frame) or ():
                sync.on_update(msg)
        except RecordError:
            pass
        if sync.synced:
            assert not sync.book.crossed()
