"""The documentation stays true: every variable the code reads is in the configuration page,
and the README's two commands exist in the Makefile."""

from __future__ import annotations

import re

from tests.helpers import REPO

CONFIG_DOC = REPO / "docs" / "configuration.md"
ENV_NAME = re.compile(r"\"((?:ARB|KAFKA|DISCORD|DEMO)_[A-Z0-9_]+)\"")


def variables_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in [*REPO.glob("services/**/*.py"), *REPO.glob("flink/**/*.py")]:
        names.update(ENV_NAME.findall(path.read_text()))
    return names


def test_every_variable_is_documented() -> None:
    documented = set(re.findall(r"`((?:ARB|KAFKA|DISCORD|DEMO)_[A-Z0-9_<>]+)`",
                                CONFIG_DOC.read_text()))
    used = variables_read_by_code()
    assert len(used) > 20
    assert sorted(used - documented) == []


def test_readme_commands_are_make_targets() -> None:
    readme = (REPO / "README.md").read_text()
    makefile = (REPO / "Makefile").read_text()
    commands = re.findall(r"^make (\w+)", readme, flags=re.MULTILINE)
    assert {"start", "test"} <= set(commands)
    for target in commands:
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci
