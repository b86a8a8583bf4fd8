"""Streamlit page, run by ``python -m services.dashboard`` (or ``streamlit run`` on this file).

One page a trader keeps open: feed health, the alert numbers, a live spread chart per venue
pair and the alert history. The history comes from the alerter's SQLite store, so it survives
restarts of either service; the live parts come from one background Kafka reader per server
process (``st.cache_resource``), shared by every browser tab. Filters sit in the sidebar; only
the fragment below them reruns on its timer, so the page neither flickers nor loses its scroll
position while it refreshes itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from services.common.clock import now_ts_ms
from services.common.config import DashboardSettings, KafkaSettings
from services.common.exceptions import ConfigError, HistoryUnavailable
from services.common.history.reads import HistoryOptions, utc_day_start_ts_ms
from services.common.history.schema import DELIVERED, FAILED, SUPPRESSED
from services.dashboard import data
from services.dashboard.live import LiveSnapshot, Shared, release, shared_for
from services.dashboard.metrics import serve_metrics

st.set_page_config(page_title="Arbitrage alerts", layout="wide")

try:
    settings = DashboardSettings.from_env()
    kafka = KafkaSettings.from_env()
except ConfigError as exc:
    st.title("Arbitrage alerts")
    st.error(f"Invalid configuration: {exc}")
    st.stop()


@st.cache_resource(show_spinner=False, on_release=release)
def shared(settings: DashboardSettings, kafka: KafkaSettings) -> Shared:
    """One reader and one metrics endpoint per server process, not per tab."""
    resources = shared_for(settings, kafka)
    serve_metrics(settings.metrics_port, ready=resources.reader.alive)
    return resources


resources = shared(settings, kafka)
T = TypeVar("T")
run_context = get_script_run_ctx()
if run_context is not None:
    resources.sessions.touch(run_context.session_id)


def read_history(read: Callable[[], T]) -> T | HistoryUnavailable:
    """One read of the history store; a store that cannot be read (locked, corrupt, ...) is
    counted and returned for the page to say what is wrong, never raised as a traceback."""
    try:
        return read()
    except sqlite3.Error as exc:  # HistoryUnavailable is one
        problem = data.history_problem(exc, settings.history_db)
        resources.metrics.history_errors.labels(problem.reason).inc()
        return problem


# -- header and sidebar ---------------------------------------------------------------------------

title, grafana = st.columns([5, 1], vertical_alignment="bottom")
title.title("Arbitrage alerts")
grafana.link_button("Open Grafana", settings.grafana_url, icon=":material/monitoring:",
                    help="Live spread and pipeline health dashboards")

with st.sidebar:
    st.header("Filters")
    stored = read_history(lambda: data.load_options(settings.history_db))
    if isinstance(stored, HistoryUnavailable):  # said once, in the page's body
        stored = HistoryOptions((), ())
    first_snapshot = resources.state.snapshot()
    symbols = st.multiselect(
        "Symbol",
        data.choices(stored.symbols, data.live_symbols(first_snapshot),
                     st.session_state.get("symbols", ())),
        key="symbols", placeholder="All symbols",
    )
    pairs = st.multiselect(
        "Venue pair (buy → sell)",
        data.choices([data.pair_label(*p) for p in stored.pairs], data.live_pairs(first_snapshot),
                     st.session_state.get("pairs", ())),
        key="pairs", placeholder="All pairs",
    )
    time_range = st.selectbox("Time range (window end)", list(data.TIME_RANGES),
                              index=list(data.TIME_RANGES).index(data.ALL_TIME), key="time_range")
    min_net_bps = st.number_input("Minimum net bps", value=None, step=1.0, key="min_net_bps",
                                  placeholder="Any", help="Spread net of both taker fees")
    measure = st.radio("Chart shows", list(data.MEASURES), key="measure", horizontal=True)
    st.caption(
        f"Alert history: `{settings.history_db}`. Live data: Kafka "
        f"`{kafka.bootstrap_servers}`. Refreshes every {settings.refresh_seconds:g} s.",
    )

filters = data.Filters(
    symbols=tuple(symbols), pairs=tuple(pairs), time_range=time_range,
    min_net_bps=min_net_bps, measure=measure,
)


# -- the self-refreshing part ---------------------------------------------------------------------

def kafka_notice(snapshot: LiveSnapshot) -> None:
    if not snapshot.kafka_checked:
        st.info(f"Connecting to Kafka at {snapshot.bootstrap_servers} ...",
                icon=":material/hourglass_top:")
    elif not snapshot.kafka_connected:
        st.warning(
            f"Live data unavailable: {snapshot.kafka_problem or 'not connected to Kafka'}. "
            "The alert history below is still current; the chart and feed status resume "
            "when Kafka is back.",
            icon=":material/cloud_off:",
        )
    elif snapshot.kafka_problem:
        st.info(f"Kafka connected, {snapshot.kafka_problem}.", icon=":material/hourglass_top:")


def feed_strip(snapshot: LiveSnapshot, page_ts_ms: int) -> None:
    health = data.feed_health(settings.venues, snapshot.venues, settings.stale_ms, page_ts_ms)
    columns = st.columns(len(health) + 1, border=True)
    kafka_state = (":green[● connected]" if snapshot.kafka_connected
                   else ":red[● unreachable]" if snapshot.kafka_checked else ":gray[○ connecting]")
    columns[0].markdown(f"**Kafka**  \n{kafka_state}")
    for column, feed in zip(columns[1:], health, strict=True):
        if feed.age_ms is None:
            state = ":gray[○ no data]"
        elif feed.connected:
            state = f":green[● connected] · last message {data.duration_text(feed.age_ms)} ago"
        else:
            state = f":red[● silent] · last message {data.duration_text(feed.age_ms)} ago"
        column.markdown(f"**{feed.venue}**  \n{state}")


def summary_numbers(view: data.AlertsView, page_ts_ms: int) -> None:
    summary = view.summary
    best = summary.best
    cells = st.columns(7)
    cells[0].metric("Alerts today", f"{summary.today:,}", help="Window ended today (UTC)")
    cells[1].metric(
        "Best net spread",
        "n/a" if summary.max_net_spread_bps is None else f"{summary.max_net_spread_bps:+.1f} bps",
        help=None if best is None else (
            f"{best.symbol} {data.pair_label(best.buy_exchange, best.sell_exchange)}, window "
            f"ending {data.utc(best.window_end_ms):%Y-%m-%d %H:%M:%S} UTC"
        ),
    )
    cells[2].metric("Total est. profit", data.money(summary.total_est_profit_usd),
                    help="Sum over the matching alerts of net spread x size shown")
    cells[3].metric("Delivered to Discord", f"{summary.by_status[DELIVERED]:,}")
    cells[4].metric("Suppressed (cooldown)", f"{summary.by_status[SUPPRESSED]:,}")
    cells[5].metric("Failed", f"{summary.by_status[FAILED]:,}")
    cells[6].metric("Last alert", data.age_text(summary.last_window_end_ts_ms, page_ts_ms))


def spread_chart(snapshot: LiveSnapshot) -> None:
    st.subheader("Live spread per venue pair")
    by_symbol = data.chart_rows(snapshot.spreads, filters)
    if not by_symbol:
        st.info("No spreads yet: waiting for windows on the spreads topic "
                f"`{kafka.spreads_topic}`.")
        return
    columns = st.columns(min(2, len(by_symbol)))
    for index, (symbol, rows) in enumerate(by_symbol.items()):
        frame = pd.DataFrame(rows)
        lines = alt.Chart(frame, title=symbol).mark_line(interpolate="step-after").encode(
            x=alt.X("Window end (UTC):T", title="window end (UTC)",
                    scale=alt.Scale(type="utc"), axis=alt.Axis(format="%H:%M:%S")),
            y=alt.Y(f"{filters.measure}:Q", title=filters.measure),
            color=alt.Color("Pair:N", scale=alt.Scale(scheme="tableau10"),
                            legend=alt.Legend(orient="bottom", title=None)),
            tooltip=[alt.Tooltip("Window end (UTC):T", format="%H:%M:%S.%L", formatType="utc"),
                     "Pair:N", alt.Tooltip(f"{filters.measure}:Q", format=",.2f")],
        )
        breakeven = alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(
            strokeDash=[4, 4], color="gray").encode(y="zero:Q")
        with columns[index % len(columns)]:
            st.altair_chart(lines + breakeven, width="stretch", height=280)


def executable_columns() -> dict[str, object]:
    """Column formats of the depth-sized numbers: dollars whole, sizes to 4 decimals."""
    formats = {"Executable $": "dollar", "Executable size": "%.4f",
               "Executable profit $": "%.2f"}
    return {name: st.column_config.NumberColumn(format=fmt, help=data.EXECUTABLE_HELP[name])
            for name, fmt in formats.items()}


def episode_table(rows: list[dict[str, object]]) -> None:
    st.subheader("Opportunity episodes")
    if not rows:
        st.info("No episodes match the filters yet.")
        return
    open_now = [r for r in rows if r["State"] == "open"]
    if open_now:
        st.markdown(f"**Open now: {len(open_now):,}** ("
                    + ", ".join(f"{r['Symbol']} {r['Buy on']} \u2192 {r['Sell on']}"
                                for r in open_now[:5])
                    + (", ..." if len(open_now) > 5 else "") + ")")
    capturable = sum(1 for r in rows if r["Capturable"])
    st.caption(f"{len(rows):,} episodes, {capturable:,} capturable: lasted, from the opening "
               "quote to the end of the last pass, at least the slower venue's p99 feed latency "
               "plus the execution time. Newest first.")
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={
            "Start (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss.SSS"),
            "Duration ms": st.column_config.NumberColumn(format="%d"),
            "Capturable": st.column_config.CheckboxColumn(),
            "Peak net bps": st.column_config.NumberColumn(format="%.1f"),
            "Mean net bps": st.column_config.NumberColumn(format="%.1f"),
            "Peak est. profit $": st.column_config.NumberColumn(format="%.2f"),
            **executable_columns(),
        },
    )


def alert_table(view: data.AlertsView) -> None:
    st.subheader("Alert history")
    summary = view.summary
    if summary.total == 0:
        if not view.store_exists:
            st.info("No alerts yet (the alerter has not created the history yet).")
        elif view.options.symbols:
            st.info("No alerts match the filters.")
        else:
            st.info("No alerts yet.")
        return
    st.caption(f"{summary.total:,} alerts match the filters, newest first; showing "
               f"{len(view.rows):,}.")
    st.dataframe(
        view.rows,
        hide_index=True,
        width="stretch",
        column_config={
            "Window end (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss.SSS"),
            "Buy ask $": st.column_config.NumberColumn(format="%.4f"),
            "Sell bid $": st.column_config.NumberColumn(format="%.4f"),
            "Spread $": st.column_config.NumberColumn(format="%.4f"),
            "Spread bps": st.column_config.NumberColumn(format="%.1f"),
            "Net bps": st.column_config.NumberColumn(format="%.1f"),
            "Est. profit $": st.column_config.NumberColumn(format="%.2f"),
            **executable_columns(),
        },
    )


@st.fragment(run_every=settings.refresh_seconds)
def live_page() -> None:
    page_ts_ms = now_ts_ms()
    snapshot = resources.state.snapshot(page_ts_ms)
    view = read_history(lambda: data.load_view(
        settings.history_db, settings.max_rows, filters.query(page_ts_ms),
        utc_day_start_ts_ms(page_ts_ms)))
    episodes = view if isinstance(view, HistoryUnavailable) else read_history(
        lambda: data.load_episodes(settings.history_db, settings.max_rows, filters, page_ts_ms))
    kafka_notice(snapshot)
    feed_strip(snapshot, page_ts_ms)
    if isinstance(view, HistoryUnavailable) or isinstance(episodes, HistoryUnavailable):
        # The live parts still render; the history parts give way to one line saying why.
        problem = view if isinstance(view, HistoryUnavailable) else episodes
        st.error(data.history_problem_text(problem), icon=":material/error:")
        spread_chart(snapshot)
        return
    summary_numbers(view, page_ts_ms)
    spread_chart(snapshot)
    episode_table(episodes)
    alert_table(view)


live_page()
