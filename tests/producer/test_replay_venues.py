"""Replay of every venue (ARB_VENUES): one recording each, only the venue's live feed of a file
(Bybit spot, not linear), Bitstamp's REST snapshot as the frame that starts its book."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from services.common.exceptions import ConfigError
from services.common.messages import Quote
from services.producer import bitstamp, bybit
from services.producer.replay import (
    DEFAULT_RECORDINGS,
    VENUE_RECORDINGS,
    Recording,
    load_frames,
    plan_replay,
    recordings_for,
    venue_frames,
)
from services.producer.venues import VENUES
from tests.producer.test_bitstamp import lines, reference_quotes

START_MS = 1_900_000_000_000
SIX = ("coinbase", "binance", "kraken", "okx", "bybit", "bitstamp")
BYBIT_FILE = VENUE_RECORDINGS["bybit"].file


def quotes(plan, exchange: str) -> list[Quote]:
    return [r for r in plan.records if isinstance(r, Quote) and r.exchange == exchange
            and not r.refresh]


def test_every_venue_has_a_recording() -> None:
    assert set(VENUE_RECORDINGS) == set(VENUES)
    assert all(set(r.symbol_map.values()) == {"BTC-USD"} for r in VENUE_RECORDINGS.values())


def test_recordings_follow_arb_venues() -> None:
    six = recordings_for(SIX)
    assert [r.venue for r in six] == list(VENUE_RECORDINGS)  # table order, not the list's
    assert {r.venue: r.match_price_of for r in six} == {
        v: None if v == "binance" else "binance" for v in SIX}
    # without Binance the first venue named is the price reference
    assert {r.venue: r.match_price_of for r in recordings_for(["okx", "bybit"])} == {
        "okx": None, "bybit": "okx"}
    assert recordings_for(["coinbase", "binance"]) == DEFAULT_RECORDINGS
    assert [r.venue for r in DEFAULT_RECORDINGS] == ["binance", "coinbase"]
    with pytest.raises(ConfigError, match=r"ARB_VENUES.*mtgox"):
        recordings_for(["binance", "mtgox"])


def test_bybit_replays_the_spot_endpoint_only(fixtures_dir) -> None:
    path = fixtures_dir / BYBIT_FILE
    every = load_frames(path)
    spot = venue_frames(path, bybit.VENUE)
    assert {f.url for f in every} == {bybit.WS_URL, bybit.LINEAR_WS_URL}
    assert {f.url for f in spot} == {bybit.WS_URL}
    assert 0 < len(spot) < len(every)
    topics = {json.loads(f.raw).get("topic") for f in spot}
    assert "orderbook.1.ARBUSDC" in topics and "orderbook.1.SNTUSDT" not in topics  # linear


def test_bybit_quotes_come_from_spot_frames(fixtures_dir) -> None:
    plan = plan_replay(fixtures_dir, recordings_for(["bybit"]), start_ms=START_MS)
    spot = [json.loads(f.raw) for f in venue_frames(fixtures_dir / BYBIT_FILE, bybit.VENUE)]
    books = [m for m in spot if m.get("topic") == "orderbook.1.ARBUSDC"]
    got = [(q.bid, q.ask) for q in quotes(plan, "bybit")]
    assert got == [(float(m["data"]["b"][0][0]), float(m["data"]["a"][0][0])) for m in books]
    # a market recorded on the linear endpoint only gives nothing
    linear = replace(VENUE_RECORDINGS["bybit"], symbol_map={"SNTUSDT": "BTC-USD"})
    assert quotes(plan_replay(fixtures_dir, [linear], start_ms=START_MS), "bybit") == []


def test_bitstamp_rest_snapshots_stay_rest_lines_read_as_book_frames(fixtures_dir) -> None:
    """The replay keeps each REST snapshot as a REST line at its time; the frame processor's
    ``on_rest`` reads it as the ``order_book`` frame it matches (and as a depth snapshot)."""
    path = fixtures_dir / VENUE_RECORDINGS["bitstamp"].file
    frames = venue_frames(path, bitstamp.VENUE)
    rest = [json.loads(ln) for ln in path.read_text().splitlines() if '"source":"rest"' in ln]
    kept = [f for f in frames if f.rest]
    assert len(rest) == len(kept) == 10
    assert len(frames) == len(load_frames(path)) + len(rest)
    eth = next(f for f in kept if (f.url or "").endswith("/ethusd"))
    assert json.loads(eth.raw) == json.loads(
        next(r["raw"] for r in rest if r["url"].endswith("/ethusd")))
    frame = bitstamp.VENUE.snapshot_frame(eth.url or "", eth.raw)
    assert frame is not None
    assert json.loads(frame)["channel"] == "order_book_ethusd"


def test_bitstamp_replay_builds_the_book_as_live_does(fixtures_dir) -> None:
    """ethusd alone (its own price reference, unscaled): the quotes of the Decimal reference
    book, snapshot plus diffs."""
    plan = plan_replay(fixtures_dir, recordings_for(["bitstamp"]), start_ms=START_MS)
    want = [(bid, ask) for bid, _, ask, _ in reference_quotes(lines(fixtures_dir), "ethusd")]
    assert len(want) > 10
    assert [(q.bid, q.ask) for q in quotes(plan, "bitstamp")] == want


def test_all_six_venues_replay_with_quotes_from_each(fixtures_dir) -> None:
    plan = plan_replay(fixtures_dir, recordings_for(SIX), start_ms=START_MS)
    assert {r.exchange for r in plan.records} == set(SIX)
    assert {r.symbol for r in plan.records} == {"BTC-USD"}
    first = {v: quotes(plan, v)[0] for v in SIX}
    ref_mid = (first["binance"].bid + first["binance"].ask) / 2
    for venue, quote in first.items():  # every venue scaled onto Binance's level
        assert abs((quote.bid + quote.ask) / 2 / ref_mid - 1) < 1e-9, venue
    assert set(plan.errors) == {"unknown_symbol"}  # only the products nobody asked for


def test_a_replay_loop_starts_a_new_bitstamp_book(fixtures_dir) -> None:
    """Bitstamp's recording is shorter than Binance's, so it loops: each pass starts from its
    snapshot again (a new book), and gives the same quotes again."""
    recs = (Recording("binance.jsonl", "binance", {"BTCUSDT": "BTC-USD"}),
            VENUE_RECORDINGS["bitstamp"])
    plan = plan_replay(fixtures_dir, recs, start_ms=START_MS)
    got = [(q.bid, q.ask) for q in quotes(plan, "bitstamp")]
    one_pass = len(reference_quotes(lines(fixtures_dir), "ethusd"))
    assert len(got) > one_pass
    assert got[one_pass:2 * one_pass] == got[:len(got[one_pass:2 * one_pass])]
    assert not {"duplicate", "out_of_order", "sequence_gap"} & plan.errors.keys()
