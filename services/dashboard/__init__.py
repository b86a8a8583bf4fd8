"""Dashboard: the Streamlit view of the alert history, live spreads and feed health."""

from services.dashboard.data import COLUMNS, AlertsView, Filters, load_view, to_row
from services.dashboard.live import LiveReader, LiveSnapshot, LiveState

__all__ = [
    "COLUMNS",
    "AlertsView",
    "Filters",
    "LiveReader",
    "LiveSnapshot",
    "LiveState",
    "load_view",
    "to_row",
]
