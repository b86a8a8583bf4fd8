"""The broker is killed and comes back empty (memory storage: every topic recreated with no
records, offsets from 0 again) while the whole pipeline runs. Records the old broker had
acknowledged are gone, and so are the messages only they would have given: that loss cannot be
undone, so it must be seen. The correct behaviour asserted here: the reset is detected and
counted by the producer, the Flink job and the alerter (issue #19, item 2); nothing is doubled
or invented; and everything the new broker holds still reaches Discord."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.harness import (
    FaultStack,
    detection_settings,
    expected_messages,
    metric_value,
    scenario_records,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

#: The counter issue #19 asks for; whoever adds it under another name changes this one.
RESET_METRIC = "arb_kafka_offsets_reset_total"
#: Acknowledged records the broker no longer has, counted by the producer.
LOST_METRIC = "arb_kafka_records_lost_total"


def test_broker_restarted_empty_counts_and_reports_the_loss(
    fixtures_dir: Path, output_dir: Path, tmp_path: Path,
) -> None:
    records = scenario_records(fixtures_dir)
    settings = detection_settings()
    full = expected_messages(records, settings)
    with FaultStack(tmp_path, output_dir, records) as stack:
        stack.start_producer()
        stack.wait_input_s(20)  # after two shocks, before the third: no episode straddles it
        before = stack.received()
        stack.restart_broker_empty()
        producer = stack.wait_producer()
        kept = stack.topic_values("prices")
        after = expected_messages(kept, settings)  # what the new broker's records give
        result = stack.result(full, producer)
        alerter_resets = metric_value(stack.alerter_metrics(), RESET_METRIC)
        # Where a message stopped: the job's output on the new broker (the alerter reads it).
        written = {name: stack.topic_count(name) for name in ("spreads", "alerts", "episodes")}
        # The job wrapper serves its own metrics (Flink's reporter carries no Python ones).
        flink_resets = metric_value(stack.flink_wrapper_metrics(), RESET_METRIC)
    producer_resets = sum(v for k, v in producer["metrics"].items() if k.startswith(RESET_METRIC))
    producer_lost = sum(v for k, v in producer["metrics"].items() if k.startswith(LOST_METRIC))
    # What happened: every record was acknowledged once (no failure, no drop), so those not on
    # the new broker are the ones acknowledged before the restart, and lost with it.
    lost_records = producer["delivered"] - len(kept)
    print(result.summary())
    print(f"records acknowledged {producer['delivered']}, on the new broker {len(kept)}; "
          f"messages before the crash {sum(before.values())}, lost {len(result.lost)}: "
          f"{sorted(result.lost)}; resets counted: producer {producer_resets}, job "
          f"{flink_resets}, alerter {alerter_resets}; records lost {lost_records}, counted "
          f"{producer_lost}; the job wrote to the new broker: {written}")
    assert 0 < len(kept) < len(records), "the restart did not lose the old broker's records"
    assert result.doubled == set(), sorted(result.doubled)
    assert result.unexpected == set(), sorted(result.unexpected)
    missed_after = set(after) - set(result.received)
    assert missed_after == set(), f"records on the new broker never reached Discord: " \
                                  f"{sorted(missed_after)}"
    # The loss is visible: every reader and the writer of the topics counted the reset.
    assert producer_resets >= 1, "the producer did not count the broker coming back empty"
    assert producer["failed"] == producer["dropped"] == producer["undelivered"] == 0, producer
    assert producer_lost == lost_records, "the producer's count of lost records is not the loss"
    assert flink_resets is not None and flink_resets >= 1, "the Flink job did not count it"
    assert alerter_resets is not None and alerter_resets >= 1, "the alerter did not count it"
