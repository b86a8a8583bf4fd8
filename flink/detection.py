"""Build the detection statements from configuration: the logic, separate from the wiring.

The SQL lives in ``flink/sql/*.sql``, one statement per file, with ``$name`` placeholders
filled from :class:`DetectionSettings`; ``job.py`` only declares the Kafka tables and runs them.
Column lists and types come from the records' declarations (services.common.messages); the
sink schemas spelled out in the ``.sql`` files are checked against them by
tests/flink/test_schema.py.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from services.common.config import FALLBACK_TAKER_FEE_BPS, DetectionSettings
from services.common.messages import (
    MAX_DEPTH_LEVELS,
    MAX_EXACT_INT,
    MAX_NAME_CHARS,
    MAX_PRICE_USD,
    NOT_A_NAME,
    VERSION_FIELD,
    Ladder,
    Quote,
    Spread,
    record_fields,
)
from services.common.ticks import ordered_pairs

SQL_DIR = Path(__file__).resolve().parent / "sql"

#: The largest finite double: a size at most this is neither Infinity nor NaN.
MAX_DOUBLE = "1.7976931348623157E308"
#: Ladder values the readers take as finite (services.common.messages._depth_px).
MAX_DEPTH_VALUE = "1.0E308"
#: Integer fields the source reads as DOUBLE: Flink's JSON format truncates 1.5 to 1 in a
#: BIGINT column, the readers reject it; as a double the fraction shows (:func:`exact_int`).
SOURCE_AS_DOUBLE = ("ts_ms", "recv_ts_ms", "exchange_ts_ms")

#: Flink SQL type of a quote's depth ladder (services.common.messages.DepthLevel).
DEPTH_TYPE = "ARRAY<ROW<notional_usd DOUBLE, bid_px DOUBLE, ask_px DOUBLE>>"
#: Flink SQL type of each declared field type; the schema version is a small INT.
FLINK_TYPES: dict[object, str] = {str: "STRING", int: "BIGINT", float: "DOUBLE",
                                  bool: "BOOLEAN", Ladder: DEPTH_TYPE}
VERSION_TYPE = "INT"


def flink_columns(record: type) -> tuple[tuple[str, str], ...]:
    """(name, Flink SQL type) of every field of a record, in declaration order: the JSON
    source and sink columns of that record."""
    return tuple(
        (s.name, VERSION_TYPE if s.name == VERSION_FIELD else FLINK_TYPES[s.kind])
        for s in record_fields(record)
    )


#: Columns of the spreads and alerts sinks, in their order (their INSERTs are positional).
SPREAD_COLUMNS = tuple(name for name, _ in flink_columns(Spread))
_QUOTE_TYPES = dict(flink_columns(Quote))

#: Per venue and quote field on the tick path: (column suffix, source expression, SQL type).
#: seq is the record's Kafka offset, its arrival order; a null size is kept as -1
#: (view_tick_books.sql), and so is a null ladder price (see :func:`_book_fields`).
_BOOK_FIELDS = (
    *((name, source, _QUOTE_TYPES[name]) for name, source in (
        ("ts_ms", "ts_ms"),
        ("recv_ts_ms", "recv_ts_ms"),
        ("bid", "bid"),
        ("bid_size", "COALESCE(bid_size, -1.0)"),
        ("ask", "ask"),
        ("ask_size", "COALESCE(ask_size, -1.0)"),
    )),
    ("seq", "kafka_offset", "BIGINT"),
)
#: The book fields a pair's previous evaluation compares (not the receive times, not the
#: ladder: whether a pair passed depends on top of book only).
_PREVIOUS_FIELDS = ("ts_ms", "seq", "bid", "bid_size", "ask", "ask_size")
#: The executable columns of spreads and episodes, in their declared order.
EXECUTABLE_COLUMNS = ("executable_usd", "executable_size", "executable_profit_usd")


def depth_px(side: str, position: int) -> str:
    """The column of a ladder price at a configured position (1-based, as SQL arrays):
    ``bid_px_1``, ``ask_px_3``, ..."""
    return f"{side}_px_{position}"


def depth_positions(settings: DetectionSettings) -> list[tuple[int, float]]:
    """(position, notional USD) of every configured ladder size, increasing."""
    return list(enumerate(settings.depth_notionals_usd, start=1))


def _book_fields(settings: DetectionSettings) -> tuple[tuple[str, str, str], ...]:
    """:data:`_BOOK_FIELDS` and one bid/ask ladder price per configured size, a null kept as
    -1 (prices are positive) so a quote without depth hides its venue's older ladder."""
    ladder = tuple(
        (depth_px(side, i), f"COALESCE({depth_px(side, i)}, -1.0)", "DOUBLE")
        for i, _ in depth_positions(settings) for side in ("bid", "ask")
    )
    return (*_BOOK_FIELDS, *ladder)


