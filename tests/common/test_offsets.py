"""The reset detector: a partition behind what was seen of it is a broker that lost records."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from services.common.offsets import (
    HIGH_FELL,
    OFFSET_WENT_BACK,
    TOPIC_RECREATED,
    OffsetWatch,
    detect_reset,
    next_seen_end,
)

ends = st.integers(min_value=0, max_value=10**12)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@given(seen=ends, high=ends)
def test_a_high_watermark_below_the_seen_end_is_a_reset_of_exactly_the_difference(
    seen: int, high: int,
) -> None:
    reset = detect_reset(seen, high=high)
    if high >= seen:
        assert reset is None
    else:
        assert reset is not None and reset.reason == HIGH_FELL
        assert reset.lost == seen - high and reset.now_end == high and reset.seen_end == seen


@given(seen=ends, offset=ends)
def test_an_offset_below_the_seen_end_is_a_reset(seen: int, offset: int) -> None:
    reset = detect_reset(seen, offset=offset)
    assert (reset is not None) == (offset < seen)
    if reset is not None:
        assert reset.reason == OFFSET_WENT_BACK and reset.lost == seen - offset


@given(offset=st.integers(min_value=-2000, max_value=10**6) | st.none(),
       high=st.integers(min_value=-2000, max_value=10**6) | st.none())
def test_nothing_seen_yet_or_no_offset_markers_never_make_a_reset(
    offset: int | None, high: int | None,
) -> None:
    assert detect_reset(None, offset=offset, high=high) is None
    assert detect_reset(0, offset=offset, high=high) is None
    # librdkafka's markers (OFFSET_INVALID -1001, OFFSET_END -1 ...) say nothing
    assert detect_reset(50, offset=-1001, high=-1) is None


def test_a_new_topic_id_is_a_recreated_topic_whatever_the_offsets() -> None:
    reset = detect_reset(10, high=20, seen_topic_id="a", topic_id="b")
    assert reset is not None and reset.reason == TOPIC_RECREATED and reset.lost == 10
    assert detect_reset(10, high=20, seen_topic_id="a", topic_id="a") is None


@given(facts=st.lists(st.tuples(st.sampled_from(["offset", "high"]), ends), max_size=30))
def test_the_seen_end_is_the_furthest_fact(facts: list[tuple[str, int]]) -> None:
    seen = None
    for kind, value in facts:
        seen = next_seen_end(seen, **{kind: value})
    furthest = [v + 1 if k == "offset" else v for k, v in facts]
    assert seen == max(furthest, default=None)


@given(before=st.integers(min_value=1, max_value=500), after=st.integers(min_value=0,
                                                                          max_value=500))
def test_a_producer_that_sees_its_broker_come_back_empty_counts_one_reset_and_the_loss(
    before: int, after: int,
) -> None:
    """Deliveries 0..before-1, then the broker restarts empty and deliveries start at 0 again:
    one reset, and every record acknowledged before it lost."""
    registry = CollectorRegistry()
    watch = OffsetWatch("producer", registry, count_lost=True)
    found = [watch.offset("prices", 0, o) for o in range(before)]
    found += [watch.offset("prices", 0, o) for o in range(after + 1)]
    resets = [r for r in found if r is not None]
    assert len(resets) == 1 and resets[0].lost == before
    labels = {"service": "producer", "topic": "prices"}
    assert sample(registry, "arb_kafka_offsets_reset_total", **labels) == 1
    assert sample(registry, "arb_kafka_records_lost_total", **labels) == before
    assert watch.seen_end("prices", 0) == after + 1  # the new broker is the baseline


def test_partitions_and_topics_are_kept_apart_and_readers_count_no_loss() -> None:
    registry = CollectorRegistry()
    watch = OffsetWatch("alerter", registry)
    watch.touch(["a", "b"])
    assert watch.high("a", 0, 100) is None
    assert watch.high("a", 1, 5) is None
    assert watch.high("b", 0, 7) is None
    assert watch.high("a", 1, 5) is None
    reset = watch.high("a", 0, 40)
    assert reset is not None and reset.lost == 60
    assert sample(registry, "arb_kafka_offsets_reset_total", service="alerter", topic="a") == 1
    assert sample(registry, "arb_kafka_offsets_reset_total", service="alerter", topic="b") == 0
    assert sample(registry, "arb_kafka_records_lost_total", service="alerter", topic="a") == 0
    assert watch.high("a", 0, 41) is None  # the new baseline: no second reset


@dataclass
class FakeMessage:
    t: str
    p: int
    o: int

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o


def test_a_consumer_counts_a_record_below_its_commits_not_one_read_again() -> None:
    registry = CollectorRegistry()
    watch = OffsetWatch("alerter", registry)
    for o in range(10):
        msg = FakeMessage("alerts", 0, o)
        assert watch.on_message(msg) is None
        watch.on_commit(msg)
    # the commit of 10 failed, a rebalance redelivers it: read again, not a reset
    assert watch.on_message(FakeMessage("alerts", 0, 10)) is None
    assert watch.on_message(FakeMessage("alerts", 0, 10)) is None
    reset = watch.on_message(FakeMessage("alerts", 0, 0))  # the broker came back empty
    assert reset is not None and reset.seen_end == 10 and reset.now_end == 0
    assert watch.on_message(FakeMessage("alerts", 0, 0)) is None  # once, not per record
    assert sample(registry, "arb_kafka_offsets_reset_total", service="alerter",
                  topic="alerts") == 1


@dataclass
class FakePartition:
    topic: str
    partition: int


class FakeConsumer:
    def __init__(self, high: int) -> None:
        self.high = high

    def get_watermark_offsets(self, tp: FakePartition, timeout: float, cached: bool,
                              ) -> tuple[int, int]:
        return 0, self.high


def test_on_assign_compares_the_watermark_with_the_commits_confirming_a_fall() -> None:
    registry = CollectorRegistry()
    watch = OffsetWatch("alerter", registry)
    for o in range(20):
        watch.on_commit(FakeMessage("alerts", 0, o))
    tp = FakePartition("alerts", 0)
    # Tansu's short answer (the last batch's base offset + 1) is not a reset once confirmed
    assert watch.on_assign(FakeConsumer(15), [tp], true_ends=lambda t: {0: 20}) == []
    assert watch.on_assign(FakeConsumer(25), [tp]) == []
    found = watch.on_assign(FakeConsumer(3), [tp], true_ends=lambda t: {0: 3})
    assert [r.lost for r in found] == [22]


def test_a_changed_topic_id_counts_once() -> None:
    registry = CollectorRegistry()
    watch = OffsetWatch("job", registry)
    assert watch.topic_id("prices", "id-1") is None
    watch.high("prices", 0, 9)
    assert watch.topic_id("prices", "id-1") is None
    reset = watch.topic_id("prices", "id-2")
    assert reset is not None and reset.reason == TOPIC_RECREATED
    assert watch.seen_end("prices", 0) is None
    assert sample(registry, "arb_kafka_offsets_reset_total", service="job", topic="prices") == 1
