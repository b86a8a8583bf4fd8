"""Coinbase level2 book on the recorded snapshots and l2updates, and on broken input."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from services.producer.books import coinbase
from services.producer.books.base import BookStatus

FILE = "coinbase_exchange_2021.jsonl"


@pytest.fixture
def messages(recording) -> list[dict[str, Any]]:
    """Every recorded snapshot / l2update, in receive order."""
    return [msg for rec in recording(FILE)
            for _p, msg in coinbase.depth_parts(rec.msg) or ()]


def _reference(messages: list[dict[str, Any]], product: str,
               upto: int | None = None) -> tuple[dict[float, float], dict[float, float]]:
    """Plain dicts: the product's snapshot, then its changes."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for msg in messages[:upto]:
        if msg["product_id"] != product:
            continue
        if msg["type"] == "snapshot":
            bids = {float(p): float(s) for p, s in msg["bids"] if float(s)}
            asks = {float(p): float(s) for p, s in msg["asks"] if float(s)}
            continue
        for side, p, s in msg["changes"]:
            book = bids if side == "buy" else asks
            if float(s):
                book[float(p)] = float(s)
            else:
                book.pop(float(p), None)
    return bids, asks


def _synced(messages: list[dict[str, Any]], product: str,
            max_levels: int = 100) -> coinbase.CoinbaseDepthSync:
    sync = coinbase.new_sync(product, max_levels)
    snapshot = next(m for m in messages if m["type"] == "snapshot" and m["product_id"] == product)
    assert sync.on_update(snapshot) == BookStatus(True)
    return sync


def test_recording_builds_every_product_like_the_reference(messages) -> None:
    products = sorted({m["product_id"] for m in messages})
    syncs = {p: coinbase.new_sync(p, 100_000) for p in products}
    problems = []
    changed = 0
    for msg in messages:
        status = syncs[msg["product_id"]].on_update(msg)
        changed += status.changed
        if status.problem is not None:
            problems.append(status)

    assert problems == []
    assert len(products) == 10
    # each snapshot changes its book; an l2update changes it unless it repeats a size
    assert changed >= sum(m["type"] == "snapshot" for m in messages)
    for product, sync in syncs.items():
        bids, asks = _reference(messages, product)
        assert sync.synced
        assert sync.book.bids() == sorted(bids.items(), reverse=True)
        assert sync.book.asks() == sorted(asks.items())
        assert not sync.book.crossed()


def test_bounded_book_keeps_the_best_levels_with_exact_sizes(messages) -> None:
    sync = _synced(messages, "SKL-USD", max_levels=20)
    for msg in messages:
        if msg["product_id"] == "SKL-USD" and msg["type"] == "l2update":
            sync.on_update(msg)
    bids, asks = _reference(messages, "SKL-USD")
    assert sync.book.depth()[0] <= 20 and sync.book.depth()[1] <= 20
    assert all(bids[p] == s for p, s in sync.book.bids())
    assert all(asks[p] == s for p, s in sync.book.asks())
    assert sync.book.best_bid() == max(bids.items())
    assert sync.book.best_ask() == min(asks.items())


def test_update_before_snapshot_asks_to_resubscribe_once(messages) -> None:
    update = next(m for m in messages if m["type"] == "l2update")
    sync = coinbase.new_sync(update["product_id"], 100)

    first = sync.on_update(update)
    second = sync.on_update(update)

    assert first == BookStatus(False, "unsynced", "resubscribe")
    assert second == BookStatus(False)
    assert not sync.synced and sync.book.depth() == (0, 0)


