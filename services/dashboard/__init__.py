"""Dashboard: the Streamlit view of the alerter's durable alert history."""

from services.dashboard.data import COLUMNS, AlertsView, load_view, to_row

__all__ = ["COLUMNS", "AlertsView", "load_view", "to_row"]
