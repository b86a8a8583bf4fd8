"""SequenceTracker: gaps in dense ids, stale and duplicate numbers, renumbering, reset."""

from __future__ import annotations

import pytest

from services.producer.sequence import OK, RESYNC, STALE, SequenceTracker

TRADE = ("trade", "BTCUSDT")
QUOTE = ("quote", "BTCUSDT")


def test_consecutive_ids_are_ok_and_a_jump_is_a_gap_of_the_missing_count() -> None:
    seq = SequenceTracker()

    outcomes = [seq.check(TRADE, n, n, dense=True) for n in (100, 101, 102, 105, 106)]

    assert outcomes == [OK, OK, OK, 2, OK]
    assert seq.last(TRADE) == 106


def test_increasing_numbers_have_holes_by_design() -> None:
    seq = SequenceTracker()

    assert [seq.check(QUOTE, n, n, dense=False) for n in (10, 17, 400)] == [OK, OK, OK]


@pytest.mark.parametrize("dense", [True, False])
def test_seen_or_older_numbers_are_stale(dense) -> None:
    seq = SequenceTracker()
    seq.check(TRADE, 10, 10, dense=dense)

    assert seq.check(TRADE, 10, 10, dense=dense) == STALE
    assert seq.check(TRADE, 7, 7, dense=dense) == STALE
    assert seq.last(TRADE) == 10  # a stale number never moves the baseline back
    assert seq.check(TRADE, 11, 11, dense=dense) == OK


def test_a_span_covers_aggregated_ids() -> None:
    seq = SequenceTracker()
    seq.check(TRADE, 5, 5, dense=True)

    assert seq.check(TRADE, 6, 9, dense=True) == OK  # one record standing for ids 6..9
    assert seq.check(TRADE, 12, 12, dense=True) == 2


def test_keys_are_independent() -> None:
    seq = SequenceTracker()
    seq.check(("trade", "BTCUSDT"), 100, 100, dense=True)

    assert seq.check(("trade", "ETHUSDT"), 5, 5, dense=True) == OK
    assert seq.check(("trade", "BTCUSDT"), 101, 101, dense=True) == OK


def test_many_stale_numbers_in_a_row_mean_the_venue_renumbered() -> None:
    seq = SequenceTracker(resync_after=3)
    seq.check(QUOTE, 1_000, 1_000, dense=False)

    outcomes = [seq.check(QUOTE, n, n, dense=False) for n in (1, 2, 3, 4)]

    assert outcomes == [STALE, STALE, RESYNC, OK]
    assert seq.last(QUOTE) == 4


def test_reset_forgets_every_stream() -> None:
    seq = SequenceTracker()
    seq.check(TRADE, 100, 100, dense=True)

    seq.reset()

    assert seq.last(TRADE) is None
    assert seq.check(TRADE, 500, 500, dense=True) == OK  # a new baseline, not a gap
