"""The documentation stays true: the configuration page and .env.example are what the settings'
declarations make, every variable the code names is a setting, and the README's two commands
exist in the Makefile."""

from __future__ import annotations

import re

import services.common.config  # noqa: F401 - declares every setting
from services.common.settings.environment import NOT_SETTINGS, known_names
from tests.deploy.support import load_script
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
    assert sorted(used - documented - set(NOT_SETTINGS)) == []


def test_every_variable_the_code_names_is_a_setting() -> None:
    """A name written in code but read around the settings would escape their checks."""
    known = known_names() | set(NOT_SETTINGS)
    assert sorted(variables_read_by_code() - known) == []


def test_configuration_page_and_env_example_are_current() -> None:
    generator = load_script(REPO / "scripts" / "generate_config_docs.py")
    assert generator.main(["--check"]) == 0, "run python scripts/generate_config_docs.py"
    # The check can fail: a table edited by hand is not what the declarations make.
    text = CONFIG_DOC.read_text()
    edited = text.replace("| `ARB_WINDOW_MS` | `1000`", "| `ARB_WINDOW_MS` | `2000`")
    assert edited != text
    assert generator.render_config_doc(edited) == text


def test_readme_commands_are_make_targets() -> None:
    readme = (REPO / "README.md").read_text()
    makefile = (REPO / "Makefile").read_text()
    commands = re.findall(r"^make (\w+)", readme, flags=re.MULTILINE)
    assert {"start", "test"} <= set(commands)
    for target in commands:
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci
