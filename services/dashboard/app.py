"""Streamlit page of the alert history: ``streamlit run services/dashboard/app.py``.

The history lives in the alerter's SQLite store, so the page survives restarts of either
service (the seed kept alerts in the page's memory). Only the alerts fragment reruns on its
timer, so the page does not flicker or lose scroll position while it refreshes itself.
"""

from __future__ import annotations

import time

import streamlit as st

from services.common.config import DashboardSettings
from services.common.exceptions import ConfigError
from services.dashboard.data import age_text, load_view

st.set_page_config(page_title="Arbitrage alerts", layout="wide")
st.title("Arbitrage alerts")

try:
    settings = DashboardSettings.from_env()
except ConfigError as exc:
    st.error(f"Invalid configuration: {exc}")
    st.stop()

st.caption(
    f"Alert history from `{settings.history_db}`, newest first, refreshed every "
    f"{settings.refresh_seconds:g} s. Live spreads and pipeline health: "
    f"[Grafana]({settings.grafana_url}).",
)


@st.fragment(run_every=settings.refresh_seconds)
def alerts_view() -> None:
    view = load_view(settings.history_db, settings.max_rows)
    summary = view.summary
    if summary.total == 0:
        where = "" if view.store_exists else " (the alerter has not created the history yet)"
        st.info(f"No alerts yet{where}.")
        return

    now_ms = time.time_ns() // 1_000_000
    total, delivered, failed, recorded, last = st.columns(5)
    total.metric("Alerts", f"{summary.total:,}")
    delivered.metric("Delivered to Discord", f"{summary.by_status['delivered']:,}")
    failed.metric("Failed", f"{summary.by_status['failed']:,}")
    recorded.metric("Recorded only (no webhook)", f"{summary.by_status['no_webhook']:,}")
    last.metric("Last alert", age_text(summary.last_window_end_ms, now_ms))
    if summary.max_spread_usd is not None and summary.max_net_spread_bps is not None:
        st.caption(
            f"Largest spread ${summary.max_spread_usd:,.2f}; best net "
            f"{summary.max_net_spread_bps:.1f} bps. Showing the newest {len(view.rows):,}.",
        )

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
        },
    )


alerts_view()
