"""Durable alert history: one SQLite file, written by the alerter, read by the dashboard.

The seed's dashboard lost every alert on restart; this store keeps them. Three modules:
:mod:`.schema` (the tables, derived from the records they hold), :mod:`.store` (migrations and
the alerter's writer) and :mod:`.reads` (the dashboard's read-only queries).
"""

from services.common.history.reads import (
    ALL,
    AlertQuery,
    HistoryOptions,
    HistorySummary,
    open_episode_counts,
    open_reader,
    options,
    read_counts,
    read_episodes,
    read_recent,
    recent_alerts,
    recent_episodes,
    status_counts,
    summarize,
    utc_day_start_ts_ms,
)
from services.common.history.schema import (
    ALERTS,
    BUSY_TIMEOUT_MS,
    CLOSED,
    DELIVERED,
    EPISODES,
    FAILED,
    NO_WEBHOOK,
    OPENED,
    PENDING,
    SKIPPED,
    STATUSES,
    SUPPRESSED,
    AlertRecord,
    EpisodeRecord,
    StoreSchemaError,
)
from services.common.history.store import (
    MAX_ERROR_CHARS,
    SCHEMA_VERSION,
    AlertHistory,
    StoreResult,
)

__all__ = [
    "ALERTS",
    "ALL",
    "BUSY_TIMEOUT_MS",
    "CLOSED",
    "DELIVERED",
    "EPISODES",
    "FAILED",
    "MAX_ERROR_CHARS",
    "NO_WEBHOOK",
    "OPENED",
    "PENDING",
    "SCHEMA_VERSION",
    "SKIPPED",
    "STATUSES",
    "SUPPRESSED",
    "AlertHistory",
    "AlertQuery",
    "AlertRecord",
    "EpisodeRecord",
    "HistoryOptions",
    "HistorySummary",
    "StoreResult",
    "StoreSchemaError",
    "open_episode_counts",
    "open_reader",
    "options",
    "read_counts",
    "read_episodes",
    "read_recent",
    "recent_alerts",
    "recent_episodes",
    "status_counts",
    "summarize",
    "utc_day_start_ts_ms",
]
