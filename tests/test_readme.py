"""The README's diagram shows every topic the pipeline has."""

from __future__ import annotations

import re

from services.common.config import KafkaSettings
from tests.helpers import REPO


def test_the_diagram_names_every_topic() -> None:
    readme = (REPO / "README.md").read_text()
    diagram = re.search(r"```\n( Coinbase WS.*?)```", readme, flags=re.S)
    assert diagram, "no diagram in README.md"
    missing = [t for t in KafkaSettings().topics if t not in diagram.group(1)]
    assert missing == []
