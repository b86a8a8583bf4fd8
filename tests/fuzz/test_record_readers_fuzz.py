"""Fuzz every record reader of services.common.messages (price records, spreads/alerts,
episodes) with 10,000 inputs each: random bytes and text, hostile JSON values, and valid records
with fields deleted or replaced (wrong types, NaN strings, huge numbers, nesting, long values).
A reader returns a record of its type or raises RecordError with a clear reason; nothing else
escapes, since an escaping error stops the consumer that reads the record."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.exceptions import RecordError
from services.common.messages import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_PRICE_USD,
    NOT_A_NAME,
    DepthLevel,
    Episode,
    Quote,
    Spread,
    Trade,
    episode_id,
    parse_episode,
    parse_price_record,
    parse_spread,
    record_fields,
    to_json,
)
from tests.fuzz.test_parsers_fuzz import FUZZ, HOSTILE, mutated, reject_reason
from tests.support.alerts import make_quote, make_spread

START_MS = 1_717_243_201_000

#: Beyond HOSTILE's scalars: nested containers (kept below the interpreter's recursion limit:
#: deeper nesting is its own test below), long strings, values of the other record kinds.
NESTED = st.recursive(HOSTILE, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=12)
LONG = st.sampled_from(["x" * 100_000, "9" * 5000, "NaN" * 1000, "[" * 50])
VALUE = st.one_of(HOSTILE, NESTED, LONG, st.just(float("nan")), st.just(1e308),
                  st.just(-(2**63) - 1), st.just(2**64))


def _episode() -> Episode:
    return Episode(
        id=episode_id("ETH-USD", "kraken", "okx", START_MS), symbol="ETH-USD",
        buy_exchange="kraken", sell_exchange="okx", start_ms=START_MS, end_ms=START_MS + 1200,
        duration_ms=1200, quotes=7, peak_net_spread_bps=8.5, mean_net_spread_bps=4.25,
        peak_spread_usd=4.1, peak_est_profit_usd=0.42, required_ms=550, capturable=True,
        is_open=False, newest_recv_ts_ms=START_MS, detected_ts_ms=START_MS + 5,
        executable_usd=10_000.0, executable_size=3.03, executable_profit_usd=8.5,
    )


def _originals() -> dict[str, list[str]]:
    quote = make_quote()
    deep = replace(quote, depth=(DepthLevel(1000.0, 66_999.0, 67_001.0),
                                 DepthLevel(10_000.0, 66_990.0, None)))
    trade = Trade(exchange="coinbase", symbol="BTC-USD", venue_symbol="BTC-USD", price=60000.0,
                  size=0.1, side="buy", trade_id="42", quote_ccy="USD", fx_to_usd=1.0,
                  ts_ms=START_MS, recv_ts_ms=START_MS, exchange_ts_ms=1)
    spread = make_spread()
    episode = _episode()
    return {
        "price": [to_json(r).decode() for r in (quote, deep, trade)],
        "spread": [to_json(r).decode() for r in (spread, replace(spread, max_size=None,
                                                                 est_profit_usd=None))],
        "episode": [to_json(r).decode() for r in (episode, replace(episode, is_open=True))],
    }


ORIGINALS = _originals()
READERS: dict[str, tuple[Callable[[Any], Any], tuple[type, ...]]] = {
    "price": (parse_price_record, (Quote, Trade)),
    "spread": (parse_spread, (Spread,)),
    "episode": (parse_episode, (Episode,)),
}


@st.composite
def replaced(draw: st.DrawFn, originals: list[str]) -> str:
    """A valid record with one to four top-level fields deleted or set to a hostile value."""
    obj = json.loads(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(sorted(obj) or ["v"]))
        if draw(st.booleans()):
            obj.pop(key, None)
        else:
            obj[key] = draw(VALUE)
    return json.dumps(obj)  # NaN and Infinity as JSON's non-standard literals, as some send


def inputs(originals: list[str]) -> st.SearchStrategy[str | bytes]:
    return st.one_of(
        replaced(originals), replaced(originals), mutated(originals),
        st.sampled_from(originals),
        st.text(max_size=200), st.binary(max_size=200),
        VALUE.map(json.dumps), st.sampled_from(originals).map(lambda s: s[: len(s) // 2]),
    )


def _limit(name: str) -> int:
    return MAX_ID_CHARS if name == "id" else MAX_NAME_CHARS


def names_within_bounds(record: Any) -> bool:
    """Every text field of a record the readers returned is within its limit and a name (not a
    number, keyword or container as text): what the Flink job's valid_quotes also requires."""
    texts = {f.name: getattr(record, f.name) for f in fields(record)
             if isinstance(getattr(record, f.name), str) and f.name not in {"type"}}
    # trade_id is any JSON value as text (venues number some ids): bounded, not a pattern
    return all(len(v) <= _limit(k) and (k == "trade_id" or not re.search(NOT_A_NAME, v))
               for k, v in texts.items())


