"""The repository ships a recording for every venue the replay knows: the compose image and a
machine without the shared fixtures replay from data/recordings alone."""

from __future__ import annotations

import hashlib

import pytest

from services.producer.replay import VENUE_RECORDINGS
from tests.helpers import REPO

SHIPPED = REPO / "data" / "recordings"


@pytest.mark.parametrize("venue", sorted(VENUE_RECORDINGS))
def test_each_venue_recording_is_shipped_and_described(venue: str) -> None:
    name = VENUE_RECORDINGS[venue].file
    assert (SHIPPED / name).is_file(), f"data/recordings/{name} is missing"
    assert f"`{name}`" in (SHIPPED / "README.md").read_text(), f"{name} not in the README"


def test_shipped_copies_equal_the_shared_fixtures(fixtures_dir) -> None:
    for recording in VENUE_RECORDINGS.values():
        shared = fixtures_dir / recording.file
        if shared.is_file():
            shipped = (SHIPPED / recording.file).read_bytes()
            assert hashlib.sha256(shipped).digest() == hashlib.sha256(
                shared.read_bytes()).digest(), recording.file
