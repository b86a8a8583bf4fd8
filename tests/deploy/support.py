"""Read compose.yaml, .env.example, the Dockerfiles and .dockerignore the way Docker does, without
Docker: compose's variable interpolation, Dockerfile instructions, .dockerignore matching."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from tests.helpers import REPO

COMPOSE_FILE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERIGNORE = REPO / ".dockerignore"
CONFIG_DOC = REPO / "docs" / "configuration.md"
PROMETHEUS_COMPOSE = REPO / "prometheus" / "prometheus.compose.yml"

#: A value for the one variable compose requires, to render the file as a user with a .env would.
TEST_GRAFANA_PASSWORD = "test-only-password"  # noqa: S105 - a throwaway value for rendering

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))",
)
_ENV_LINE = re.compile(r"^\s*(?P<comment>#\s*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


def load_script(path: Path) -> ModuleType:
    """Import a script (not a package: docker/'s, scripts/') as module ``<folder>_<name>``,
    once."""
    name = f"{path.parent.name}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` whose variable is unset or empty, as compose reports it."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one string: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e},
    ${VAR?e}, ${VAR:+a}, ${VAR+a}."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        is_set, non_empty = value is not None, bool(value)
        if op == ":-":
            return value if non_empty else arg  # type: ignore[return-value]
        if op == "-":
            return value if is_set else arg  # type: ignore[return-value]
        if op in {":?", "?"}:
            if (op == ":?" and not non_empty) or (op == "?" and not is_set):
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return value  # type: ignore[return-value]
        if op == ":+":
            return arg if non_empty else ""
        if op == "+":
            return arg if is_set else ""
        return value or ""

    return _VARIABLE.sub(replace, text)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    """Interpolate every string value (not keys, as compose does) of a parsed YAML tree."""
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def variables_in(text: str) -> set[str]:
    """Every variable a compose file refers to (``$$`` escapes are not variables)."""
    return {m["braced"] or m["bare"] for m in _VARIABLE.finditer(text) if not m["escaped"]}


def raw_compose() -> dict[str, Any]:
    """compose.yaml parsed, anchors and merge keys resolved, variables not yet interpolated."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> dict[str, tuple[str, bool]]:
    """Every variable named in .env.example: name -> (value, set). Commented lines show defaults."""
    names: dict[str, tuple[str, bool]] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ENV_LINE.match(line)
        if match:
            names[match["name"]] = (match["value"].strip(), not match["comment"])
    return names


def dotenv_from_example(**overrides: str) -> dict[str, str]:
    """The environment compose sees with .env copied from .env.example, plus ``overrides``."""
    env = {name: value for name, (value, is_set) in env_example().items() if is_set}
    env.update(overrides)
    return env


def rendered_compose(**overrides: str) -> dict[str, Any]:
    """compose.yaml as `docker compose config` would use it with the example .env."""
    env = dotenv_from_example(GRAFANA_ADMIN_PASSWORD=TEST_GRAFANA_PASSWORD, **overrides)
    return interpolate_tree(raw_compose(), env)


def documented_variables(expand_venues: bool = False) -> set[str]:
    """The variables docs/configuration.md lists; ``ARB_<VENUE>_...`` kept as written, or with
    ``expand_venues`` one per venue the producer knows."""
    names = set(re.findall(r"^\| `([A-Z][A-Z0-9_<>]*)` \|", CONFIG_DOC.read_text(),
                           flags=re.MULTILINE))
    if not expand_venues:
        return names
    from services.producer.venues import VENUES

    expanded = set()
    for name in names:
        if "<VENUE>" in name:
            expanded |= {name.replace("<VENUE>", venue.upper()) for venue in VENUES}
        else:
            expanded.add(name)
    return expanded


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def container_ports(service: dict[str, Any]) -> set[int]:
    """Ports the service listens on: the container side of `ports`, and `expose`."""
    ports = {int(str(port).split("/")[0]) for port in service.get("expose", [])}
    for spec in service.get("ports", []):
        if isinstance(spec, dict):
            ports.add(int(spec["target"]))
        else:
            ports.add(int(str(spec).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port for the short `ports` syntax (ip:host:container)."""
    published = {}
    for spec in service.get("ports", []):
        parts = str(spec).split("/")[0].split(":")
        published[int(parts[-1])] = int(parts[-2])
    return published


def healthcheck_argv(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    return list(test)


# --- Dockerfiles -----------------------------------------------------------------------------


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Dockerfile:
    path: Path
    args: dict[str, str]  # ARG defaults declared before the first FROM
    stages: list[Stage]

    def copies(self) -> list[tuple[Stage, dict[str, str], list[str], str]]:
        """Every COPY/ADD: (stage, flags, sources, destination)."""
        found = []
        for stage in self.stages:
            for keyword, rest in stage.instructions:
                if keyword not in {"COPY", "ADD"}:
                    continue
                words = shlex.split(rest)
                flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
                operands = [w for w in words if not w.startswith("--")]
                found.append((stage, flags, operands[:-1], operands[-1]))
        return found


def logical_lines(text: str) -> list[str]:
    """Dockerfile lines with comments dropped and backslash continuations joined."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def parse_dockerfile(path: Path) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.strip().partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = rest.split()
            image = interpolate(words[0], args)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=image, name=name))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return Dockerfile(path=path, args=args, stages=stages)


# --- .dockerignore ---------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore glob: * and ? stay within a path segment, ** crosses them."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[re.Pattern[str], bool]]:
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line.lstrip("!").strip().lstrip("/").removeprefix("./").rstrip("/")
        rules.append((_pattern_regex(pattern), exception))
    return rules


def ignored(relative: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Whether Docker leaves ``relative`` out of the build context: the last rule matching the
    path or one of its parent folders decides."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for regex, exception in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not exception
    return excluded
