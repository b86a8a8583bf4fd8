"""Job output against the reference: the same records, field by field."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import fields
from typing import Any

from services.common.messages import Episode, Spread


def assert_same_records(actual: Sequence[Any], expected: Sequence[Any],
                        key: Callable[[Any], Hashable]) -> None:
    """Same keys, no duplicates, every field equal; doubles to 1e-12 relative (Flink may add
    in another order), detection time (the job's wall clock) only checked set."""
    got = {key(r): r for r in actual}
    assert len(got) == len(actual), "duplicate records in job output"
    want_keys = sorted(key(r) for r in expected)
    assert sorted(got) == want_keys, (set(got) ^ set(want_keys))
    for want in expected:
        have = got[key(want)]
        assert have.detected_ts_ms is not None and have.detected_ts_ms > 0
        for field in fields(want):
            if field.name == "detected_ts_ms":
                continue
            a, b = getattr(have, field.name), getattr(want, field.name)
            if isinstance(b, float) and a is not None:
                assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9), (want.id, field.name, a, b)
            else:
                assert a == b, (want.id, field.name, a, b)


def assert_same_spreads(actual: list[Spread], expected: list[Spread]) -> None:
    assert_same_records(actual, expected, key=lambda s: s.id)


def assert_same_episodes(actual: list[Episode], expected: list[Episode]) -> None:
    """An episode has two records (opened, closed) under one id."""
    assert_same_records(actual, expected, key=lambda e: (e.id, e.is_open))
