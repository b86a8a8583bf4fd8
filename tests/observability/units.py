"""The unit a PromQL expression's values are in, read from the names it uses.

Metric names carry their unit as a suffix (``_seconds``, ``_usd``, ``_bps``, ``_records``,
``_per_second``; Flink's ``...PerSecond``), recording rules as level:metric:operations carry the
metric's unit unless the operation changes it (``rate5m``: per second, ``increase1h``: a count),
and thresholds (``arb:threshold:<name>``) carry it in their name. A ``rate()`` makes anything
per second, ``increase()`` and ``count()`` make a count, and ``* 60`` turns per second into per
minute. Anything else is a plain number.
"""

from __future__ import annotations

import re

from tests.observability.contract import METRIC_NAME, RECORDING_NAME, family

SECONDS = "seconds"
USD = "usd"
BPS = "bps"
PER_SECOND = "per_second"
PER_MINUTE = "per_minute"
RECORDS = "records"
COUNT = "count"

#: Grafana's unit ids for each unit; a count or plain number may be shown as either id.
GRAFANA_UNITS: dict[str, frozenset[str]] = {
    SECONDS: frozenset({"s"}),
    USD: frozenset({"currencyUSD"}),
    BPS: frozenset({"suffix: bps"}),
    PER_SECOND: frozenset({"ops"}),
    PER_MINUTE: frozenset({"opm"}),
    RECORDS: frozenset({"short", "none"}),
    COUNT: frozenset({"short", "none"}),
}

_SUFFIXES = (
    ("_per_second", PER_SECOND), ("PerSecond", PER_SECOND), ("_seconds", SECONDS),
    ("_usd", USD), ("_bps", BPS), ("_records", RECORDS),
)
_COUNTING = re.compile(r"\b(?:increase|count)\s*(?:by\s*\([^)]*\)\s*|without\s*\([^)]*\)\s*)?\(")
_RATE = re.compile(r"\b(?:i?rate)\s*\(")
_PER_MINUTE = re.compile(r"\*\s*60\b")


def metric_unit(metric: str) -> str:
    """The unit a metric (family) name states; COUNT when it states none."""
    for suffix, unit in _SUFFIXES:
        if metric.endswith(suffix):
            return unit
    return COUNT


def name_unit(name: str) -> str:
    """The unit of one series name: a metric, a recording rule or a threshold."""
    if ":" not in name:
        return metric_unit(family(name))
    _, metric, operation = name.split(":")
    if metric == "threshold":
        return metric_unit(operation)
    if operation.startswith("rate"):
        return PER_SECOND
    if operation.startswith("increase"):
        return COUNT
    return metric_unit(metric)


def names_in(expr: str) -> list[str]:
    return RECORDING_NAME.findall(expr) + METRIC_NAME.findall(expr)


def expr_unit(expr: str) -> str:
    """The unit of an expression's values; ValueError when its names disagree."""
    if _COUNTING.search(expr):
        units = {COUNT}
    elif _RATE.search(expr):
        units = {PER_SECOND}
    else:
        units = {name_unit(name) for name in names_in(expr)} or {COUNT}
    if len(units) != 1:
        raise ValueError(f"names of different units {sorted(units)} in {expr!r}")
    (unit,) = units
    if _PER_MINUTE.search(expr):
        if unit != PER_SECOND:
            raise ValueError(f"* 60 of {unit}, not of a rate, in {expr!r}")
        return PER_MINUTE
    return unit
