"""``pip install .`` into a fresh virtualenv gives a working ``arb`` from any directory: no
checkout behind it, ``.env`` read from the working directory, the SQL files in the package and
the rest found in the working directory (services/common/paths.py). The wheel is built offline
(no build isolation, so with this virtualenv's setuptools) and installed without dependencies
into a virtualenv that borrows this one's packages."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.helpers import REPO, start_env


def run(argv: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in ("services", "flink"):
        shutil.copytree(REPO / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "-q", "-w", root / "dist", src])
    assert built.returncode == 0, built.stdout + built.stderr
    venv = root / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", venv])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    # The dependencies: this virtualenv's packages, after the new one's own.
    (Path(site.stdout.strip()) / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"])
    wheel = next((root / "dist").glob("crypto_arb_detector-*.whl"))
    installed = run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
                     "-q", wheel])
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv / "bin"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory with no checkout in or above it."""
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.integration  # builds and installs a wheel
def test_the_installed_package_is_not_the_checkout(venv_bin: Path, elsewhere: Path) -> None:
    code = ("import services, flink.detection as d; print(services.__file__); "
            "print(len(list(d.SQL_DIR.glob('*.sql'))))")
    result = run([venv_bin / "python", "-c", code], cwd=elsewhere)
    package, sql_files = result.stdout.split()
    assert str(venv_bin.parent) in package and str(REPO) not in package, result.stderr
    assert int(sql_files) == len(list((REPO / "flink" / "sql").glob("*.sql")))


@pytest.mark.integration  # builds and installs a wheel
def test_arb_help_and_a_services_help_from_another_directory(venv_bin: Path,
                                                             elsewhere: Path) -> None:
    usage = run([venv_bin / "arb", "--help"], cwd=elsewhere)
    assert usage.returncode == 0, usage.stderr
    assert "start" in usage.stdout and "report" in usage.stdout
    replay = run([venv_bin / "arb", "producer", "replay", "--help"], cwd=elsewhere)
    assert replay.returncode == 0, replay.stderr
    assert "--fixtures-dir" in replay.stdout


@pytest.mark.integration  # builds and installs a wheel
def test_arb_start_reads_the_working_directorys_env_and_checks_ports(
        venv_bin: Path, elsewhere: Path, held_port: int) -> None:
    env = start_env(elsewhere)
    env.pop("ARB_DASHBOARD_PORT")
    env.pop("ENV_FILE")  # this test is about .env
    (elsewhere / ".env").write_text(f"ARB_DASHBOARD_PORT={held_port}\n")

    result = run([venv_bin / "arb", "start", "--no-prometheus"], cwd=elsewhere, env=env)

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port {held_port} (ARB_DASHBOARD_PORT) is taken" in result.stdout
    assert not (elsewhere / "var").exists()  # refused before it made anything


@pytest.mark.integration  # builds and installs a wheel
def test_configuration_is_found_in_the_working_directory(venv_bin: Path,
                                                         elsewhere: Path) -> None:
    code = "from services.common.paths import find; print(find('prometheus/prometheus.yml'))"
    assert run([venv_bin / "python", "-c", code], cwd=elsewhere).stdout.strip() == "None"
    shutil.copytree(REPO / "prometheus", elsewhere / "prometheus")
    found = run([venv_bin / "python", "-c", code], cwd=elsewhere).stdout.strip()
    assert found == str(elsewhere / "prometheus" / "prometheus.yml")


def test_the_build_backend_pin_reads_the_spdx_licence() -> None:
    """``license = "Apache-2.0"`` (an SPDX string) needs setuptools 77 or later."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert isinstance(pyproject["project"]["license"], str)
    pins = [Requirement(r) for r in pyproject["build-system"]["requires"]]
    setuptools = next(r for r in pins if r.name == "setuptools")
    assert not setuptools.specifier.contains("76.1.0")
    assert setuptools.specifier.contains("77.0.3")
