"""Copies of a record's declaration with a change, to show that a drift check notices it."""

from __future__ import annotations

from dataclasses import MISSING, Field, field, fields, make_dataclass
from typing import Any, get_type_hints


def redeclared(record: type, *, types: dict[str, Any] | None = None,
               renamed: dict[str, str] | None = None,
               extra: tuple[tuple[str, Any], ...] = ()) -> type:
    """``record`` declared again with some fields' types changed, some renamed and ``extra``
    fields added at the end; every field's metadata (wire rules, store constraints) is kept."""
    hints = get_type_hints(record)
    changed, names = types or {}, renamed or {}
    unknown = (set(changed) | set(names)) - set(hints)
    if unknown:
        raise ValueError(f"{record.__name__} has no field {sorted(unknown)}")
    spec: list[Any] = [(names.get(f.name, f.name), changed.get(f.name, hints[f.name]), _copy(f))
                       for f in fields(record)]
    spec += [(name, kind, field()) for name, kind in extra]
    copy = make_dataclass(record.__name__, spec, frozen=True, kw_only=True)
    copy.__module__ = __name__
    return copy


def _copy(original: Field[Any]) -> Any:
    if original.default is not MISSING:
        return field(default=original.default, metadata=original.metadata)
    return field(metadata=original.metadata)
