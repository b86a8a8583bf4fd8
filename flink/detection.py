"""Build the detection statements from configuration: the logic, separate from the wiring.

The SQL lives in ``flink/sql/*.sql``, one statement per file, with ``$name`` placeholders
filled from :class:`DetectionSettings`; ``job.py`` only declares the Kafka tables and runs them.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from services.common.config import FALLBACK_TAKER_FEE_BPS, DetectionSettings

SQL_DIR = Path(__file__).resolve().parent / "sql"

#: A price above this is not a price (it guards against Infinity from a broken writer).
MAX_PRICE_USD = 1e12

#: Columns of the spreads and alerts sinks, in their order (pair_spreads has one more: its
#: event time for the episode pipeline).
SPREAD_COLUMNS = (
    "v", "id", "symbol", "window_start_ms", "window_end_ms", "buy_exchange", "buy_ask",
    "buy_size", "sell_exchange", "sell_bid", "sell_size", "spread_usd", "spread_bps",
    "net_spread_bps", "max_size", "est_profit_usd", "quote_age_ms", "newest_recv_ts_ms",
    "detected_ts_ms",
)

_MAX_SIZE = (
    "CASE WHEN b.ask_size IS NULL THEN s.bid_size WHEN s.bid_size IS NULL THEN b.ask_size "
    "WHEN b.ask_size <= s.bid_size THEN b.ask_size ELSE s.bid_size END"
)


def epoch_ms(column: str) -> str:
    """Epoch milliseconds of a TIMESTAMP_LTZ column (Flink has no direct cast)."""
    return f"(EXTRACT(EPOCH FROM {column}) * 1000 + EXTRACT(MILLISECOND FROM {column}))"


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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


def view_statements(settings: DetectionSettings) -> list[str]:
    """The views from the source to ordered-pair spreads, alerts and episodes, in dependency
    order.

    Both modes define ``window_quotes`` (one row per window, symbol and venue); the views after
    it are shared.
    """
    window_end = epoch_ms("b.window_end")
    window = seconds(settings.window_ms)
    fees, max_price = fee_case(settings), repr(MAX_PRICE_USD)
    if settings.mode == "seed":
        per_window = [render("view_seed_window_prices", fee_case=fees, max_price=max_price,
                             window_seconds=window)]
    else:
        per_window = [
            render("view_valid_quotes", fee_case=fees, max_price=max_price),
            render("view_window_quotes", window_seconds=window),
        ]
    return [
        *per_window,
        render(
            "view_pair_spreads",
            window_start_ms=epoch_ms("b.window_start"),
            window_end_ms=window_end,
            max_size=f"({_MAX_SIZE})",
            now_ms=epoch_ms("CURRENT_TIMESTAMP"),
        ),
        alert_view_statement(settings),
        *episode_view_statements(settings),
    ]


def alert_view_statement(settings: DetectionSettings) -> str:
    """The alert rule as a view over pair_spreads, read by the alerts sink and the episodes."""
    net = (
        "" if settings.min_net_bps is None
        else f"AND net_spread_bps >= CAST({settings.min_net_bps!r} AS DOUBLE)"
    )
    return render(
        "view_alert_spreads",
        min_spread_usd=f"CAST({settings.min_spread_usd!r} AS DOUBLE)",
        max_spread_bps=f"CAST({settings.max_spread_bps!r} AS DOUBLE)",
        net_bps_condition=net,
    )


def episode_view_statements(settings: DetectionSettings) -> list[str]:
    """Opened episodes: an alert window with no alert of its direction in the gap before it."""
    return [render("view_opened_episodes", gap_ms=settings.episode_gap_ms,
                   gap_windows=settings.episode_gap_windows)]


def closed_episodes_query(settings: DetectionSettings) -> str:
    """Closed episodes: session windows over the alerts, one session per episode.

    The session gap is one millisecond more than the largest allowed distance between window
    ends, so two alerts exactly ``episode_gap_windows`` windows apart join and one more window
    apart do not, whichever way the session operator treats touching sessions.
    """
    gap_ms = settings.episode_gap_ms
    return render("select_closed_episodes", gap_ms=gap_ms,
                  gap_windows=settings.episode_gap_windows,
                  session_gap_seconds=seconds(gap_ms + 1))


def insert_statements(settings: DetectionSettings) -> list[str]:
    """INSERTs for the three sinks; run together as one statement set."""
    columns = ", ".join(SPREAD_COLUMNS)
    return [
        render("insert_spreads", spread_columns=columns),
        render("insert_alerts", spread_columns=columns),
        render(
            "insert_episodes",
            buy_latency_ms=latency_case("buy_exchange", settings),
            sell_latency_ms=latency_case("sell_exchange", settings),
            execution_ms=f"CAST({settings.execution_ms} AS BIGINT)",
            now_ms=epoch_ms("CURRENT_TIMESTAMP"),
            closed_episodes=closed_episodes_query(settings),
        ),
    ]


def source_statement(settings: DetectionSettings, options: dict[str, str]) -> str:
    return render(
        "source_prices",
        watermark_seconds=seconds(settings.watermark_ms),
        source_options=with_options(options),
    )


def sink_statement(table: str, options: dict[str, str]) -> str:
    return render("sink_spreads", table=table, sink_options=with_options(options))


def episode_sink_statement(table: str, options: dict[str, str]) -> str:
    return render("sink_episodes", table=table, sink_options=with_options(options))