def test_crossing_update_resyncs_until_the_next_snapshot(messages) -> None:
    sync = _synced(messages, "SKL-USD")
    best_ask = sync.book.best_ask()[0]
    crossing = {"type": "l2update", "product_id": "SKL-USD",
                "changes": [["buy", str(best_ask), "10"]]}

    assert sync.on_update(crossing) == BookStatus(True, "crossed", "resubscribe")
    assert not sync.synced and sync.book.depth() == (0, 0)
    later = next(m for m in messages if m["product_id"] == "SKL-USD" and m["type"] == "l2update")
    assert sync.on_update(later) == BookStatus(False)  # waiting: asked already
    snapshot = next(m for m in messages if m["product_id"] == "SKL-USD"
                    and m["type"] == "snapshot")
    assert sync.on_update(snapshot) == BookStatus(True)
    assert sync.synced


@pytest.mark.parametrize("change", [
    ["buy", "0.79", "NaN"], ["sell", "0.80", "-1"], ["buy", "zero", "1"], ["buy", "0", "1"],
    ["bid", "0.79", "1"], ["buy", "0.79"], "buy", [None, "0.79", "1"],
])
def test_bad_change_rejects_the_whole_update_and_resyncs(messages, change: Any) -> None:
    sync = _synced(messages, "SKL-USD")
    good_price = sync.book.best_bid()[0] - 0.0001
    update = {"type": "l2update", "product_id": "SKL-USD",
              "changes": [["buy", str(good_price), "5"], change]}

    assert sync.on_update(update) == BookStatus(True, "bad_level", "resubscribe")
    assert good_price not in dict(sync.book.bids())
    assert not sync.synced


def test_bad_or_crossed_snapshot_is_refused(messages) -> None:
    snapshot = copy.deepcopy(next(m for m in messages if m["type"] == "snapshot"))
    bad = copy.deepcopy(snapshot)
    bad["asks"][3][1] = "-2"
    crossed = copy.deepcopy(snapshot)
    crossed["bids"].append([str(float(snapshot["asks"][0][0]) * 1.01), "1"])

    for broken, problem in ((bad, "bad_level"), (crossed, "crossed")):
        sync = coinbase.new_sync(snapshot["product_id"], 100)
        assert sync.on_update(broken) == BookStatus(True, problem, "resubscribe")
        assert not sync.synced and sync.book.depth() == (0, 0)
        assert sync.on_snapshot(snapshot) == BookStatus(True)  # the next good one syncs
        assert sync.synced


def test_zero_size_in_snapshot_is_skipped_and_zero_update_removes(messages) -> None:
    snapshot = copy.deepcopy(next(m for m in messages if m["type"] == "snapshot"))
    product = snapshot["product_id"]
    snapshot["bids"][0][1] = "0.0"
    sync = coinbase.new_sync(product, 100)
    sync.on_update(snapshot)
    assert float(snapshot["bids"][0][0]) not in dict(sync.book.bids())

    best = sync.book.best_ask()
    status = sync.on_update({"type": "l2update", "product_id": product,
                             "changes": [["sell", repr(best[0]), "0"]]})
    assert status == BookStatus(True)
    assert sync.book.best_ask() != best


def test_reset_then_the_new_subscription_snapshot(messages) -> None:
    sync = _synced(messages, "SKL-USD")
    sync.reset()
    assert not sync.synced and sync.book.depth() == (0, 0)
    update = next(m for m in messages if m["type"] == "l2update")
    assert sync.on_update(update).need == "resubscribe"


def test_depth_parts_and_subscription(recording, messages) -> None:
    others = [rec.msg for rec in recording(FILE) if rec.msg.get("type") not in coinbase.DEPTH_KINDS]
    assert all(coinbase.depth_parts(msg) is None for msg in others)
    assert len(messages) == 10 + 1182  # the README's snapshot and l2update counts
    assert coinbase.depth_parts({"type": "l2update", "product_id": 7}) is None
    assert coinbase.depth_parts("x") is None

    sub = json.loads(coinbase.subscribe_depth(["BTC-USD", "ETH-USD"]))
    unsub = json.loads(coinbase.unsubscribe_depth(["BTC-USD"]))

    assert sub == {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"],
                   "channels": ["level2_batch"]}
    assert unsub == {"type": "unsubscribe", "product_ids": ["BTC-USD"],
                     "channels": ["level2_batch"]}