def epoch_ms(column: str) -> str:
    """Epoch milliseconds of a TIMESTAMP_LTZ column (Flink has no direct cast)."""
    return f"(EXTRACT(EPOCH FROM {column}) * 1000 + EXTRACT(MILLISECOND FROM {column}))"


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def name_ok(column: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """A name as the readers take it (services.common.messages._str): 1 to ``max_chars``
    characters, not a number, keyword or container as text (what the JSON format makes of a
    value of another type in a STRING column)."""
    return (f"(CHAR_LENGTH({column}) BETWEEN 1 AND {max_chars} "
            f"AND NOT REGEXP({column}, {sql_literal(NOT_A_NAME)}))")


def exact_int(column: str, optional: bool = False) -> str:
    """An integer field read as DOUBLE (:data:`SOURCE_AS_DOUBLE`) holds an integer the readers
    accept: no fraction, no NaN or Infinity, at most :data:`MAX_EXACT_INT` in magnitude."""
    term = f"({column} = FLOOR({column}) AND ABS({column}) <= {float(MAX_EXACT_INT)!r})"
    return f"({column} IS NULL OR {term})" if optional else term


def as_bigint(column: str) -> str:
    return f"CAST({column} AS BIGINT)"


def record_checks(names: tuple[str, ...]) -> str:
    """The WHERE terms every price record passes in the job, as in the readers: names, event
    and receive times, the exchange's time when present."""
    terms = [name_ok(n) for n in names]
    terms += [exact_int("ts_ms"), exact_int("recv_ts_ms"), exact_int("exchange_ts_ms", True)]
    return "".join(f"\n    AND {t}" for t in terms)


def seconds(ms: int) -> str:
    """An interval literal in seconds with millisecond precision, e.g. 200 -> '0.200'."""
    return f"{ms // 1000}.{ms % 1000:03d}"


def fee_case(settings: DetectionSettings) -> str:
    """Taker fee per venue as a CASE expression; venues not configured pay the fallback fee."""
    whens = " ".join(
        f"WHEN {sql_literal(venue)} THEN CAST({fee!r} AS DOUBLE)"
        for venue, fee in sorted(settings.taker_fee_bps.items())
    )
    return f"CASE exchange {whens} ELSE CAST({FALLBACK_TAKER_FEE_BPS!r} AS DOUBLE) END"


def latency_case(column: str, settings: DetectionSettings) -> str:
    """Configured p99 feed latency (ms, BIGINT) of the venue in ``column``."""
    fallback = f"CAST({settings.default_feed_latency_ms} AS BIGINT)"
    if not settings.feed_latency_ms:
        return fallback
    whens = " ".join(
        f"WHEN {sql_literal(venue)} THEN CAST({ms} AS BIGINT)"
        for venue, ms in sorted(settings.feed_latency_ms.items())
    )
    return f"(CASE {column} {whens} ELSE {fallback} END)"


def render(name: str, **values: object) -> str:
    return Template((SQL_DIR / f"{name}.sql").read_text()).substitute(
        {k: str(v) for k, v in values.items()},
    )


def with_options(options: dict[str, str]) -> str:
    return ",\n".join(f"  {sql_literal(k)} = {sql_literal(v)}" for k, v in options.items())


def pair_expressions(buy_ask: str, buy_size: str, buy_fee_bps: str, sell_bid: str,
                     sell_size: str, sell_fee_bps: str) -> dict[str, str]:
    """One ordered pair's numbers as SQL expressions, by name: the same operations in the same
    order as services.common.spread.pair_numbers."""
    spread_usd = f"{sell_bid} - {buy_ask}"
    spread_bps = f"({spread_usd}) / {buy_ask} * 10000"
    net_bps = f"{spread_bps} - {buy_fee_bps} - {sell_fee_bps}"
    max_size = (
        f"(CASE WHEN {buy_size} IS NULL THEN {sell_size} WHEN {sell_size} IS NULL THEN "
        f"{buy_size} WHEN {buy_size} <= {sell_size} THEN {buy_size} ELSE {sell_size} END)"
    )
    return {
        "spread_usd": spread_usd,
        "spread_bps": spread_bps,
        "net_spread_bps": net_bps,
        "max_size": max_size,
        "est_profit_usd": f"({net_bps}) / 10000 * {buy_ask} * {max_size}",
    }


def pair_arithmetic(buy_ask: str, buy_size: str, buy_fee_bps: str, sell_bid: str,
                    sell_size: str, sell_fee_bps: str, indent: str = "  ",
                    prefix: str = "") -> str:
    """The select list of one ordered pair's numbers (:func:`pair_expressions`), shared by the
    window and tick paths, each named with ``prefix``."""
    columns = pair_expressions(buy_ask, buy_size, buy_fee_bps, sell_bid, sell_size, sell_fee_bps)
    return ",\n".join(f"{indent}{expr} AS {prefix}{name}" for name, expr in columns.items())


def rule_over(settings: DetectionSettings, spread_usd: str, spread_bps: str,
              net_spread_bps: str) -> str:
    """DESIGN's alert rule over three SQL expressions, as services.common.spread.passes_rule
    states it."""
    rule = (f"(({spread_usd}) >= CAST({settings.min_spread_usd!r} AS DOUBLE) "
            f"AND ({spread_bps}) < CAST({settings.max_spread_bps!r} AS DOUBLE)")
    if settings.min_net_bps is not None:
        rule += f" AND ({net_spread_bps}) >= CAST({settings.min_net_bps!r} AS DOUBLE)"
    return rule + ")"


def alert_rule(settings: DetectionSettings, prefix: str = "") -> str:
    """The alert rule over the columns spread_usd, spread_bps and net_spread_bps (each named
    with ``prefix``)."""
    return rule_over(settings, f"{prefix}spread_usd", f"{prefix}spread_bps",
                     f"{prefix}net_spread_bps")


def executable_columns(settings: DetectionSettings, buy_ask_px: str, sell_bid_px: str,
                       buy_fee_bps: str, sell_fee_bps: str, indent: str = "  ", *,
                       ladder: bool = True) -> str:
    """The select list of executable_usd, executable_size and executable_profit_usd:
    services.common.spread.executable as one CASE per column over the configured sizes,
    largest first. ``buy_ask_px`` / ``sell_bid_px`` name the per-size columns with ``{i}`` for
    the position (null where a side has no price, or no ladder of the configured sizes).

    At size N: q = N / ask_px(N) on both sides of :func:`pair_expressions`; its max_size is q
    itself, so the profit is written over q directly (the same double). ``ladder`` False (seed
    mode's window path: trade averages have no book): all null.
    """
    positions = depth_positions(settings) if ladder else []
    if not positions:
        return ",\n".join(f"{indent}CAST(NULL AS DOUBLE) AS {c}" for c in EXECUTABLE_COLUMNS)
    whens: dict[str, list[str]] = {c: [] for c in EXECUTABLE_COLUMNS}
    for i, notional_usd in reversed(positions):
        ask, bid = buy_ask_px.format(i=i), sell_bid_px.format(i=i)
        notional = f"CAST({float(notional_usd)!r} AS DOUBLE)"
        size = f"({notional} / {ask})"
        n = pair_expressions(ask, size, buy_fee_bps, bid, size, sell_fee_bps)
        passes = (f"{ask} IS NOT NULL AND {bid} IS NOT NULL AND "
                  f"{rule_over(settings, n['spread_usd'], n['spread_bps'], n['net_spread_bps'])}")
        values = (notional, size, f"({n['net_spread_bps']}) / 10000 * {ask} * {size}")
        for column, value in zip(EXECUTABLE_COLUMNS, values, strict=True):
            whens[column].append(f"WHEN {passes} THEN {value}")
    return ",\n".join(
        f"{indent}CASE {' '.join(cases)} END AS {column}" for column, cases in whens.items())


def depth_select(settings: DetectionSettings, indent: str = "  ") -> str:
    """valid_quotes' per-size ladder columns, each set only where ``depth_ok``."""
    return "".join(
        f",\n{indent}CASE WHEN depth_ok THEN depth[{i}].{side}_px END AS {depth_px(side, i)}"
        for i, _ in depth_positions(settings) for side in ("bid", "ask"))


def depth_ok(settings: DetectionSettings) -> str:
    """Whether a quote's ladder has exactly the configured sizes, in order
    (services.common.spread.ladder_matches)."""
    positions = depth_positions(settings)
    if not positions:
        return "FALSE"
    sizes = " AND ".join(f"depth[{i}].notional_usd = CAST({float(n)!r} AS DOUBLE)"
                         for i, n in positions)
    return (f"(depth IS NOT NULL AND CARDINALITY(depth) = {len(positions)} AND {sizes})")


#: Ladder positions valid_quotes checks whatever the configuration (ARB_DEPTH_NOTIONALS_USD
#: allows six sizes), so a hostile ladder is rejected as the reference rejects it, also with
#: ``none`` configured.
CHECKED_DEPTH_POSITIONS = 6


def depth_valid(settings: DetectionSettings) -> str:
    """valid_quotes' WHERE terms for the first ladder positions: each absent, or a positive
    notional with prices null or positive (services.common.messages.check_depth)."""
    terms = [f"\n    AND (depth IS NULL OR CARDINALITY(depth) <= {MAX_DEPTH_LEVELS})"]
    for i in range(1, max(CHECKED_DEPTH_POSITIONS, len(settings.depth_notionals_usd)) + 1):
        level = f"depth[{i}]"
        increasing = f" AND {level}.notional_usd > depth[{i - 1}].notional_usd" if i > 1 else ""
        terms.append(
            f"\n    AND (depth IS NULL OR CARDINALITY(depth) < {i} OR ({level}.notional_usd > 0"
            f" AND {level}.notional_usd < {MAX_DEPTH_VALUE}{increasing}"
            f" AND ({level}.bid_px IS NULL OR {level}.bid_px > 0 AND {level}.bid_px < "
            f"{MAX_DEPTH_VALUE})"
            f" AND ({level}.ask_px IS NULL OR {level}.ask_px > 0 AND {level}.ask_px < "
            f"{MAX_DEPTH_VALUE})))")
    return "".join(terms)


#: The name fields of quotes and trades (trades' side is checked against its values).
QUOTE_NAMES = ("exchange", "symbol", "venue_symbol", "quote_ccy")


def view_statements(settings: DetectionSettings) -> list[str]:
    """The views of both paths, in dependency order.

    Window path: both modes define ``window_quotes`` (one row per window, symbol and venue);
    the pair and alert views after it are shared. Tick path: from ``valid_quotes`` (quotes in
    both modes) to ``tick_episode_rows``.
    """
    window_end = epoch_ms("b.window_end")
    window = seconds(settings.window_ms)
    fees, max_price = fee_case(settings), repr(MAX_PRICE_USD)
    valid_quotes = render("view_valid_quotes", fee_case=fees, max_price=max_price,
                          max_size=MAX_DOUBLE, depth_columns=depth_select(settings),
                          depth_ok=depth_ok(settings), depth_valid=depth_valid(settings),
                          record_checks=record_checks(QUOTE_NAMES))
    # Seed mode's window prices are trade averages: no ladder on the window path.
    positions = [] if settings.mode == "seed" else depth_positions(settings)
    window_depth = "".join(f" {depth_px(side, i)}," for i, _ in positions
                           for side in ("bid", "ask"))
    if settings.mode == "seed":
        per_window = [valid_quotes,
                      render("view_seed_window_prices", fee_case=fees, max_price=max_price,
                             window_seconds=window, depth_columns="", max_size=MAX_DOUBLE,
                             record_checks=record_checks(QUOTE_NAMES),
                             trade_id_ok=f"CHAR_LENGTH(trade_id) <= {MAX_NAME_CHARS}")]
    else:
        per_window = [valid_quotes, render("view_window_quotes", window_seconds=window,
                                           depth_columns=window_depth)]
    # Always true (a ladder price is positive or null): both sides of the join then read the
    # same columns, as the other terms there make them do.
    join_terms = "".join(
        f"\n  AND COALESCE(b.{depth_px(side, i)}, 0) >= 0 AND COALESCE(s.{depth_px(side, i)}, 0)"
        " >= 0" for i, _ in positions for side in ("bid", "ask"))
    return [
        *per_window,
        render(
            "view_pair_spreads",
            window_start_ms=epoch_ms("b.window_start"),
            window_end_ms=window_end,
            pair_arithmetic=pair_arithmetic("b.ask", "b.ask_size", "b.fee_bps", "s.bid",
                                            "s.bid_size", "s.fee_bps"),
            executable_columns=executable_columns(settings, "b.ask_px_{i}", "s.bid_px_{i}",
                                                  "b.fee_bps", "s.fee_bps",
                                                  ladder=bool(positions)),
            depth_join_terms=join_terms,
            now_ts_ms=epoch_ms("CURRENT_TIMESTAMP"),
        ),
        render("view_alert_spreads", alert_rule=alert_rule(settings)),
        *tick_view_statements(settings),
    ]


def _venue_column(venue: str, suffix: str) -> str:
    return f"`{venue}_{suffix}`"


def tick_pairs(settings: DetectionSettings) -> list[tuple[str, str]]:
    """The ordered venue pairs of the tick path; none with fewer than two venues."""
    return ordered_pairs(settings.venues)


def tick_view_statements(settings: DetectionSettings) -> list[str]:
    """The tick path's views, from every quote to the rows of its episodes (none without two
    venues to pair)."""
    pairs = tick_pairs(settings)
    if not pairs:
        return []
    book_fields = _book_fields(settings)
    venue_columns = ",\n".join(
        f"  LAST_VALUE(CASE WHEN exchange = {sql_literal(venue)} THEN {source} END) OVER w "
        f"AS {_venue_column(venue, suffix)}"
        for venue in settings.venues for suffix, source, _ in book_fields
    )
    # One LAG of a ROW of every venue column the previous evaluation reads: one accumulator
    # however many venues.
    types = {suffix: sql_type for suffix, _, sql_type in book_fields}
    book = [(_venue_column(venue, suffix), types[suffix])
            for venue in settings.venues for suffix in _PREVIOUS_FIELDS]
    previous_books = (
        f"  LAG(CAST(ROW({', '.join(c for c, _ in book)}) AS "
        f"ROW<{', '.join(f'{c} {t}' for c, t in book)}>)) OVER o AS previous_books"
    )
    selects = "\nUNION ALL\n".join(_pair_select(buy, sell, settings) for buy, sell in pairs)
    return [
        render("view_tick_books", venue_columns=venue_columns,
               venues=", ".join(sql_literal(v) for v in settings.venues)),
        render("view_tick_previous_books", previous_books=previous_books),
        render("view_tick_pairs", pair_selects=selects),
        render("view_tick_spreads", stale_ms=settings.stale_ms, alert_rule=alert_rule(settings),
               previous_alert_rule=alert_rule(settings, "previous_"),
               pair_arithmetic=pair_arithmetic("buy_ask", "buy_size", "buy_fee_bps", "sell_bid",
                                               "sell_size", "sell_fee_bps", indent="    "),
               previous_pair_arithmetic=pair_arithmetic(
                   "previous_buy_ask", "previous_buy_size", "buy_fee_bps", "previous_sell_bid",
                   "previous_sell_size", "sell_fee_bps", indent="    ", prefix="previous_"),
               executable_columns=executable_columns(
                   settings, "buy_ask_px_{i}", "sell_bid_px_{i}", "buy_fee_bps", "sell_fee_bps",
                   indent="    ")),
        render("view_tick_evaluations"),
        render("view_tick_opens", gap_ms=settings.episode_gap_ms),
        render("view_tick_episode_rows", reach_ms=settings.stale_ms + settings.episode_gap_ms),
    ]


def _pair_select(buy: str, sell: str, settings: DetectionSettings) -> str:
    """One ordered pair at a quote of either venue: the latest quotes of both, and the quotes
    its previous evaluation compared (the latest ones before this quote)."""
    def side(role: str, venue: str, price: str, size: str) -> str:
        def previous(field: str) -> str:
            return f"previous_books.{_venue_column(venue, field)}"
        ladder = "".join(
            f"NULLIF({_venue_column(venue, depth_px(price, i))}, -1.0) AS "
            f"{role}_{depth_px(price, i)}, "
            for i, _ in depth_positions(settings))
        return (
            f"{ladder}"
            f"{_venue_column(venue, 'ts_ms')} AS {role}_ts_ms, "
            f"{_venue_column(venue, 'recv_ts_ms')} AS {role}_recv_ts_ms, "
            f"{_venue_column(venue, price)} AS {role}_{price}, "
            f"NULLIF({_venue_column(venue, size)}, -1.0) AS {role}_size, "
            f"CAST({settings.fee_bps(venue)!r} AS DOUBLE) AS {role}_fee_bps,\n    "
            f"{previous('ts_ms')} AS previous_{role}_ts_ms, "
            f"{previous('seq')} AS previous_{role}_seq, "
            f"{previous(price)} AS previous_{role}_{price}, "
            f"NULLIF({previous(size)}, -1.0) AS previous_{role}_size"
        )
    return (
        f"SELECT symbol, {sql_literal(buy)} AS buy_exchange, {sql_literal(sell)} AS "
        f"sell_exchange, tick_ts_ms, event_time, proc_time,\n    "
        f"{side('buy', buy, 'ask', 'ask_size')},\n    {side('sell', sell, 'bid', 'bid_size')}\n"
        f"FROM tick_previous_books WHERE exchange IN ({sql_literal(buy)}, {sql_literal(sell)})"
    )


def closed_episodes_query(settings: DetectionSettings) -> str:
    """Closed episodes: a session window per episode over its evaluations."""
    return render("select_closed_episodes",
                  session_gap_seconds=seconds(settings.episode_session_gap_ms))


def insert_statements(settings: DetectionSettings) -> list[str]:
    """INSERTs for the three sinks; run together as one statement set."""
    columns = ", ".join(SPREAD_COLUMNS)
    window_path = [
        render("insert_spreads", spread_columns=columns),
        render("insert_alerts", spread_columns=columns),
    ]
    if not tick_pairs(settings):
        return window_path
    return [
        *window_path,
        render(
            "insert_episodes",
            buy_latency_ms=latency_case("buy_exchange", settings),
            sell_latency_ms=latency_case("sell_exchange", settings),
            execution_ms=f"CAST({settings.execution_ms} AS BIGINT)",
            now_ts_ms=epoch_ms("CURRENT_TIMESTAMP"),
            closed_episodes=closed_episodes_query(settings),
        ),
    ]


#: The Kafka consumer's fetch sizes (bytes) for the prices topic. At the Java default of 1 MiB
#: per partition a larger record never arrives from Tansu, and the job's reading stops there
#: for good (tests/faults/test_hostile_records.py, 1 MiB values); a record up to this size is
#: read, and then dropped by valid_quotes (names longer than MAX_NAME_CHARS).
MAX_FETCH_BYTES = 64 << 20
FETCH_OPTIONS = {
    "properties.max.partition.fetch.bytes": str(MAX_FETCH_BYTES),
    "properties.fetch.max.bytes": str(MAX_FETCH_BYTES),
}


def source_statement(settings: DetectionSettings, options: dict[str, str]) -> str:
    """The prices table; ``options`` (flink.job.source_options) win over :data:`FETCH_OPTIONS`."""
    return render(
        "source_prices",
        watermark_seconds=seconds(settings.watermark_ms),
        max_exact_int=repr(float(MAX_EXACT_INT)),
        source_options=with_options({**FETCH_OPTIONS, **options}),
    )


def sink_statement(table: str, options: dict[str, str]) -> str:
    return render("sink_spreads", table=table, sink_options=with_options(options))


def episode_sink_statement(table: str, options: dict[str, str]) -> str:
    return render("sink_episodes", table=table, sink_options=with_options(options))
