"""Fuzz every exchange parser and the record parsers with 10,000 inputs each: random text and
real recorded messages with fields deleted or replaced by hostile values. Whatever comes in,
a parser returns valid records or raises RecordError with a reason; nothing else escapes."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.exceptions import RecordError
from services.common.messages import (
    Quote,
    Trade,
    parse_price_record,
    parse_spread,
    to_json,
    validate_quote,
    validate_trade,
)
from services.producer.venues import VENUES
from tests.conftest import FIXTURES
from tests.support.alerts import make_spread
from tests.support.json_paths import value_paths

EXAMPLES = 10_000
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
REASON = re.compile(r"^[a-z][a-z_]*$")
RECORDINGS = {"coinbase": "coinbase_exchange_2021.jsonl", "binance": "binance.jsonl",
              "kraken": "kraken.jsonl", "okx": "okx.jsonl",
              "bybit": "bybit_orderbook1_2025.jsonl", "bitstamp": "bitstamp.jsonl"}

HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.just(10**400), st.just(-(10**400)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "NaN", "nan", "inf", "-Infinity", "-1", "0", "0.0", "1e400", "1e-400",
                     "abc", "1,5", " 1 ", "9" * 400, "\u0000", "BTC-USD", "XBT/USD"]),
    st.text(max_size=20), st.lists(st.integers(), max_size=3), st.just({}),
)


def frames(venue: str) -> list[str]:
    path = Path(FIXTURES) / RECORDINGS[venue]
    lines = path.read_text().splitlines()
    raws = [json.loads(line)["raw"] for line in lines if '"source"' not in line[:80]]
    step = max(1, len(raws) // 400)  # a spread of message kinds, not just the first ones
    return raws[::step]


@st.composite
def mutated(draw: st.DrawFn, originals: list[str]) -> str:
    """A real message with one to three fields deleted or replaced."""
    obj = json.loads(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 3))):
        paths = value_paths(obj)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(HOSTILE)
    return json.dumps(obj)


def inputs(originals: list[str]) -> st.SearchStrategy[str | bytes]:
    return st.one_of(
        mutated(originals), mutated(originals), mutated(originals),
        st.text(max_size=200), st.binary(max_size=200),
        st.sampled_from(originals),
    )


def check_record(record: Quote | Trade) -> None:
    """Whatever a parser lets through is a usable record."""
    if isinstance(record, Quote):
        validate_quote(record)
    else:
        validate_trade(record)
    assert isinstance(record.ts_ms, int) and isinstance(record.recv_ts_ms, int)


def reject_reason(exc: RecordError) -> str:
    assert REASON.match(exc.reason), f"unclear reason {exc.reason!r}"
    return exc.reason


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_exchange_parser_never_escapes(venue: str) -> None:
    if venue not in RECORDINGS:
        pytest.fail(f"no recording to fuzz {venue} with: add it to RECORDINGS")
    parse = VENUES[venue].parse_frame
    reasons: set[str] = set()

    @FUZZ
    @given(inputs(frames(venue)))
    def run(raw: str | bytes) -> None:
        try:
            parsed = parse(raw, 1_700_000_000_000)
        except RecordError as exc:
            reasons.add(reject_reason(exc))
            return
        for record in parsed.records:
            check_record(record)

    run()
    assert {"not_json"} <= reasons or "bad_json" in reasons, reasons


def _valid_records() -> list[str]:
    quote = Quote(exchange="binance", symbol="BTC-USD", venue_symbol="BTCUSDT", bid=60000.0,
                  bid_size=1.0, ask=60000.5, ask_size=2.0, quote_ccy="USDT", fx_to_usd=1.0,
                  ts_ms=1_700_000_000_000, recv_ts_ms=1_700_000_000_000, exchange_ts_ms=None)
    trade = Trade(exchange="coinbase", symbol="BTC-USD", venue_symbol="BTC-USD", price=60000.0,
                  size=0.1, side="buy", trade_id="42", quote_ccy="USD", fx_to_usd=1.0,
                  ts_ms=1_700_000_000_000, recv_ts_ms=1_700_000_000_000, exchange_ts_ms=1)
    return [to_json(quote).decode(), to_json(trade).decode()]


def test_price_record_parser_never_escapes() -> None:
    reasons: set[str] = set()

    @FUZZ
    @given(inputs(_valid_records()))
    def run(raw: str | bytes) -> None:
        try:
            record = parse_price_record(raw)
        except RecordError as exc:
            reasons.add(reject_reason(exc))
            return
        check_record(record)

    run()
    assert {"not_json", "missing_field", "bad_field"} <= reasons, reasons


def test_spread_record_parser_never_escapes() -> None:
    reasons: set[str] = set()

    @FUZZ
    @given(inputs([to_json(make_spread()).decode()]))
    def run(raw: str | bytes) -> None:
        try:
            spread = parse_spread(raw)
        except RecordError as exc:
            reasons.add(reject_reason(exc))
            return
        assert spread.id and spread.symbol
        assert all(math.isfinite(v) for v in (spread.buy_ask, spread.sell_bid, spread.spread_usd))

    run()
    assert {"not_json", "missing_field", "bad_field"} <= reasons, reasons
