"""The record schema: round trips, and every rejection carries a reason."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from services.common.exceptions import RecordError
from services.common.messages import (
    MAX_DEPTH_LEVELS,
    RECORDS,
    DepthLevel,
    Episode,
    Ladder,
    Quote,
    Spread,
    Trade,
    column_drift,
    episode_id,
    parse_episode,
    parse_fields,
    parse_price_record,
    parse_spread,
    record_fields,
    spread_id,
    to_json,
)
from tests.common.declarations import redeclared
from tests.support.alerts import make_spread


def quote(**changes: object) -> Quote:
    fields = {"exchange": "binance", "symbol": "BTC-USD", "venue_symbol": "BTCUSDT",
              "bid": 60000.0, "bid_size": 1.5, "ask": 60000.01, "ask_size": None,
              "quote_ccy": "USDT", "fx_to_usd": 1.0003, "ts_ms": 1_700_000_000_500,
              "recv_ts_ms": 1_700_000_000_000, "exchange_ts_ms": None, "refresh": True,
              "depth": (DepthLevel(1000.0, 59999.5, 60000.4),
                        DepthLevel(10000.0, 59990.25, None))}
    fields.update(changes)
    return Quote(**fields)


def trade() -> Trade:
    return Trade(exchange="coinbase", symbol="ETH-USD", venue_symbol="ETH-USD", price=3000.5,
                 size=0.25, side="sell", trade_id="981", quote_ccy="USD", fx_to_usd=1.0,
                 ts_ms=5, recv_ts_ms=5, exchange_ts_ms=3)


def episode() -> Episode:
    return Episode(id=episode_id("BTC-USD", "coinbase", "binance", 1000), symbol="BTC-USD",
                   buy_exchange="coinbase", sell_exchange="binance", start_ms=1000, end_ms=1600,
                   duration_ms=600, quotes=4, peak_net_spread_bps=9.5, mean_net_spread_bps=6.0,
                   peak_est_profit_usd=None, peak_spread_usd=80.0, required_ms=550,
                   capturable=True, is_open=False, newest_recv_ts_ms=1590, detected_ts_ms=1700)


def test_quote_and_trade_round_trip() -> None:
    for record in (quote(), trade()):
        assert parse_price_record(to_json(record)) == record
    assert json.loads(to_json(quote()))["v"] == 1


def test_spread_round_trip_and_deterministic_id() -> None:
    spread = make_spread()
    assert parse_spread(to_json(spread)) == spread
    assert spread_id("BTC-USD", 1000, "coinbase", "binance") == "BTC-USD|1000|coinbase|binance"


def test_unknown_fields_are_ignored() -> None:
    obj = json.loads(to_json(quote()))
    obj["brand_new_field"] = {"x": 1}
    assert parse_price_record(json.dumps(obj)) == quote()


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda o: "not json", "not_json"),
    (lambda o: "[1, 2]", "not_object"),
    (lambda o: {**o, "v": 2}, "bad_version"),
    (lambda o: {k: v for k, v in o.items() if k != "bid"}, "missing_field"),
    (lambda o: {**o, "bid": "60000"}, "bad_field"),
    (lambda o: {**o, "bid": -1}, "bad_price"),
    (lambda o: {**o, "ask": 0}, "bad_price"),
    (lambda o: {**o, "bid_size": -2}, "bad_size"),
    (lambda o: {**o, "bid": 60001}, "crossed_book"),
    (lambda o: {**o, "ts_ms": 1.5}, "bad_field"),
    (lambda o: {**o, "type": "candle"}, "unknown_type"),
])
def test_rejections_have_reasons(mutate: Callable[[dict], object], reason: str) -> None:
    obj = json.loads(to_json(quote()))
    raw = mutate(obj)
    raw = raw if isinstance(raw, str) else json.dumps(raw)
    with pytest.raises(RecordError) as err:
        parse_price_record(raw)
    assert err.value.reason == reason


def test_nan_never_reaches_the_wire() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        to_json(quote(bid=float("nan")))
    with pytest.raises(RecordError) as err:
        parse_price_record(to_json(quote()).replace(b"60000.0,", b"NaN,", 1))
    assert err.value.reason == "bad_field"


# -- the parser follows the declaration ----------------------------------------------------------

SAMPLES = {Quote: quote, Trade: trade, Spread: make_spread, Episode: episode}
PARSERS = {Quote: parse_price_record, Trade: parse_price_record, Spread: parse_spread,
           Episode: parse_episode}
#: Fields with a wire rule of their own (tested below): absent means False, stands in from
#: another field, or any value as text.
OWN_RULES = {"refresh", "newest_recv_ts_ms", "trade_id"}
DATA_FIELDS = [(record, spec) for record in RECORDS for spec in record_fields(record)
               if not spec.header and spec.name not in OWN_RULES]


def test_every_record_has_a_sample_and_a_parser() -> None:
    assert set(SAMPLES) == set(PARSERS) == set(RECORDS)


@pytest.mark.parametrize(("record", "spec"), DATA_FIELDS,
                         ids=[f"{r.__name__}.{s.name}" for r, s in DATA_FIELDS])
def test_each_declared_field_is_read_as_declared(record: type, spec: object) -> None:
    """Absent: missing_field (a flag: bad_field), unless declared optional (then None); of
    another type: bad_field."""
    obj = json.loads(to_json(SAMPLES[record]()))
    parse = PARSERS[record]
    del obj[spec.name]
    if spec.optional:
        assert getattr(parse(json.dumps(obj)), spec.name) is None
    else:
        with pytest.raises(RecordError) as err:
            parse(json.dumps(obj))
        absent = "bad_field" if spec.kind is bool else "missing_field"
        assert (err.value.reason, err.value.detail) == (absent, spec.name)
    wrong = {str: 12, int: "12", float: "1.5", bool: "true", Ladder: "1.5"}[spec.kind]
    with pytest.raises(RecordError) as err:
        parse(json.dumps({**obj, spec.name: wrong}))
    assert err.value.reason == ("bad_depth" if spec.kind is Ladder else "bad_field")


def test_fields_with_their_own_rule() -> None:
    obj = json.loads(to_json(quote()))
    del obj["refresh"]
    assert parse_price_record(json.dumps(obj)).refresh is False  # older producers
    spread = json.loads(to_json(make_spread()))
    del spread["newest_recv_ts_ms"]
    assert parse_spread(json.dumps(spread)).newest_recv_ts_ms == spread["window_end_ms"]
    raw = json.loads(to_json(trade()))
    assert parse_price_record(json.dumps({**raw, "trade_id": 981})).trade_id == "981"


def test_a_field_added_to_the_declaration_is_required_by_its_parser() -> None:
    grown = redeclared(Spread, extra=(("slippage_usd", float | None), ("fills", int)))
    obj = json.loads(to_json(make_spread()))

    with pytest.raises(RecordError) as err:
        parse_fields(grown, obj)
    assert (err.value.reason, err.value.detail) == ("missing_field", "fills")
    parsed = parse_fields(grown, {**obj, "fills": 3})
    assert (parsed.slippage_usd, parsed.fills) == (None, 3)


def test_column_drift_names_each_problem() -> None:
    declared = [("id", "STRING"), ("ts_ms", "BIGINT"), ("v", "INT")]
    assert column_drift(declared, declared, "copy") == []
    assert column_drift(declared, [("id", "STRING"), ("ts_ms", "DOUBLE"), ("x", "INT")],
                        "copy") == ["copy: lacks v INT", "copy: has undeclared x",
                                    "copy: ts_ms is DOUBLE, declared BIGINT"]
    reordered = [declared[1], declared[0], declared[2]]
    assert column_drift(declared, reordered, "copy") == [
        "copy: columns in another order than declared"]
    assert column_drift(declared, reordered, "copy", ordered=False) == []


# -- depth ladders --------------------------------------------------------------------------------

def _with_depth(depth: object) -> str:
    obj = json.loads(to_json(quote()))
    return json.dumps({**obj, "depth": depth})


def test_a_ladder_round_trips_with_its_nulls() -> None:
    parsed = parse_price_record(to_json(quote()))
    assert parsed.depth == (DepthLevel(1000.0, 59999.5, 60000.4),
                            DepthLevel(10000.0, 59990.25, None))
    assert json.loads(to_json(quote()))["depth"][1] == {
        "notional_usd": 10000.0, "bid_px": 59990.25, "ask_px": None}


def test_a_quote_without_depth_still_reads() -> None:
    for depth in (None, "absent"):
        obj = json.loads(to_json(quote()))
        if depth == "absent":
            del obj["depth"]
        else:
            obj["depth"] = None
        assert parse_price_record(json.dumps(obj)).depth is None
    assert parse_price_record(_with_depth([])).depth == ()
    assert parse_price_record(_with_depth([{"notional_usd": 5}])).depth == (
        DepthLevel(5.0, None, None),)


@pytest.mark.parametrize("depth", [
    {"notional_usd": 1000.0, "bid_px": 1.0, "ask_px": 2.0},  # an object, not a list
    "1000",
    [1000.0],
    [None],
    [{"bid_px": 1.0, "ask_px": 2.0}],  # no notional
    [{"notional_usd": 0, "bid_px": 1.0, "ask_px": 2.0}],
    [{"notional_usd": -1000.0, "bid_px": 1.0, "ask_px": 2.0}],
    [{"notional_usd": "1000", "bid_px": 1.0, "ask_px": 2.0}],
    [{"notional_usd": True, "bid_px": 1.0, "ask_px": 2.0}],
    [{"notional_usd": 1e400, "bid_px": 1.0, "ask_px": 2.0}],  # Infinity once read
    [{"notional_usd": 10**400, "bid_px": 1.0, "ask_px": 2.0}],  # an integer too large
    [{"notional_usd": 1000.0, "bid_px": -1.0, "ask_px": 2.0}],
    [{"notional_usd": 1000.0, "bid_px": 1.0, "ask_px": 0}],
    [{"notional_usd": 1000.0, "bid_px": "1.0", "ask_px": 2.0}],
    [{"notional_usd": 1000.0, "bid_px": 1.0, "ask_px": 2.0},
     {"notional_usd": 1000.0, "bid_px": 1.0, "ask_px": 2.0}],  # not increasing
    [{"notional_usd": 10000.0, "bid_px": 1.0, "ask_px": 2.0},
     {"notional_usd": 1000.0, "bid_px": 1.0, "ask_px": 2.0}],
    [{"notional_usd": float(n + 1)} for n in range(MAX_DEPTH_LEVELS + 1)],
], ids=lambda d: json.dumps(d)[:40])
def test_a_hostile_ladder_is_a_bad_depth(depth: object) -> None:
    with pytest.raises(RecordError) as err:
        parse_price_record(_with_depth(depth))
    assert err.value.reason == "bad_depth"


def test_nan_in_a_ladder_is_a_bad_depth() -> None:
    raw = _with_depth([{"notional_usd": 1000.0, "bid_px": 1.0, "ask_px": 2.0}])
    with pytest.raises(RecordError) as err:
        parse_price_record(raw.replace('"bid_px": 1.0', '"bid_px": NaN'))
    assert err.value.reason == "bad_depth"


def test_a_constructed_quote_with_a_bad_ladder_fails_validation() -> None:
    from services.common.messages import validate_quote

    bad = quote(depth=(DepthLevel(1000.0, float("nan"), 1.0),))
    with pytest.raises(RecordError) as err:
        validate_quote(bad)
    assert err.value.reason == "bad_depth"
    assert validate_quote(quote()) == quote()


def test_older_spreads_and_episodes_read_with_null_executable_fields() -> None:
    for record, parse in ((make_spread(), parse_spread), (episode(), parse_episode)):
        obj = json.loads(to_json(record))
        for name in ("executable_usd", "executable_size", "executable_profit_usd"):
            del obj[name]
        parsed = parse(json.dumps(obj))
        assert (parsed.executable_usd, parsed.executable_size,
                parsed.executable_profit_usd) == (None, None, None)
    grown = Spread(**{**{f: getattr(make_spread(), f) for f in make_spread().__slots__},
                      "executable_usd": 1000.0, "executable_size": 0.02,
                      "executable_profit_usd": 1.25})
    assert parse_spread(to_json(grown)).executable_profit_usd == 1.25


@pytest.mark.parametrize("parse", [parse_price_record, parse_spread, parse_episode])
def test_deeply_nested_json_is_rejected_not_raised(parse) -> None:
    """Nesting past the interpreter's recursion limit is a bad record (RecordError), not a
    RecursionError that would stop a consumer."""
    raw = '{"v": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(RecordError) as caught:
        parse(raw)
    assert caught.value.reason == "not_json"
