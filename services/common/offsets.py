"""A broker that lost data, told from offsets: the writer's, the readers' and the broker's own.

Kafka offsets only grow. A partition whose end is now below an end already seen, a delivery or a
consumed record at an offset below one already seen, or a topic whose id changed means the
broker lost records: restarted empty (Tansu's memory storage, a wiped volume), truncated (an
unclean leader election) or the topic deleted and recreated. Nothing downstream can bring those
records back, so the loss must at least be seen: every service that writes or reads a topic
counts it as ``arb_kafka_offsets_reset_total{service,topic}``, and the records that can no
longer exist as ``arb_kafka_records_lost_total{service,topic}``.

The records lost are ``old end - new end``: the end of the partition as last seen, minus where
the partition ends now (for a delivery or a consumed record, its offset: the records before it
are all the partition holds). That is exact when the broker kept a prefix (truncation) or came
back empty with this client its only writer, and a lower bound otherwise (other writers' new
records sit where the old ones were).

:func:`detect_reset` is the pure decision; :class:`OffsetWatch` keeps what was seen per
partition, counts and logs (once per reset of a partition, never per record).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter

log = structlog.get_logger(__name__)

#: reasons of a reset (the ``reason`` field of its log line)
HIGH_FELL = "high_watermark_fell"
OFFSET_WENT_BACK = "offset_went_back"
TOPIC_RECREATED = "topic_recreated"


@dataclass(frozen=True)
class Reset:
    """One partition found behind what was seen of it."""

    reason: str
    #: the partition's end (last offset + 1) as last seen before the reset
    seen_end: int
    #: where the partition ends now, as far as known
    now_end: int | None
    #: records that can no longer exist: ``seen_end - now_end`` (None when unknown)
    lost: int | None


def detect_reset(
    seen_end: int | None,
    *,
    high: int | None = None,
    offset: int | None = None,
    seen_topic_id: str | None = None,
    topic_id: str | None = None,
) -> Reset | None:
    """Decide whether a partition was reset, from what was seen (``seen_end``: the highest
    offset seen + 1, ``seen_topic_id``) and one new fact: the broker's high watermark
    (``high``), the offset of a record just delivered or consumed (``offset``), or the
    topic's id now (``topic_id``). None when the new fact is consistent with the old.

    Negative numbers are librdkafka's "no offset" markers (OFFSET_INVALID, OFFSET_END ...):
    they say nothing, so they never make a reset."""
    if seen_topic_id and topic_id and seen_topic_id != topic_id:
        # A new topic: whatever it holds is new, every record of the old one is gone.
        end = high if high is not None and high >= 0 else None
        return Reset(TOPIC_RECREATED, seen_end or 0, end, seen_end)
    if seen_end is None or seen_end <= 0:
        return None
    if offset is not None and 0 <= offset < seen_end:
        return Reset(OFFSET_WENT_BACK, seen_end, offset, seen_end - offset)
    if high is not None and 0 <= high < seen_end:
        return Reset(HIGH_FELL, seen_end, high, seen_end - high)
    return None


def next_seen_end(seen_end: int | None, *, high: int | None = None,
                  offset: int | None = None) -> int | None:
    """What is seen of a partition after one more fact (no reset among them): the furthest
    end so far."""
    candidates = [e for e in (seen_end, high, None if offset is None else offset + 1)
                  if e is not None and e >= 0]
    return max(candidates, default=None)


class ResetCounters:
    """The two counters, one set per registry (a process has one; tests pass their own)."""

    _made: ClassVar[weakref.WeakKeyDictionary[CollectorRegistry, ResetCounters]] = (
        weakref.WeakKeyDictionary())
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, registry: CollectorRegistry) -> None:
        self.resets = Counter(
            "arb_kafka_offsets_reset_total",
            "Partitions found behind what this service saw of them (the broker lost records: "
            "restarted empty, truncated, or the topic recreated).",
            ["service", "topic"], registry=registry,
        )
        self.lost = Counter(
            "arb_kafka_records_lost_total",
            "Records a partition held (for a producer: that the broker had acknowledged) and "
            "no longer holds, as far as offsets tell (a lower bound).",
            ["service", "topic"], registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry = REGISTRY) -> ResetCounters:
        with cls._lock:
            made = cls._made.get(registry)
            if made is None:
                made = cls._made[registry] = cls(registry)
            return made


class OffsetWatch:
    """What one service saw of each partition, and the resets found against it.

    Feed it every fact: :meth:`offset` for each record delivered or consumed, :meth:`high` for
    each watermark looked up, :meth:`topic_id` when metadata tells one. Each returns the Reset
    it found (already counted and logged) or None. Thread-safe: a delivery callback and a
    watcher thread may share one."""

    def __init__(self, service: str, registry: CollectorRegistry = REGISTRY, *,
                 count_lost: bool = False) -> None:
        """``count_lost``: also count the records lost (the writer, which knows what the
        broker acknowledged; readers count resets only, so a sum by topic counts each loss
        once)."""
        self.service = service
        self.count_lost = count_lost
        self._counters = ResetCounters.of(registry)
        self._seen: dict[tuple[str, int], int] = {}
        self._ids: dict[str, str] = {}
        self._lock = threading.Lock()
        #: every reset found, in order (for tests and summaries)
        self.found: list[tuple[str, int, Reset]] = []

    def touch(self, topics: Iterable[str]) -> None:
        """Show the counters at 0 for ``topics`` before anything happens (a rate needs a
        series to exist)."""
        for topic in topics:
            self._counters.resets.labels(self.service, topic)
            if self.count_lost:
                self._counters.lost.labels(self.service, topic)

    def seen_end(self, topic: str, partition: int) -> int | None:
        with self._lock:
            return self._seen.get((topic, partition))

    def offset(self, topic: str, partition: int, offset: int) -> Reset | None:
        """A record at ``offset`` was delivered to, or read from, ``topic``/``partition``."""
        return self._fact(topic, partition, offset=offset)

    def high(self, topic: str, partition: int, high: int) -> Reset | None:
        """The broker says ``topic``/``partition`` ends at ``high`` (its high watermark)."""
        return self._fact(topic, partition, high=high)

    def topic_id(self, topic: str, topic_id: str | None) -> Reset | None:
        """The topic's id as the broker tells it now: a new one is a recreated topic."""
        if not topic_id:
            return None
        with self._lock:
            seen = self._ids.get(topic)
            self._ids[topic] = topic_id
            if seen is None or seen == topic_id:
                return None
            ends = [(p, e) for (t, p), e in self._seen.items() if t == topic]
            for key in [(t, p) for (t, p) in self._seen if t == topic]:
                del self._seen[key]
        reset = detect_reset(sum(e for _, e in ends) or None, seen_topic_id=seen,
                             topic_id=topic_id)
        if reset is not None:
            self._report(topic, -1, reset)
        return reset

    def _fact(self, topic: str, partition: int, *, offset: int | None = None,
              high: int | None = None, update: bool = True) -> Reset | None:
        """Check one fact; ``update``: also move the seen end past it (a record delivered or
        committed; a record merely read leaves it, see :meth:`on_message`)."""
        key = (topic, partition)
        with self._lock:
            seen = self._seen.get(key)
            reset = detect_reset(seen, high=high, offset=offset)
            if reset is None:
                end = next_seen_end(seen, high=high, offset=offset) if update else seen
                if end is not None:
                    self._seen[key] = end
                return None
            # The broker's state now is the new baseline: the record just seen is on it.
            if offset is not None:
                self._seen[key] = offset + 1 if update else offset
            else:
                self._seen[key] = reset.now_end or 0
        self._report(topic, partition, reset)
        return reset

    def _report(self, topic: str, partition: int, reset: Reset) -> None:
        if partition >= 0:
            # The topic id seen next is the new topic's: a baseline, not a second reset.
            with self._lock:
                self._ids.pop(topic, None)
        self._counters.resets.labels(self.service, topic).inc()
        if self.count_lost and reset.lost:
            self._counters.lost.labels(self.service, topic).inc(reset.lost)
        self.found.append((topic, partition, reset))
        log.error("kafka_offsets_reset", service=self.service, topic=topic,
                  partition=partition, reason=reset.reason, seen_end=reset.seen_end,
                  now_end=reset.now_end, records_lost=reset.lost,
                  message="the broker no longer holds records it held: restarted empty, "
                          "truncated or the topic recreated; those records are gone")

    # -- a consumer's view ---------------------------------------------------------------------
    def on_assign(self, consumer: Any, partitions: Iterable[Any], *,
                  true_ends: Callable[[str], Mapping[int, int]] | None = None,
                  timeout_s: float = 5.0) -> list[Reset]:
        """At a (re)assignment: each partition's high watermark against what was committed of
        it before, so a reset shows even before (or without) a new record.

        Tansu answers a watermark lookup short (the last batch's base offset + 1), so a fall
        is confirmed with ``true_ends`` (``services.common.kafka.end_offsets``) when given.
        Lookup failures are skipped: a reset also shows at the next record."""
        found = []
        for tp in partitions:
            seen = self.seen_end(tp.topic, tp.partition)
            if seen is None:
                continue
            try:
                _, high = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
                if detect_reset(seen, high=high) is not None and true_ends is not None:
                    high = true_ends(tp.topic).get(tp.partition, high)
            except Exception as exc:  # noqa: BLE001 - a lookup is best effort
                log.info("kafka_watermarks_unavailable", topic=tp.topic,
                         partition=tp.partition, error=str(exc))
                continue
            reset = self.high(tp.topic, tp.partition, high)
            if reset is not None:
                found.append(reset)
        return found

    def on_message(self, msg: Any) -> Reset | None:
        """Each record read, before it is handled: an offset below the end already committed
        is a reset. A record read again because its commit failed or a rebalance came first
        sits at that end, not below it."""
        if msg.error() is not None:
            return None
        return self._fact(msg.topic(), msg.partition(), offset=msg.offset(), update=False)

    def on_commit(self, msg: Any) -> None:
        """A record's offset was committed: the partition is known to reach past it."""
        self._fact(msg.topic(), msg.partition(), offset=msg.offset())
