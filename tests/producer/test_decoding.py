"""The fast decoder against the standard library: every recorded frame, hostile literals, and
mutated real frames must decode to the same objects (types included), and every parser must give
the same records or fail with the same reason, whichever decoder it runs on."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.exceptions import RecordError
from services.producer import binance, coinbase, kraken, okx
from services.producer.connector import Parsed
from services.producer.decoding import decode, stdlib_decode
from tests.support.json_paths import value_paths

CONNECTORS = (binance, coinbase, kraken, okx)
#: huge integers on both sides of the 64-bit range and of a double's
HUGE_INTS = (2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**19, -(10**19),
             2**1023, 2**1024, 10**400, -(10**400))


def fixture_raws(fixtures_dir: Path) -> list[str]:
    """Every text the recordings hold: WebSocket frames of every venue and REST bodies."""
    return [json.loads(line)["raw"] for path in sorted(fixtures_dir.glob("*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


def same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (NaN equals NaN, -0.0 is not 0.0)."""
    if a.__class__ is not b.__class__:
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b


def outcome(decoder: Any, raw: str | bytes) -> tuple[str, Any]:
    try:
        return "ok", decoder(raw)
    except RecordError as exc:
        return "error", (exc.reason, exc.detail)


class EveryProduct(dict):
    """A symbol map that maps every venue symbol onto itself: every recorded product counts."""

    def get(self, key: Any, default: Any = None) -> Any:
        return key if key.__class__ is str else default


def parsed_with(connector: Any, decoder: Any, raw: str | bytes,
                monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    """A connector's parse_frame with ``decoder`` as its JSON decoder."""
    with monkeypatch.context() as patch:
        patch.setattr(connector, "decode", decoder)
        try:
            return "ok", connector.parse_frame(raw, 1_700_000_000_000, fx_to_usd=1.0003,
                                               symbol_map=EveryProduct())
        except RecordError as exc:
            return "error", (exc.reason, exc.detail)


def assert_same_parse(raw: str | bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    for connector in CONNECTORS:
        old = parsed_with(connector, stdlib_decode, raw, monkeypatch)
        new = parsed_with(connector, decode, raw, monkeypatch)
        assert old == new, (connector.NAME, raw)
        if old[0] == "ok":
            assert isinstance(new[1], Parsed)
            for a, b in zip(old[1].records, new[1].records, strict=True):
                assert a.__class__ is b.__class__
                assert [type(x) for x in _fields(a)] == [type(y) for y in _fields(b)]


def _fields(record: Any) -> list[Any]:
    return [getattr(record, name) for name in record.__slots__]


# --- every recorded frame ---------------------------------------------------------------------

def test_every_recorded_text_decodes_as_the_standard_library(fixtures_dir) -> None:
    raws = fixture_raws(fixtures_dir)
    assert len(raws) > 10_000

    for raw in raws:
        old, new = outcome(stdlib_decode, raw), outcome(decode, raw)
        assert old[0] == new[0] == "ok", raw[:200]
        assert same(old[1], new[1]), raw[:200]
        assert same(stdlib_decode(raw.encode()), decode(raw.encode()))  # bytes frames too


def test_every_recorded_frame_parses_the_same_on_both_decoders(fixtures_dir,
                                                               monkeypatch) -> None:
    # Every venue's parser on every recorded text, its own venue's or not: the same records or
    # the same rejection, reason and detail.
    records: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for raw in fixture_raws(fixtures_dir):
        assert_same_parse(raw, monkeypatch)
        for connector in CONNECTORS:
            kind, value = parsed_with(connector, decode, raw, monkeypatch)
            if kind == "ok":
                records[connector.NAME] += len(value.records)
            else:
                reasons[value[0]] += 1

    # both paths were exercised: every venue's records, and other venues' frames rejected
    assert all(records[c.NAME] > 0 for c in CONNECTORS)
    assert reasons["unknown_type"] > 0


# --- what orjson reads differently --------------------------------------------------------------

def binance_trade(**data: Any) -> str:
    base = {"e": "trade", "E": 1723161255343, "s": "BTCUSDT", "t": 3735683259,
            "p": "61837.63000000", "q": "0.02000000", "T": 1723161255342, "m": True, "M": True}
    return json.dumps({"stream": "btcusdt@trade", "data": base | data})


def binance_ticker(**data: Any) -> str:
    base = {"u": 50093239212, "s": "BTCUSDT", "b": "61837.63000000", "B": "3.78826000",
            "a": "61837.64000000", "A": "1.54698000"}
    return json.dumps({"stream": "btcusdt@bookTicker", "data": base | data})


@pytest.mark.parametrize("raw", [
    "NaN", "[NaN]", "Infinity", "-Infinity", "1e400", "-1e400", "1.7976931348623159e308",
    *(str(n) for n in HUGE_INTS), '{"a":1,"a":2}', '"\\ud800"', '"\\ud83d\\ude00"', "-0", "-0.0",
    "1e-400", '"\\u0000"', " {} ", "[1,]", "{}x", "\ufeff{}", "", "\x00", "01", "1.", '"\x01"',
])
def test_literals_decode_as_the_standard_library(raw: str) -> None:
    for text in (raw, raw.encode("utf-8", "surrogatepass")):
        old, new = outcome(stdlib_decode, text), outcome(decode, text)
        assert old[0] == new[0], text
        assert same(old[1], new[1]) if old[0] == "ok" else old[1] == new[1], text


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_bytes_in_other_unicode_encodings_decode_as_before(encoding: str) -> None:
    raw = binance_ticker().encode(encoding)

    assert same(decode(raw), stdlib_decode(raw)) and decode(raw)["data"]["s"] == "BTCUSDT"


@pytest.mark.parametrize("value", HUGE_INTS)
def test_huge_integers_keep_their_old_meaning(value: int, monkeypatch) -> None:
    # A price: bad_price beyond a double's range, else its float; an id or a time: exact digits
    for raw in (binance_trade(p=value), binance_trade(t=value), binance_trade(T=value),
                binance_trade(q=value), binance_ticker(u=value), binance_ticker(b=value)):
        assert same(decode(raw), stdlib_decode(raw))
        assert_same_parse(raw, monkeypatch)

    if value > 0:
        [trade] = binance.parse_frame(binance_trade(t=value), 1).records
        assert trade.trade_id == str(value)  # not the float orjson alone would give


@pytest.mark.parametrize(("change", "reason"), [
    ({"p": math.nan}, "bad_price"), ({"p": math.inf}, "bad_price"),
    ({"q": -math.inf}, "bad_size"), ({"p": 10**400}, "bad_price"), ({"p": 2**1023}, "bad_price"),
    ({"T": 10**30}, None), ({"t": 10**30}, None),
])
def test_rejections_keep_their_reasons(change: dict, reason: str | None) -> None:
    raw = binance_trade(**change)

    if reason is None:  # accepted as before: an exact id or time however long
        assert binance.parse_frame(raw, 1).records
        return
    with pytest.raises(RecordError) as err:
        binance.parse_frame(raw, 1)
    assert err.value.reason == reason


def test_nesting_too_deep_for_the_standard_library_is_not_json() -> None:
    # json raised RecursionError here (out of the parser); orjson's limit is 1024 levels
    for depth in (995, 1024, 1025, 5000):
        raw = "[" * depth + "]" * depth
        with pytest.raises(RecordError) as err:
            binance.parse_frame(raw, 1)
        assert err.value.reason in {"not_json", "unknown_type"}
    with pytest.raises(RecordError) as err:
        stdlib_decode("[" * 5000 + "]" * 5000)
    assert err.value.reason == "not_json"


# --- mutated real frames ------------------------------------------------------------------------

HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(HUGE_INTS), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "NaN", "inf", "-Infinity", "1e400", "9" * 25, "\ud800", "BTCUSDT"]),
    st.text(max_size=10), st.lists(st.integers(), max_size=3),
)


@st.composite
def mutated(draw: st.DrawFn, originals: list[str]) -> str | bytes:
    """A real frame with up to three values replaced by hostile ones, as text or bytes."""
    obj = json.loads(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 3))):
        paths = value_paths(obj)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = draw(HOSTILE)
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass") if draw(st.booleans()) else text


@pytest.fixture(scope="module")
def originals(fixtures_dir: Path) -> list[str]:
    raws = [r for r in fixture_raws(fixtures_dir) if len(r) < 2000]
    return raws[:: max(1, len(raws) // 400)]


@settings(max_examples=1500, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_frames_parse_the_same_on_both_decoders(data, originals, monkeypatch) -> None:
    raw = data.draw(mutated(originals))

    old, new = outcome(stdlib_decode, raw), outcome(decode, raw)
    assert old[0] == new[0]
    assert same(old[1], new[1]) if old[0] == "ok" else old[1] == new[1]
    assert_same_parse(raw, monkeypatch)
