"""The Docker documentation stays true to compose.yaml: every variable, service and volume is
described, and the runbook sections it points to exist."""

from __future__ import annotations

import re

from tests.deploy.support import COMPOSE_FILE, documented_variables, raw_compose, variables_in
from tests.helpers import REPO

OPERATIONS = REPO / "docs" / "operations.md"
ARCHITECTURE = REPO / "docs" / "architecture.md"
RUNBOOK = REPO / "docs" / "runbook.md"
README = REPO / "README.md"


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_compose_variable_is_documented() -> None:
    operations = OPERATIONS.read_text()
    docker_only = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", operations, flags=re.MULTILINE))
    documented = documented_variables(expand_venues=True) | docker_only
    missing = variables_in(COMPOSE_FILE.read_text()) - documented
    assert sorted(missing) == [], "describe them in docs/operations.md's compose-only table"


def test_operations_lists_every_service() -> None:
    operations = OPERATIONS.read_text()
    for service in raw_compose()["services"]:
        assert f"| `{service}`" in operations, f"{service} missing from 'What runs'"


def test_deployment_view_shows_every_service_and_volume() -> None:
    text = ARCHITECTURE.read_text()
    assert "## Deployment (Docker Compose)" in text
    deployment = text.split("## Deployment (Docker Compose)", 1)[1]
    compose = raw_compose()
    for name in [*compose["services"], *compose["volumes"]]:
        assert re.search(rf"\b{re.escape(name)}\b", deployment), f"{name} not in the diagram"


def test_links_to_the_runbook_and_other_docs_resolve() -> None:
    runbook_anchors = {anchor(h) for h in re.findall(r"^#+ (.+)$", RUNBOOK.read_text(), re.M)}
    architecture_anchors = {
        anchor(h) for h in re.findall(r"^#+ (.+)$", ARCHITECTURE.read_text(), re.M)}
    operations = OPERATIONS.read_text()
    for target, fragment in re.findall(r"\]\(([\w./-]+\.md)?(?:#([\w-]+))?\)", operations):
        if target:
            assert (OPERATIONS.parent / target).is_file(), target
        if target == "runbook.md" and fragment:
            assert fragment in runbook_anchors, f"runbook.md#{fragment}"
        if target == "architecture.md" and fragment:
            assert fragment in architecture_anchors, f"architecture.md#{fragment}"


def test_readme_has_the_docker_path_beside_make() -> None:
    readme = README.read_text()
    assert "make start" in readme
    assert "docker compose up" in readme and "docs/operations.md" in readme
