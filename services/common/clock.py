"""The local wall clock in epoch milliseconds: one definition for every ``*_ts_ms`` we stamp."""

from __future__ import annotations

import time


def now_ts_ms() -> int:
    """Now, in epoch ms (the unit of every ``*_ts_ms`` field and column)."""
    return time.time_ns() // 1_000_000
