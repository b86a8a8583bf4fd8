"""Bitstamp connector: recorded frames field by field, the whole recording, bad input."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.common.exceptions import RecordError
from services.common.messages import Quote, Trade
from services.producer import bitstamp
from services.producer.venues import VENUES

FILE = "bitstamp.jsonl"
PAIRS = {"ethusd": "ETH-USD", "usdtusd": "USDT-USD"}


def lines(fixtures_dir: Path) -> list[dict[str, Any]]:
    """Every line of the recording in receive order, REST snapshots as order_book frames."""
    out = []
    for text in (fixtures_dir / FILE).read_text().splitlines():
        rec = json.loads(text)
        if rec.get("source") == "rest":
            rec["raw"] = bitstamp.snapshot_frame(rec["url"], rec["raw"])
        out.append(rec)
    return sorted(out, key=lambda r: r["recv_ts_ns"])


_Book = tuple[dict[Decimal, Decimal], dict[Decimal, Decimal], int]


def reference_books(recs: list[dict[str, Any]], pair: str) -> Iterator[_Book]:
    """The Decimal book (bids, asks, µs) built here, after every frame that changed it."""
    bids: dict[Decimal, Decimal] = {}
    asks: dict[Decimal, Decimal] = {}
    book_us = None
    for rec in recs:
        msg = json.loads(rec["raw"])
        channel, data = msg.get("channel", ""), msg.get("data", {})
        if msg.get("event") != "data":
            continue
        if channel == f"order_book_{pair}":
            bids = {Decimal(p): Decimal(q) for p, q in data["bids"]}
            asks = {Decimal(p): Decimal(q) for p, q in data["asks"]}
            book_us = int(data["microtimestamp"])
        elif channel == f"diff_order_book_{pair}" and book_us is not None:
            if int(data["microtimestamp"]) <= book_us:
                continue
            book_us = int(data["microtimestamp"])
            for side, levels in ((bids, data["bids"]), (asks, data["asks"])):
                for p, q in levels:
                    if Decimal(q) == 0:
                        side.pop(Decimal(p), None)
                    else:
                        side[Decimal(p)] = Decimal(q)
        else:
            continue
        yield bids, asks, book_us


def reference_quotes(recs: list[dict[str, Any]], pair: str) -> list[tuple]:
    """Best bid/ask after each frame, from a Decimal book built here, whenever it changes."""
    out: list[tuple] = []
    last = None
    for bids, asks, _ in reference_books(recs, pair):
        best_bid, best_ask = max(bids), min(asks)
        top = (float(best_bid), float(bids[best_bid]), float(best_ask), float(asks[best_ask]))
        if top != last:
            out.append(top)
            last = top
    return out


def diff(pair: str = "ethusd", ts_us: int = 1641343702384349, bids=(), asks=()) -> str:
    return json.dumps({"data": {"timestamp": str(ts_us // 10**6), "microtimestamp": str(ts_us),
                                "bids": [list(level) for level in bids],
                                "asks": [list(level) for level in asks]},
                       "channel": f"diff_order_book_{pair}", "event": "data"})


def book(pair: str = "ethusd", ts_us: int = 1641343700000000,
         bids=(("3802.90", "0.6"), ("3802.00", "1.0")),
         asks=(("3805.47", "8.2"), ("3806.00", "2.0"))) -> str:
    return json.dumps({"data": {"timestamp": str(ts_us // 10**6), "microtimestamp": str(ts_us),
                                "bids": [list(level) for level in bids],
                                "asks": [list(level) for level in asks]},
                       "channel": f"order_book_{pair}", "event": "data"})


@pytest.fixture
def recs(fixtures_dir: Path) -> list[dict[str, Any]]:
    return lines(fixtures_dir)


@pytest.fixture
def parse() -> bitstamp.BookParser:
    return bitstamp.BookParser()


def test_venue_is_data() -> None:
    venue = bitstamp.VENUE
    assert VENUES["bitstamp"] is venue
    assert venue.name == "bitstamp" and venue.ws_url == "wss://ws.bitstamp.net"
    assert venue.symbols == {"BTC-USD": "btcusd", "ETH-USD": "ethusd"}
    assert venue.quote_ccy == "USD" and venue.market_quote_ccy("btcusdt") == "USDT"
    assert venue.market_quote_ccy("usdtusd") == "USD" and venue.market_quote_ccy("ethbtc") == "BTC"
    assert venue.fx_symbols == {"USDT-USD": "usdtusd", "USDC-USD": "usdcusd"}
    venue.check_markets(["btcusd", "ethusd", "btcusdt"])


def test_subscribe_is_one_message_per_channel_as_recorded() -> None:
    sent = [json.loads(m) for m in bitstamp.subscribe_messages(["btcusd", "ethusd"], ["usdtusd"])]

    assert sent == [{"event": "bts:subscribe", "data": {"channel": ch}} for ch in (
        "order_book_btcusd", "order_book_ethusd", "live_trades_btcusd", "live_trades_ethusd",
        "order_book_usdtusd")]
    assert bitstamp.connect_url("ws://127.0.0.1:1", ["btcusd"]) == "ws://127.0.0.1:1"


def test_recorded_trade_field_by_field(recs, parse) -> None:
    # Arrange: the first recorded ETH/USD trade
    rec = next(r for r in recs if '"event":"trade"' in r["raw"])
    data = json.loads(rec["raw"])["data"]
    recv_ts_ms = rec["recv_ts_ns"] // 1_000_000

    # Act
    parsed = parse(rec["raw"], recv_ts_ms)

    # Assert
    [trade] = parsed.records
    assert parsed.kind == "live_trades" and parsed.seqs == [None]
    assert isinstance(trade, Trade)
    assert trade.exchange == "bitstamp" and trade.symbol == "ETH-USD"
    assert trade.venue_symbol == "ethusd"
    assert trade.price == float(data["price_str"]) == 3805.44
    assert trade.size == float(data["amount_str"]) == 0.0792
    assert trade.side == "buy" and data["type"] == 0
    assert trade.trade_id == str(data["id"]) == "216000477"
    assert trade.exchange_ts_ms == int(data["microtimestamp"]) // 1000 == 1641343699596
    assert trade.quote_ccy == "USD" and trade.fx_to_usd == 1.0
    assert trade.ts_ms == trade.recv_ts_ms == recv_ts_ms


def test_rest_snapshot_then_diffs_give_the_best_quote(recs, parse) -> None:
    # Arrange: the ETH/USD REST snapshot and the first diff after it that moves the top
    snapshot = next(r for r in recs if '"channel":"order_book_ethusd"' in r["raw"])
    data = json.loads(snapshot["raw"])["data"]

    # Act
    parsed = parse(snapshot["raw"], snapshot["recv_ts_ns"] // 1_000_000)

    # Assert: the snapshot's first levels, at its microtimestamp
    [quote] = parsed.records
    assert isinstance(quote, Quote) and parsed.kind == "order_book"
    assert (quote.bid, quote.bid_size) == (3802.90, 0.6) == tuple(map(float, data["bids"][0]))
    assert (quote.ask, quote.ask_size) == (3805.47, 8.26964788) == tuple(
        map(float, data["asks"][0]))
    assert quote.exchange_ts_ms == int(data["microtimestamp"]) // 1000
    assert parsed.seqs == [(int(data["microtimestamp"]),) * 2]
    assert parse.book("ethusd") is None  # started on the first diff, not before


def test_whole_recording_every_frame_handled(recs, parse) -> None:
    # Act
    kinds: Counter[str] = Counter()
    quotes: dict[str, list[tuple]] = {p: [] for p in PAIRS}
    trades = []
    for rec in recs:
        parsed = parse(rec["raw"], rec["recv_ts_ns"] // 1_000_000, symbol_map=_EVERY_PAIR)
        kinds[parsed.kind] += 1
        for r in parsed.records:
            if isinstance(r, Quote) and r.venue_symbol in quotes:
                quotes[r.venue_symbol].append((r.bid, r.bid_size, r.ask, r.ask_size))
            elif isinstance(r, Trade):
                trades.append(r)

    # Assert: counts computed from the raw lines; quotes equal a Decimal reference book
    raw_kinds = Counter()
    for rec in recs:
        msg = json.loads(rec["raw"])
        raw_kinds[msg["event"] if msg["event"].startswith("bts:") else
                  msg["channel"].rsplit("_", 1)[0]] += 1
    assert kinds == {"order_book": raw_kinds["order_book"],
                     "diff_order_book": raw_kinds["diff_order_book"],
                     "live_trades": raw_kinds["live_trades"],
                     "bts:subscription_succeeded": raw_kinds["bts:subscription_succeeded"]}
    assert sum(kinds.values()) == len(recs) == 757
    for pair in PAIRS:
        assert quotes[pair] == reference_quotes(recs, pair)
        assert len(quotes[pair]) > 10
    assert len(trades) == raw_kinds["live_trades"] == 10
    ids = [int(t.trade_id) for t in trades]
    assert ids == sorted(ids)


_EVERY_PAIR = {p: p.upper() for p in (
    "sgbeur", "ethusd", "xrpeur", "bateur", "usdteur", "usdtusd", "xlmgbp", "adaeur", "batbtc",
    "galaeur")} | PAIRS


def test_diffs_older_than_the_snapshot_are_dropped(parse) -> None:
    parse(book(ts_us=2_000_000), 1)

    stale = parse(diff(ts_us=1_999_999, bids=[("3803.00", "1")]), 2)
    fresh = parse(diff(ts_us=2_000_001, bids=[("3803.00", "1")]), 3)

    assert stale.kind == "diff_order_book" and stale.records == []
    [quote] = fresh.records
    assert quote.bid == 3803.0 and quote.bid_size == 1.0 and quote.exchange_ts_ms == 2000


def test_removing_the_best_level_exposes_the_next(parse) -> None:
    parse(book(ts_us=1_000_000), 1)

    [quote] = parse(diff(ts_us=1_000_001, bids=[("3802.90", "0")], asks=[("3805.47", "0")]),
                    2).records
    unchanged = parse(diff(ts_us=1_000_002, bids=[("3700.00", "5")]), 3)

    assert (quote.bid, quote.ask) == (3802.0, 3806.0)
    assert unchanged.records == []  # the top did not move: no new quote


def test_diff_without_a_snapshot_gives_no_quote(parse) -> None:
    parsed = parse(diff(bids=[("3803.00", "1")]), 1)
    assert parsed.kind == "diff_order_book" and parsed.records == []


def test_control_and_reconnect_frames(parse) -> None:
    ack = '{"event":"bts:subscription_succeeded","channel":"live_trades_ethusd","data":{}}'
    reconnect = '{"event":"bts:request_reconnect","channel":"","data":""}'

    assert parse(ack, 1) == (("bts:subscription_succeeded", [], None))
    assert parse(reconnect, 1).kind == bitstamp.RECONNECT_KIND
    assert bitstamp.RECONNECT_KIND in bitstamp.RECONNECT_KINDS
    assert parse(reconnect, 1).records == []


def test_snapshot_frame_only_for_the_order_book_endpoint() -> None:
    body = '{"timestamp":"1","microtimestamp":"1000000","bids":[],"asks":[]}'
    frame = bitstamp.snapshot_frame("https://www.bitstamp.net/api/v2/order_book/ethusd", body)

    assert json.loads(frame) == {"data": json.loads(body), "channel": "order_book_ethusd",
                                 "event": "data"}
    assert bitstamp.snapshot_frame("https://www.bitstamp.net/api/v2/ticker/ethusd", body) is None
    assert bitstamp.snapshot_frame("https://www.bitstamp.net/api/v2/order_book/../x", body) is None


def test_fx_converts_a_usdt_pair(parse) -> None:
    [quote] = parse(book(pair="btcusdt", bids=[("100", "1")], asks=[("101", "1")]), 1,
                    symbol_map={"btcusdt": "BTC-USD"}, fx_to_usd={"USDT": 0.999}).records
    assert quote.quote_ccy == "USDT" and quote.fx_to_usd == 0.999
    assert quote.bid == pytest.approx(99.9) and quote.ask == pytest.approx(100.899)


TRADE = {"id": 1, "timestamp": "1641343699", "amount": 1.0, "amount_str": "1.0",
         "price": 3805.44, "price_str": "3805.44", "type": 1,
         "microtimestamp": "1641343699596000"}


def trade(**changes: Any) -> str:
    data = {k: v for k, v in (TRADE | changes).items() if v is not _DELETE}
    return json.dumps({"data": data, "channel": "live_trades_ethusd", "event": "trade"})


_DELETE = object()


@pytest.mark.parametrize(("raw", "reason"), [
    ("garbage{", "not_json"),
    ("[1,2]", "unknown_type"),
    ('{"unexpected":"message"}', "unknown_type"),
    ('{"event":"data","channel":"ticker_ethusd","data":{}}', "unknown_type"),
    ('{"event":"bts:error","channel":"","data":{"code":null,"message":"Bad subscription"}}',
     "venue_error"),
    (trade(price_str="NaN"), "bad_price"),
    (trade(price_str="-1"), "bad_price"),
    (trade(price_str="0"), "bad_price"),
    (trade(price_str=_DELETE), "missing_field"),
    (trade(amount_str="0"), "bad_size"),
    (trade(type=2), "bad_field"),
    (trade(type=_DELETE), "missing_field"),
    (trade(id=_DELETE), "missing_field"),
    (trade(microtimestamp="soon"), "bad_time"),
    (trade(microtimestamp=_DELETE), "missing_field"),
    (trade().replace("live_trades_ethusd", "live_trades_dogeusd"), "unknown_symbol"),
    (book(bids=[("3806", "1")], asks=[("3805", "1")]), "crossed_book"),
    (book(bids=[("NaN", "1")]), "bad_price"),
    (book(bids=[("0", "1")]), "bad_price"),
    (book(asks=[("-3805", "1")]), "bad_price"),
    (book(asks=[("3805", "0")]), "bad_size"),
    (book(pair="dogeusd"), "unknown_symbol"),
    (json.dumps({"data": {"microtimestamp": "1", "bids": []}, "channel": "order_book_ethusd",
                 "event": "data"}), "missing_field"),
    (json.dumps({"data": [], "channel": "order_book_ethusd", "event": "data"}), "bad_field"),
    (diff(bids=[("3803", "-1")]), "bad_size"),
    (diff(bids=[("3803", "NaN")]), "bad_size"),
    (diff(asks=[("inf", "1")]), "bad_price"),
    (diff(asks=[["3803"]]), "bad_field"),
])
def test_bad_input_is_a_record_error(raw: str, reason: str, parse) -> None:
    with pytest.raises(RecordError) as err:
        parse(raw, 1)
    assert err.value.reason == reason


def test_a_crossed_diff_book_is_counted_not_quoted(parse) -> None:
    parse(book(ts_us=1_000_000), 1)
    with pytest.raises(RecordError) as err:
        parse(diff(ts_us=1_000_001, bids=[("3900", "1")]), 2)
    assert err.value.reason == "crossed_book"


def test_a_bad_diff_changes_nothing(parse) -> None:
    parse(book(ts_us=1_000_000), 1)
    parse(diff(ts_us=1_000_001, bids=[("3803", "1")]), 2)
    with pytest.raises(RecordError):
        parse(diff(ts_us=1_000_002, bids=[("3804", "1"), ("3805", "bad")]), 3)
    assert parse.book("ethusd").best_bid == 3803.0


def test_new_venue_has_books_of_its_own() -> None:
    a, b = bitstamp.new_venue(), bitstamp.new_venue({"BTC-USD": "ethusd"})
    assert a.parse_frame is not b.parse_frame is not bitstamp.VENUE.parse_frame
    assert b.symbols == {"BTC-USD": "ethusd"}
    a.parse_frame(book(), 1)
    assert b.parse_frame(diff(bids=[("3803", "1")]), 2).records == []
