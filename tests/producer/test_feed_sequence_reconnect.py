"""Trade ids across an unplanned reconnect: the venue's numbering goes on, so the first trade
after the reconnect counts what the feed missed while it was away (sequence.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.producer.sequence import OK, STALE, SequenceTracker

KEY = ("trade", "BTCUSDT")


@given(before=st.integers(min_value=1, max_value=10**9),
       missed=st.integers(min_value=0, max_value=10**6),
       replayed=st.integers(min_value=0, max_value=5))
def test_the_first_trade_after_a_reconnect_counts_the_trades_missed(
    before: int, missed: int, replayed: int,
) -> None:
    seq = SequenceTracker()
    assert seq.check(KEY, before, before, dense=True) == OK
    seq.reconnect()
    assert seq.carried(KEY)
    # a venue may send its latest trades again on subscribe: repeats, not a new start
    for back in range(min(replayed, before), 0, -1):
        assert seq.check(KEY, before - back + 1, before - back + 1, dense=True) == STALE
        assert seq.carried(KEY)
    first = before + missed + 1
    assert seq.check(KEY, first, first, dense=True) == (missed or OK)
    assert not seq.carried(KEY)
    assert seq.check(KEY, first + 1, first + 1, dense=True) == OK


def test_increasing_streams_start_over_and_reset_forgets_everything() -> None:
    seq = SequenceTracker()
    quotes = ("quote", "BTCUSDT")
    seq.check(quotes, 500, 500, dense=False)
    seq.check(KEY, 10, 10, dense=True)
    seq.reconnect()
    assert seq.last(quotes) is None and not seq.carried(quotes)  # renumbered per connection
    assert seq.check(quotes, 3, 3, dense=False) == OK
    assert seq.last(KEY) == 10
    seq.reset()  # a replay's new loop: a new numbering altogether
    assert seq.last(KEY) is None and not seq.carried(KEY)
    assert seq.check(KEY, 1, 1, dense=True) == OK


def test_two_reconnects_in_a_row_count_from_the_last_trade_received() -> None:
    seq = SequenceTracker()
    seq.check(KEY, 100, 100, dense=True)
    seq.reconnect()
    seq.reconnect()  # the first reconnect delivered no trade
    assert seq.carried(KEY)
    assert seq.check(KEY, 108, 110, dense=True) == 7
