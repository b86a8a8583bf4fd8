"""The Flink job is killed (SIGKILL, job and JVM) mid-stream, after a checkpoint that holds
data (Kafka offsets past records that already alerted, window and episode state), and started
again: it restores that checkpoint, replays what came after it, and Discord shows every
message of the reference exactly once (the replayed ones are deduplicated by id)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from services.common.messages import parse_episode, parse_spread
from tests.faults.harness import (
    FaultStack,
    detection_settings,
    expected_messages,
    scenario_records,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_flink_killed_after_checkpoint_with_data_restores_exactly(
    fixtures_dir: Path, output_dir: Path, tmp_path: Path,
) -> None:
    records = scenario_records(fixtures_dir)
    expected = expected_messages(records, detection_settings())
    with FaultStack(tmp_path, output_dir, records) as stack:
        stack.start_producer()
        wait_for(lambda: len(stack.discord.accepted) >= 1, 90, "a first message on Discord")
        delivered_before = stack.received()
        # Two more checkpoints: the second was surely started after those records were read,
        # so its offsets and state hold them.
        wanted = stack.newest_checkpoint()[0] + 2
        stack.wait_checkpoint(wanted, 30)
        time.sleep(1.0)  # mid-interval: records after the checkpoint were processed once
        stack.kill_flink()
        number, kept = stack.newest_checkpoint()  # the one a restart resumes from
        assert kept is not None and number >= wanted
        stack.start_flink()
        producer = stack.wait_producer()
        result = stack.result(expected, producer)
        emitted = Counter([parse_spread(v).id for v in stack.topic_values("alerts")]
                          + [f"{e.id} {e.is_open}" for e in
                             map(parse_episode, stack.topic_values("episodes"))])
        restored_log = stack.flink_log(2)
    print(result.summary())
    print(f"checkpoint restored: {kept.name}; records the restored job wrote again: "
          f"{sum(n - 1 for n in emitted.values())}")
    assert "flink_job_restoring" in restored_log and kept.name in restored_log, \
        "the second run did not restore the checkpoint taken before the kill"
    assert delivered_before and set(delivered_before) < set(expected)  # the kill was mid-stream
    assert producer["failed"] == producer["dropped"] == producer["undelivered"] == 0
    assert result.lost == set(), sorted(result.lost)
    assert result.doubled == set(), sorted(result.doubled)
    assert result.unexpected == set(), sorted(result.unexpected)
    assert result.received == expected
