"""docs/reliability.md and the tests agree: every test the table names exists (its file and its
function, read with ast, so nothing is imported or run), and every test in tests/faults/ is
named in the table, so a fault test cannot be added without saying what it proves."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers import REPO

TABLE = REPO / "docs" / "reliability.md"
#: A test as the table names it: `tests/<path>.py::<function>` (a parametrized id left off).
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[[^\]`]*\])?`")
#: A row whose test is still to be written names only its file: **planned** `tests/<path>.py`.
PLANNED_REF = re.compile(r"\*\*planned\*\*[^|]*?`(tests/[\w/]+\.py)`")


def named_tests(text: str) -> set[tuple[str, str]]:
    return {(m.group(1), m.group(2)) for m in TEST_REF.finditer(text)}


def functions_of(path: Path) -> set[str]:
    """Names of the test functions of a module: top level, or methods of its Test classes."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names |= {n.name for n in node.body
                      if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    return {n for n in names if n.startswith("test_")}


def missing_tests(text: str, root: Path = REPO) -> list[str]:
    """Tests the table names that do not exist, one line each."""
    problems = []
    for file, function in sorted(named_tests(text)):
        path = root / file
        if not path.is_file():
            problems.append(f"{file}: no such file")
        elif function not in functions_of(path):
            problems.append(f"{file}::{function}: no such test")
    return problems


def unlisted_fault_tests(text: str, root: Path = REPO) -> list[str]:
    """Tests in tests/faults/ the table does not name."""
    named = named_tests(text)
    planned = set(PLANNED_REF.findall(text))
    problems = []
    for path in sorted((root / "tests" / "faults").glob("test_*.py")):
        file = path.relative_to(root).as_posix()
        problems += [f"{file}::{name}" for name in sorted(functions_of(path))
                     if (file, name) not in named and file not in planned]
    return problems


def test_every_test_the_table_names_exists() -> None:
    text = TABLE.read_text()
    assert len(named_tests(text)) >= 20
    assert missing_tests(text) == []


def test_every_fault_test_is_in_the_table() -> None:
    assert unlisted_fault_tests(TABLE.read_text()) == []


def test_the_checks_fail_when_the_table_drifts(tmp_path: Path) -> None:
    faults = tmp_path / "tests" / "faults"
    faults.mkdir(parents=True)
    (faults / "test_x.py").write_text(
        "def test_one():\n    pass\n\n\nclass TestK:\n    def test_two(self):\n        pass\n")
    table = "| a | `tests/faults/test_x.py::test_one` | `tests/faults/test_gone.py::test_z` |\n"
    assert missing_tests(table, tmp_path) == ["tests/faults/test_gone.py: no such file"]
    assert unlisted_fault_tests(table, tmp_path) == ["tests/faults/test_x.py::test_two"]
    renamed = table.replace("test_one", "test_uno")
    assert "tests/faults/test_x.py::test_uno: no such test" in missing_tests(renamed, tmp_path)
    planned = "| b | **planned** in `tests/faults/test_x.py` |\n"
    assert unlisted_fault_tests(planned, tmp_path) == []
