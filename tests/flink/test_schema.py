"""The Flink SQL copies of the records agree with their declarations (services.common.messages).

The sink schemas are spelled out in flink/sql/*.sql (STYLE 13) and the INSERTs into them are
positional, so each copy is parsed here and compared, names, types and order, with the
declaration. No Flink needed: these run in milliseconds.
"""

from __future__ import annotations

import re

import pytest

from flink import detection
from flink.detection import SQL_DIR, flink_columns
from services.common.config import DetectionSettings
from services.common.messages import (
    MAX_EXACT_INT,
    MAX_NAME_CHARS,
    NOT_A_NAME,
    RECORDS,
    Episode,
    Quote,
    Spread,
    Trade,
    column_drift,
    data_fields,
    record_fields,
)
from tests.common.declarations import redeclared

SETTINGS = DetectionSettings.from_env({"ARB_VENUES": "coinbase,binance"})


def _sql(name: str) -> str:
    """A statement file without its comments."""
    return re.sub(r"--[^\n]*", "", (SQL_DIR / f"{name}.sql").read_text())


def _split(text: str, *, types: bool = False) -> list[str]:
    """Items of a comma-separated list, ignoring commas inside parentheses and, in a list of
    column types (``types``), inside type brackets (``ARRAY<ROW<a DOUBLE, b DOUBLE>>``)."""
    items, depth, current = [], 0, []
    nesting = {"(": 1, ")": -1} | ({"<": 1, ">": -1} if types else {})
    for char in text:
        depth += nesting.get(char, 0)
        if char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def _body(text: str, start: int) -> str:
    """What lies between the parenthesis at ``start`` and its match."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1:i]
    raise ValueError("unbalanced parentheses")


def table_columns(name: str) -> list[tuple[str, str]]:
    """(name, type) of a CREATE TABLE's physical columns: computed and metadata columns and
    the watermark are the job's own, not the record's."""
    text = _sql(name)
    columns = []
    for item in _split(_body(text, text.index("(")), types=True):
        words = item.replace("`", "").split()
        if words[0].upper() == "WATERMARK" or "METADATA" in words or words[1].upper() == "AS":
            continue
        columns.append((words[0], " ".join(words[1:])))
    return columns


def select_names(select_list: str) -> list[str]:
    """Output names of a SELECT list: the alias after a top-level AS, else the column."""
    names = []
    for item in _split(select_list):
        # An AS inside parentheses (a CAST) is never at the end of the item.
        alias = re.search(r"\bAS\s+`?(\w+)`?\s*$", item, re.IGNORECASE)
        names.append(alias.group(1) if alias else item.split(".")[-1].strip("`"))
    return names


def outer_select(statement: str) -> str:
    """The first SELECT list of a statement (up to its top-level FROM)."""
    start = re.search(r"\bSELECT\b", statement, re.IGNORECASE).end()
    depth = 0
    for match in re.finditer(r"[()]|\bFROM\b", statement[start:], re.IGNORECASE):
        part = match.group(0)
        if part in "()":
            depth += 1 if part == "(" else -1
        elif depth == 0:
            return statement[start:start + match.start()]
    raise ValueError("no FROM")


# -- sinks: exact copies ------------------------------------------------------------------------

@pytest.mark.parametrize(("sql_file", "record"), [
    ("sink_spreads", Spread),
    ("sink_episodes", Episode),
])
def test_sink_schema_is_the_declaration(sql_file: str, record: type) -> None:
    assert column_drift(flink_columns(record), table_columns(sql_file), sql_file) == []


def test_episode_insert_selects_the_declared_columns_in_order() -> None:
    names = select_names(outer_select(_sql("insert_episodes")))
    assert names == [name for name, _ in flink_columns(Episode)]


@pytest.mark.parametrize("insert", ["insert_spreads", "insert_alerts"])
def test_spread_inserts_select_the_declared_columns_in_order(insert: str) -> None:
    statement = next(s for s in detection.insert_statements(SETTINGS) if s.startswith(
        f"INSERT INTO {'spreads' if insert == 'insert_spreads' else 'alerts'}_sink"))
    assert select_names(outer_select(statement)) == [n for n, _ in flink_columns(Spread)]


def test_pair_view_produces_every_spread_field() -> None:
    view = next(s for s in detection.view_statements(SETTINGS) if "VIEW pair_spreads" in s)
    assert sorted(select_names(outer_select(view))) == sorted(detection.SPREAD_COLUMNS)


# -- source: a subset of the price records' fields ----------------------------------------------

def source_drift(quote: type = Quote, trade: type = Trade) -> list[str]:
    """Source columns that are not a declared quote or trade field of the same type (the
    integer times of detection.SOURCE_AS_DOUBLE read as DOUBLE, so that a fraction shows)."""
    declared = {**dict(flink_columns(trade)), **dict(flink_columns(quote))}
    declared |= {name: "DOUBLE" for name in detection.SOURCE_AS_DOUBLE if name in declared}
    problems = []
    for name, kind in table_columns("source_prices"):
        if name not in declared:
            problems.append(f"source_prices: {name} is neither a quote nor a trade field")
        elif declared[name] != kind:
            problems.append(f"source_prices: {name} is {kind}, declared {declared[name]}")
    return problems


def test_source_columns_are_declared_price_fields() -> None:
    shared = set(data_fields(Quote)) & set(data_fields(Trade))
    assert {n: t for n, t in flink_columns(Quote) if n in shared} == {
        n: t for n, t in flink_columns(Trade) if n in shared}  # one type per name
    assert source_drift() == []


# -- the checks fail when a copy drifts ----------------------------------------------------------

def test_a_field_added_to_the_declaration_is_missing_from_the_sink() -> None:
    grown = redeclared(Spread, extra=(("slippage_usd", float | None),))
    assert column_drift(flink_columns(grown), table_columns("sink_spreads"), "sink_spreads") == [
        "sink_spreads: lacks slippage_usd DOUBLE"]


def test_a_field_whose_type_changed_is_reported() -> None:
    changed = redeclared(Episode, types={"quotes": float})
    assert column_drift(flink_columns(changed), table_columns("sink_episodes"),
                        "sink_episodes") == ["sink_episodes: quotes is BIGINT, declared DOUBLE"]


def test_a_renamed_field_is_reported_in_the_source() -> None:
    renamed = redeclared(Quote, renamed={"bid": "bid_usd"})
    assert source_drift(quote=renamed) == [
        "source_prices: bid is neither a quote nor a trade field"]


def test_a_reordered_copy_is_reported() -> None:
    declared = flink_columns(Spread)
    swapped = [declared[1], declared[0], *declared[2:]]
    assert column_drift(declared, swapped, "copy") == [
        "copy: columns in another order than declared"]


def test_every_record_maps_to_flink_types() -> None:
    for record in RECORDS:
        assert all(kind in {"STRING", "BIGINT", "DOUBLE", "BOOLEAN", "INT", detection.DEPTH_TYPE}
                   for _, kind in flink_columns(record))
    assert dict(flink_columns(Quote))["depth"] == (
        "ARRAY<ROW<notional_usd DOUBLE, bid_px DOUBLE, ask_px DOUBLE>>")
    assert dict(table_columns("source_prices"))["depth"] == detection.DEPTH_TYPE


def test_the_ladder_columns_follow_the_configured_sizes() -> None:
    """One bid/ask column pair per configured size on both paths; none with ``none``."""
    three = detection.view_statements(SETTINGS)
    text = "\n".join(three)
    assert all(f"depth[{i}].{side}_px" in text for i in (1, 2, 3) for side in ("bid", "ask"))
    assert "depth[7]" not in text  # six positions checked, three read
    assert "`binance_ask_px_3`" in text and "buy_ask_px_3" in text
    bare = detection.view_statements(DetectionSettings.from_env(
        {"ARB_VENUES": "coinbase,binance", "ARB_DEPTH_NOTIONALS_USD": "none"}))
    assert "depth[1].bid_px END" not in "\n".join(bare) and "_px_1" not in "\n".join(bare)
    assert sum("CAST(NULL AS DOUBLE) AS executable_usd" in s for s in bare) == 2  # both paths


# -- the readers' bounds, as the job applies them --------------------------------------------------

def test_integer_times_read_as_doubles_are_declared_integers() -> None:
    kinds = {s.name: s.kind for s in record_fields(Quote)}
    assert all(kinds[name] is int for name in detection.SOURCE_AS_DOUBLE)
    assert {n for n, t in table_columns("source_prices") if t == "DOUBLE"} >= set(
        detection.SOURCE_AS_DOUBLE)


@pytest.mark.parametrize("mode", ["arb", "seed"])
def test_the_jobs_name_rule_is_the_readers(mode: str) -> None:
    """valid_quotes (and the seed trades) check every name field with the readers' limit and
    pattern (services.common.messages.MAX_NAME_CHARS, NOT_A_NAME), as one copy of each."""
    settings = DetectionSettings.from_env({"ARB_VENUES": "coinbase,binance", "ARB_MODE": mode})
    views = detection.view_statements(settings)
    checked = [v for v in views if "VIEW valid_quotes" in v or "AVG(price)" in v]
    assert len(checked) == (2 if mode == "seed" else 1)  # the seed trades' window too
    for view in checked:
        for name in detection.QUOTE_NAMES:
            assert f"CHAR_LENGTH({name}) BETWEEN 1 AND {MAX_NAME_CHARS} " in view, name
            assert f"REGEXP({name}, {detection.sql_literal(NOT_A_NAME)})" in view, name
        assert "ABS(ts_ms) <= " + repr(float(MAX_EXACT_INT)) in view


def test_the_name_rule_rejects_what_the_json_format_makes_of_other_types() -> None:
    """What Flink's JSON format writes into a STRING column for a number, boolean, list or
    object (seen on this Flink: "-1", "1e+308", "true", "[1,2]", '{"x":1}') is not a name;
    real names are."""
    pattern = re.compile(NOT_A_NAME)
    for coerced in ["-1", "0", "1e+308", "18446744073709551616", "1.5", "true", "false",
                    "null", "NaN", "-Infinity", "[1,2]", "[]", '{"x":1}', "{}"]:
        assert pattern.search(coerced), coerced
    for name in ["coinbase", "BTC-USD", "1INCH-USD", "XBT/USD", "USDT", "abc", "1,5"]:
        assert not pattern.search(name), name
