"""The process environment around the settings: ``.env`` read as Docker Compose reads it, and
the check that every ``ARB_*`` name in it is a setting.

Both ways of running (``arb``/``make start`` and ``docker compose``) read the same ``.env``, so
it must mean the same thing to both: inline comments, quotes and ``${VAR}`` as compose has them.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path

from dotenv.parser import parse_stream

from services.common.exceptions import ConfigError
from services.common.settings.types import KNOWN_VENUES

Env = Mapping[str, str]

#: ARB_* names that are not settings yet are set around the services, and by whom.
NOT_SETTINGS = {
    "ARB_TEST_MARKER": "tests/helpers.py tags the processes of one test's `arb start` with it",
    "ARB_DESIGN_DOC": "where the tests look for DESIGN.md",
    "ARB_BENCH_WATERMARK_EMIT": "bench/bench_detection.py passes it on as ARB_WATERMARK_EMIT",
}

#: Compose's interpolation: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:+alt},
#: ${VAR+alt} and $VAR.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))",
)
_SINGLE_QUOTED = re.compile(r"^\s*(?:export\s+)?[^=]*=\s*'")


def _interpolate(value: str, lookup: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        found = lookup.get(name)
        op, arg = match["op"], match["arg"] or ""
        if op == ":-":
            return found or arg
        if op == "-":
            return arg if found is None else found
        if op == ":+":
            return arg if found else ""
        if op == "+":
            return "" if found is None else arg
        return found or ""

    return _VARIABLE.sub(replace, value)


def read_dotenv(path: str | Path, environ: Env) -> dict[str, str]:
    """The ``KEY=value`` lines of ``path`` as Docker Compose reads them.

    python-dotenv parses (``export``, quotes, `` # comment`` after an unquoted value); values
    are then interpolated as compose does: from ``environ`` first, then from the lines above;
    single-quoted values stay literal. Lines that are not assignments are skipped.
    """
    values: dict[str, str] = {}
    with open(path, encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            if binding.key is None or binding.value is None:
                continue
            value = binding.value
            if not _SINGLE_QUOTED.match(binding.original.string):
                value = _interpolate(value, {**values, **environ})
            values[binding.key] = value
    return values


def load_dotenv(path: str | Path = ".env", environ: MutableMapping[str, str] | None = None) -> None:
    """Fill unset variables from ``path`` (see :func:`read_dotenv`); the real environment
    always wins. A missing file is fine: every setting has a default."""
    environ = os.environ if environ is None else environ
    if not Path(path).is_file():
        return
    for key, value in read_dotenv(path, environ).items():
        environ.setdefault(key, value)


# --- known names ---------------------------------------------------------------------------

_NAME_SOURCES: list[Iterable[str]] = []
_VENUE_TEMPLATES: list[str] = []


def declare_names(names: Iterable[str], venue_templates: Iterable[str] = ()) -> None:
    """Record the variables one settings model reads (called as each model is defined)."""
    _NAME_SOURCES.append(tuple(names))
    _VENUE_TEMPLATES.extend(venue_templates)


def _listed_venues(env: Env) -> Iterator[str]:
    for venue in (env.get("ARB_VENUES") or "").split(","):
        if venue.strip():
            yield venue.strip()


def known_names(env: Env | None = None) -> set[str]:
    """Every variable a setting reads, ``ARB_<VENUE>_*`` spelt out for the venues the producer
    knows and those listed in ``env``'s ARB_VENUES."""
    every_venue = {*KNOWN_VENUES, *_listed_venues(env or {})}
    names = {name for source in _NAME_SOURCES for name in source}
    names |= {template.replace("<VENUE>", venue.upper())
              for template in _VENUE_TEMPLATES for venue in every_venue}
    return names


def check_environment(env: Env | None = None) -> None:
    """Refuse an ``ARB_*`` variable that no setting reads: a misspelt name would otherwise be
    ignored without a word, and its setting silently keep its default."""
    env = os.environ if env is None else env
    known = known_names(env) | set(NOT_SETTINGS)
    unknown = sorted(name for name in env if name.startswith("ARB_") and name not in known)
    if not unknown:
        return
    candidates = sorted(name for name in known if name.startswith("ARB_"))
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name, candidates, n=1)
        hint = f"; did you mean {close[0]}?" if close else " (docs/configuration.md lists them)"
        problems.append(f"{name} is not a setting{hint}")
    raise ConfigError(" ".join(problems))