def _text_fields(kind: str) -> list[str]:
    _, types = READERS[kind]
    return sorted({s.name for t in types for s in record_fields(t)
                   if s.kind is str and not s.header} & set(json.loads(ORIGINALS[kind][0])))


@pytest.mark.parametrize("kind", sorted(READERS))
def test_oversized_text_is_a_bad_field(kind: str) -> None:
    """A name or id one character over its limit is ``bad_field`` (a 1 MiB venue name reaches
    no detector, here or in the job); at the limit it is read."""
    read, _ = READERS[kind]
    names = _text_fields(kind)
    assert names, kind
    for name in names:
        obj = json.loads(ORIGINALS[kind][0])
        limit = _limit(name)
        if name != "side":  # side is one of two words
            obj[name] = "x" * limit
            assert getattr(read(json.dumps(obj)), name) == "x" * limit
        for value in ("x" * (limit + 1), "x" * (1 << 20)):
            obj[name] = value
            with pytest.raises(RecordError) as caught:
                read(json.dumps(obj))
            assert caught.value.reason == "bad_field", (name, caught.value)


@pytest.mark.parametrize("kind", sorted(READERS))
@pytest.mark.parametrize("value", [-1, 0, 1e308, 2**64, True, [1, 2], {"x": 1}, "-1", "true",
                                   "[1,2]", "1e+308", "NaN"])
def test_text_that_another_type_becomes_is_a_bad_field(kind: str, value: Any) -> None:
    """A number, boolean or container in a text field, or its text: bad_field either way, so
    the job (whose JSON format turns the one into the other) rejects the same records."""
    read, _ = READERS[kind]
    for name in _text_fields(kind):
        obj = json.loads(ORIGINALS[kind][0])
        obj[name] = value
        with pytest.raises(RecordError) as caught:
            read(json.dumps(obj))
        assert caught.value.reason == "bad_field", (name, value)


@pytest.mark.parametrize("kind", sorted(READERS))
def test_record_reader_returns_its_record_or_record_error(kind: str) -> None:
    read, types = READERS[kind]
    outcomes: dict[str, int] = {}

    @FUZZ
    @given(inputs(ORIGINALS[kind]))
    def run(raw: str | bytes) -> None:
        try:
            record = read(raw)
        except RecordError as exc:
            outcomes[reject_reason(exc)] = outcomes.get(reject_reason(exc), 0) + 1
            return
        assert isinstance(record, types), type(record)
        assert names_within_bounds(record)
        outcomes["ok"] = outcomes.get("ok", 0) + 1

    run()
    # The fuzzing reached both sides: records read, and rejections with their reasons.
    assert outcomes.get("ok", 0) > 0, outcomes
    assert {"not_json", "missing_field", "bad_field"} <= set(outcomes), outcomes


@pytest.mark.parametrize("kind", sorted(READERS))
def test_valid_records_read_back_equal(kind: str) -> None:
    read, _ = READERS[kind]
    for raw in ORIGINALS[kind]:
        assert to_json(read(raw)).decode() == raw


@pytest.mark.parametrize("kind", sorted(READERS))
def test_deeply_nested_record_is_a_record_error(kind: str) -> None:
    read, _ = READERS[kind]
    nested = '{"v":1,"type":"quote","exchange":' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(RecordError):
        read(nested)


@pytest.mark.parametrize(("name", "value"), [("ask", MAX_PRICE_USD), ("fx_to_usd", 1e300),
                                             ("price", MAX_PRICE_USD * 10)])
def test_a_price_the_job_refuses_is_a_bad_price(name: str, value: float) -> None:
    """A price or fx rate at or above MAX_PRICE_USD reaches no detector, here as in the job."""
    originals = [json.loads(raw) for raw in ORIGINALS["price"]]
    obj = next(o for o in originals if name in o)
    assert parse_price_record(json.dumps(obj))
    obj[name] = value
    with pytest.raises(RecordError) as caught:
        parse_price_record(json.dumps(obj))
    assert caught.value.reason == "bad_price"
