"""Where a JSON value can be changed: the fuzzers mutate real frames one path at a time."""

from __future__ import annotations

from typing import Any


def value_paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key/index path inside ``obj`` (not the empty path of ``obj`` itself)."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out += value_paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out += value_paths(value, (*prefix, i))
    return out
