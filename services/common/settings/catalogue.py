"""The settings as one list, for the documents made from them (docs/configuration.md,
.env.example) and for the checks that every variable set around the services is one of them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticUndefined

from services.common.settings.base import Settings, doc_of, env_name, is_secret, venue_template
from services.common.settings.types import KNOWN_VENUES


@dataclass(frozen=True)
class Entry:
    """One variable: where it is documented, what it defaults to and who reads it."""

    env: str
    section: str
    default: str  # as .env.example writes it ("" = empty)
    shown: str  # as docs/configuration.md states it (markdown)
    doc: str
    details: str
    secret: bool
    readers: tuple[str, ...]  # the sections of every model that reads it

    @property
    def names(self) -> tuple[str, ...]:
        """The variable itself, or one per known venue for a ``<VENUE>`` family."""
        if "<VENUE>" not in self.env:
            return (self.env,)
        return tuple(self.env.replace("<VENUE>", venue.upper()) for venue in KNOWN_VENUES)


def env_text(value: Any) -> str:
    """A default as a user would write it in the environment."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={env_text(v)}" for k, v in value.items())
    return str(value)


def _default(field: Any) -> Any:
    if field.default is not PydanticUndefined:
        return field.default
    return field.default_factory() if field.default_factory else None


def entries(models: Iterable[type[Settings]]) -> Iterator[Entry]:
    """Every variable once, in the section of the first model that reads it."""
    models = tuple(models)
    readers: dict[str, list[str]] = {}
    for model in models:
        for field in model.model_fields.values():
            if name := env_name(field):
                readers.setdefault(name, []).append(model.SECTION)
    seen: set[str] = set()
    for model in models:
        for field in model.model_fields.values():
            name = env_name(field)
            if not name or name in seen:
                continue
            seen.add(name)
            doc, details, shown = doc_of(field)
            value = "" if venue_template(field) else env_text(_default(field))
            if not value and shown.count("`") == 2 and shown.startswith("`"):
                value = shown.strip("`")  # a default that follows a value: that value
            yield Entry(
                env=name, section=model.SECTION, default=value,
                shown=shown or (f"`{value}`" if value else "unset"),
                doc=doc, details=details or doc + ".",
                secret=is_secret(field), readers=tuple(readers[name]),
            )
