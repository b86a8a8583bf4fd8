"""Book test helpers: a recording as decoded messages in receive order, REST snapshots included."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import pytest


class Recorded(NamedTuple):
    """One recorded line: a WebSocket message or (``rest``) a REST snapshot body, decoded."""

    rest: bool
    msg: Any


@cache
def _load(path: Path) -> tuple[Recorded, ...]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                out.append(Recorded(rec.get("source") == "rest", json.loads(rec["raw"])))
    return tuple(out)


@pytest.fixture
def recording(fixtures_dir: Path):
    """``recording("binance.jsonl")`` -> every line, decoded, in receive order."""

    def load(name: str) -> tuple[Recorded, ...]:
        return _load(fixtures_dir / name)

    return load
