"""The settings model every service's settings derive from, and the one way to declare a setting.

A setting is one pydantic field made by :func:`setting`: its variable, type, default, bounds and
one-line doc. The loader, the error messages, docs/configuration.md and .env.example all come
from that declaration (scripts/generate_config_docs.py writes the last two).
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from services.common.exceptions import ConfigError
from services.common.settings.environment import Env, check_environment, declare_names
from services.common.settings.types import venue_names

_VENUE = "<VENUE>"


def setting(
    default: Any = None, *, env: str, doc: str, details: str = "", shown: str = "",
    factory: Any = None, **bounds: Any,
) -> Any:
    """Declare one setting.

    ``env`` is its variable, ``doc`` the one line .env.example shows, ``details`` what the
    configuration reference adds, ``shown`` the default as the reference states it when the
    value alone would mislead (it follows another setting, say); ``bounds`` are pydantic's
    (``gt``, ``ge``, ``allow_inf_nan`` ...).
    """
    extra = {key: value for key, value in (("details", details), ("shown", shown)) if value}
    if factory is not None:
        return Field(default_factory=factory, alias=env, description=doc,
                     json_schema_extra=extra, **bounds)
    return Field(default, alias=env, description=doc, json_schema_extra=extra, **bounds)


def per_venue(template: str, *, doc: str, details: str = "", shown: str = "") -> Any:
    """Declare a family of settings, one per venue (``ARB_<VENUE>_WS_URL``): a dict by venue,
    read for the venues of the model's ``venues`` setting."""
    if _VENUE not in template:
        raise ValueError(f"{template} has no {_VENUE}")
    extra = {"env": template, "details": details, "shown": shown}
    return Field(default_factory=dict, description=doc,
                 json_schema_extra={k: v for k, v in extra.items() if v})


def _extra(field: FieldInfo) -> dict[str, Any]:
    return field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}


def env_name(field: FieldInfo) -> str | None:
    """The field's variable (``ARB_<VENUE>_...`` for a family); None: derived, not a setting."""
    return field.alias or _extra(field).get("env")


def venue_template(field: FieldInfo) -> str | None:
    name = env_name(field)
    return name if name and _VENUE in name else None


def doc_of(field: FieldInfo) -> tuple[str, str, str]:
    """(one-line doc, details, default as shown) of a field."""
    extra = _extra(field)
    return field.description or "", extra.get("details", ""), extra.get("shown", "")


def is_secret(field: FieldInfo) -> bool:
    annotation = field.annotation
    options = typing.get_args(annotation) or (annotation,)
    return any(isinstance(t, type) and issubclass(t, SecretStr) for t in options)


class EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment source over any mapping (the process environment, a
    test's dict, a rendered ConfigMap). Values are stripped, and blank means unset, as
    compose.yaml's ``${VAR:-}`` passes an unset variable on."""

    def __init__(self, settings_cls: type[BaseSettings], env: Env) -> None:
        self._given = {key: value.strip() for key, value in env.items()
                       if isinstance(value, str) and value.strip()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._given

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        venues = self._venues(values)
        for name, field in self.settings_cls.model_fields.items():
            template = venue_template(field)
            if template is None:
                continue
            found = {venue: self.env_vars[variable] for venue in venues
                     if (variable := template.replace(_VENUE, venue.upper())) in self.env_vars}
            if found:
                values[name] = found
        return values

    def _venues(self, values: dict[str, Any]) -> tuple[str, ...]:
        field = self.settings_cls.model_fields.get("venues")
        if field is None:
            return ()
        raw = values.get(field.alias or "venues")
        try:
            return venue_names(raw) if isinstance(raw, str) else tuple(field.default)
        except ValueError:
            return ()  # ARB_VENUES itself is reported


class Settings(BaseSettings):
    """Frozen and typed; :meth:`from_env` reads the environment, a model built in code does
    not (so a test's settings never pick up the developer's variables)."""

    model_config = SettingsConfigDict(
        frozen=True, case_sensitive=True, env_ignore_empty=True, enable_decoding=False,
        validate_by_name=True, validate_by_alias=True, extra="forbid",
    )

    #: The heading of this model's table in docs/configuration.md and .env.example.
    SECTION: ClassVar[str] = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        names = [env_name(f) for f in cls.model_fields.values()]
        declare_names([n for n in names if n and _VENUE not in n],
                      [n for n in names if n and _VENUE in n])

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], *sources: Any,
                                   **named: Any) -> tuple[Any, ...]:
        init_settings = named.get("init_settings", sources[0] if sources else None)
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Env | None = None) -> Self:
        """The settings from ``env`` (default: the process environment), checked: a
        :class:`ConfigError` names the variable, and an ARB_* name no setting reads is one."""
        env = os.environ if env is None else env
        check_environment(env)
        source = EnvironmentSource(cls, env)
        values = source()
        try:
            return cls(**values)
        except ValidationError as exc:
            raise _config_error(cls, exc, source.env_vars) from None

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated like the original (dataclasses.replace's role)."""
        return type(self)(**{**self.__dict__, **changes})

    def _default(self, name: str, value: Any) -> None:
        """A default that follows other settings, for a field the caller did not give."""
        if name not in self.model_fields_set:
            self.__dict__[name] = value  # still being validated: frozen only from the caller on

    def __str__(self) -> str:
        return f"{type(self).__name__}({describe(self)})"


def _config_error(cls: type[Settings], exc: ValidationError, env: Mapping[str, Any]) -> ConfigError:
    """``NAME=value is invalid: reason`` for each variable (a secret's value never shown)."""
    by_key = {key: f for name, f in cls.model_fields.items() for key in (name, f.alias) if key}
    problems: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        field = by_key.get(str(loc[0])) if loc else None
        if field is None:
            problems.setdefault(cls.__name__, f"{cls.__name__}: {error['msg']}")
            continue
        name = env_name(field) or str(loc[0])
        template = venue_template(field)
        if template and len(loc) > 1:
            name = template.replace(_VENUE, str(loc[1]).upper())
        reason = str(error["msg"]).removeprefix("Value error, ")
        if is_secret(field):
            problems.setdefault(name, f"{name} is invalid: {reason} (value redacted)")
        else:
            value = env.get(name, error["input"])
            problems.setdefault(name, f"{name}={value!r} is invalid: {reason}")
    return ConfigError("; ".join(problems.values()))


def masked(value: Any) -> str:
    """Show that a secret is set without showing it."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return "<unset>" if not value else "<set, redacted>"


def describe(settings: Settings) -> dict[str, Any]:
    """Settings as a dict safe to log: secrets masked."""
    fields = type(settings).model_fields
    return {name: masked(value) if is_secret(fields[name]) else value
            for name, value in settings}
