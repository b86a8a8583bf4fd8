"""Replay recorded exchange frames through the live parsers, on a virtual clock.

The recordings (``../shared/fixtures/exchanges``) come from different days and mostly different
products. To give the detector two venues quoting the same thing at the same time, the replay:

- **aligns** every recording to one virtual start ``start_ms`` by its first receive time, and
  loops recordings shorter than the longest one to fill its span (looped trade ids get a
  ``-L<n>`` suffix so they stay unique);
- **picks** one recording per venue of ``ARB_VENUES`` (:data:`VENUE_RECORDINGS`), and of a
  file only the venue's live feed: its endpoint's frames (Bybit's file also holds linear ones)
  and the REST snapshots it starts books from (Binance, Bitstamp), handed to the frame
  processor's ``on_rest`` at their place in time, as the live feed hands it those it fetches;
- **maps** a recorded product onto a canonical symbol (e.g. Coinbase SKL-USD -> BTC-USD)
  and **scales** its prices (sizes divided by the same factor, so notional is kept) so that its
  first mid equals the first mid of a reference recording (Binance BTCUSDT in USD);
- **shocks** prices when asked: ``delta_usd`` added to the bid and ask of every quote of one
  exchange/symbol inside a time window.

So any spread between the venues in a replay is an artefact of alignment, scaling or shocks,
NOT market data. Only each venue's own bid/ask noise and timing are real.

Times: ``ts_ms`` and ``recv_ts_ms`` are the aligned receive time; ``exchange_ts_ms`` is shifted by
the same offset, so the recorded feed latency (recv - exchange) is kept, recorder clock error
included.

Every frame goes through the live feed's :class:`FrameProcessor` at its virtual receive time:
the same parse, sequence checks (a loop starts a new numbering, as a reconnect does), quote book
and feed metrics. So every venue message, also one that gives no record (depth, l2update, other
products), counts as venue liveness; refresh records come from the shared :class:`QuoteBook` on
the virtual clock; and what the processors count (messages by kind, errors by reason, feed
latency) is kept as :class:`FeedEvent` s on the virtual clock, which :func:`publish_replay`
exports to the feed metrics when the replay reaches them, so a replay's dashboards read as live.
"""

from __future__ import annotations

import heapq
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, overload

import structlog

from services.common.clock import now_ts_ms
from services.common.config import ProducerSettings
from services.common.exceptions import ConfigError, RecordError
from services.common.messages import (
    DepthLevel,
    Ladder,
    PriceRecord,
    Quote,
    Trade,
    validate_quote,
)
from services.common.paths import RECORDINGS, recordings_dir
from services.producer.books.base import BookStatus
from services.producer.books.book import OrderBook
from services.producer.connector import Venue, fx_to_usd_for
from services.producer.metrics import ProducerMetrics
from services.producer.processor import FrameProcessor
from services.producer.publisher import Sink
from services.producer.quote_book import QuoteBook
from services.producer.venues import get_venue

log = structlog.get_logger(__name__)

REPO = Path(__file__).resolve().parents[2]


def default_fixtures_dir() -> Path:
    """ARB_FIXTURES_DIR, else the recordings in the working directory or the checkout
    (services.common.paths.RECORDINGS)."""
    found = recordings_dir(ProducerSettings.from_env().fixtures_dir)
    if found is None:
        raise ConfigError("no recordings found: set ARB_FIXTURES_DIR (looked for "
                          + " and ".join(RECORDINGS) + ")")
    return found


@dataclass(frozen=True)
class Recording:
    """One fixture file replayed as one venue, with its products mapped to canonical symbols."""

    file: str
    venue: str
    #: recorded venue symbol -> canonical symbol; other products are skipped (still liveness)
    symbol_map: Mapping[str, str]
    #: scale prices so each symbol's first mid equals that of this venue's recording
    match_price_of: str | None = None


#: One recording per venue, in replay order; each plays BTC-USD with one of its products.
VENUE_RECORDINGS: dict[str, Recording] = {r.venue: r for r in (
    Recording("binance.jsonl", "binance", {"BTCUSDT": "BTC-USD"}),
    Recording("coinbase_exchange_2021.jsonl", "coinbase", {"SKL-USD": "BTC-USD"}),
    Recording("kraken.jsonl", "kraken", {"XMR/USD": "BTC-USD"}),
    Recording("okx.jsonl", "okx", {"BTC-USDT": "BTC-USD"}),
    # spot ARBUSDC (its busiest spot market); the file's linear frames are skipped
    Recording("bybit_orderbook1_2025.jsonl", "bybit", {"ARBUSDC": "BTC-USD"}),
    # diff order book from the REST snapshot
    Recording("bitstamp.jsonl", "bitstamp", {"ethusd": "BTC-USD"}),
)}
#: whose first mid the others are scaled to, when it is replayed
PRICE_REFERENCE = "binance"


def recordings_for(venues: Sequence[str]) -> tuple[Recording, ...]:
    """The recordings of ``venues`` (ARB_VENUES), prices matched to Binance's if it is one of
    them, else to the first venue's."""
    unknown = [v for v in venues if v not in VENUE_RECORDINGS]
    if unknown or not venues:
        raise ConfigError(f"ARB_VENUES: no recording to replay for {', '.join(unknown) or '-'}"
                          f" (recorded: {', '.join(VENUE_RECORDINGS)})")
    reference = PRICE_REFERENCE if PRICE_REFERENCE in venues else venues[0]
    return tuple(
        rec if name == reference else replace(rec, match_price_of=reference)
        for name, rec in VENUE_RECORDINGS.items() if name in venues
    )


#: Coinbase and Binance, the default ARB_VENUES.
DEFAULT_RECORDINGS: tuple[Recording, ...] = recordings_for(("coinbase", "binance"))


@dataclass(frozen=True)
class Shock:
    """Add ``delta_usd`` to bid and ask of one exchange/symbol in [start, start + duration)."""

    exchange: str
    symbol: str
    start_offset_ms: int
    duration_ms: int
    delta_usd: float

    @classmethod
    def parse(cls, spec: str) -> Shock:
        """``EXCHANGE:SYMBOL:DELTA_USD@START_S:DURATION_S``, e.g. ``binance:BTC-USD:+150@10:2``."""
        head, sep, when = spec.partition("@")
        parts = head.split(":")
        times = when.split(":")
        if not sep or len(parts) != 3 or len(times) != 2 or not all(parts):
            raise ValueError(f"shock {spec!r} is not EXCHANGE:SYMBOL:DELTA_USD@START_S:DURATION_S")
        exchange, symbol, delta = parts
        try:
            delta_usd, start_s, duration_s = float(delta), float(times[0]), float(times[1])
        except ValueError as exc:
            raise ValueError(f"shock {spec!r}: {exc}") from exc
        if not all(math.isfinite(x) for x in (delta_usd, start_s, duration_s)):
            raise ValueError(f"shock {spec!r}: numbers must be finite")
        if start_s < 0 or duration_s <= 0:
            raise ValueError(f"shock {spec!r}: start must be >= 0 s and duration > 0 s")
        return cls(exchange.lower(), symbol.upper(), round(start_s * 1000),
                   round(duration_s * 1000), delta_usd)

    def __str__(self) -> str:
        return (f"{self.exchange}:{self.symbol}:{self.delta_usd:+g}"
                f"@{self.start_offset_ms / 1000:g}:{self.duration_ms / 1000:g}")

    def applies(self, quote: Quote, start_ms: int) -> bool:
        begin_ms = start_ms + self.start_offset_ms
        return (quote.exchange == self.exchange and quote.symbol == self.symbol
                and begin_ms <= quote.ts_ms < begin_ms + self.duration_ms)


@dataclass(frozen=True)
class Frame:
    """One recorded WebSocket text frame and when the recorder received it."""

    recv_ts_ms: int
    raw: str
    #: the endpoint it came in on, where the recording says (Bybit: spot or linear); for a
    #: REST line the request
    url: str | None = None
    #: a REST response (``source: "rest"``): a book snapshot, not a WebSocket frame
    rest: bool = False


@dataclass(frozen=True)
class _Line:
    frame: Frame
    #: a REST response (``source: "rest"``; ``frame.url`` is the request), not a WS frame
    rest: bool


@lru_cache(maxsize=16)
def _load(path: Path) -> tuple[_Line, ...]:
    lines: list[_Line] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            frame = Frame(rec["recv_ts_ns"] // 1_000_000, rec["raw"], rec.get("url"))
            lines.append(_Line(frame, rec.get("source") == "rest"))
    lines.sort(key=lambda ln: ln.frame.recv_ts_ms)  # stable: equal times keep file order
    return tuple(lines)


def load_frames(path: str | Path) -> tuple[Frame, ...]:
    """WebSocket frames of a fixture file in receive order (REST lines skipped); cached."""
    frames = tuple(ln.frame for ln in _load(Path(path).resolve()) if not ln.rest)
    if not frames:
        raise ValueError(f"{path}: no WebSocket frames")
    return frames


def venue_frames(path: str | Path, venue: Venue) -> tuple[Frame, ...]:
    """The frames of a fixture file that are ``venue``'s live feed, in receive order: the
    WebSocket frames of its endpoint (``venue.ws_url``, or no ``url``: Bybit's linear frames
    are left out) and the REST snapshots the venue turns into frames (``snapshot_frame``:
    Bitstamp's diff book starts from one, as live it starts from the first book frame)."""
    keep_rest = venue.snapshot_frame is not None or (
        venue.depth is not None and venue.depth.pair_of_url is not None)
    frames = _venue_frames(Path(path).resolve(), venue.ws_url, keep_rest)
    if not frames:
        raise ValueError(f"{path}: no WebSocket frames of {venue.name} ({venue.ws_url})")
    return frames


@lru_cache(maxsize=16)
def _venue_frames(path: Path, ws_url: str, keep_rest: bool) -> tuple[Frame, ...]:
    frames = []
    for line in _load(path):
        frame = line.frame
        if line.rest:
            if keep_rest and frame.url is not None:
                frames.append(Frame(frame.recv_ts_ms, frame.raw, frame.url, rest=True))
        elif frame.url is None or frame.url == ws_url:
            frames.append(frame)
    return tuple(frames)


class FeedEvent(NamedTuple):
    """One count of a replay's frame processor, kept for when the replay reaches ``ts_ms``."""

    ts_ms: int
    exchange: str
    #: the :class:`~services.producer.metrics.FeedCounts` call: message, error or latency_ms;
    #: or the :class:`~services.producer.metrics.BookCounts` one: book_status, book_changed
    #: (the symbol's book changed) or book_depth (symbol, bid levels, ask levels)
    name: str
    #: its argument: the kind, the reason, the latency in ms, a BookStatus, a symbol, a tuple
    value: object


class _Tape:
    """FeedCounts of one venue that write each count down as a FeedEvent at ``now_ms``."""

    def __init__(self, exchange: str, events: list[FeedEvent]) -> None:
        self.exchange = exchange
        self.events = events
        self.now_ms = 0

    def message(self, kind: str) -> None:
        self.events.append(FeedEvent(self.now_ms, self.exchange, "message", kind))

    def error(self, reason: str) -> None:
        self.events.append(FeedEvent(self.now_ms, self.exchange, "error", reason))

    def latency_ms(self, latency_ms: int) -> None:
        self.events.append(FeedEvent(self.now_ms, self.exchange, "latency_ms", latency_ms))


class _BookTape:
    """BookCounts of one venue that write each call down as a FeedEvent, for the book
    metrics to follow the replay as they follow a live feed."""

    def __init__(self, tape: _Tape) -> None:
        self.tape = tape

    def status(self, status: BookStatus) -> None:
        if status.problem is not None:
            self._write("book_status", status)

    def changed(self, symbol: str, ts_s: float | None = None) -> None:
        del ts_s  # the replay's clock: the event's time
        self._write("book_changed", symbol)

    def levels(self, symbol: str, book: OrderBook) -> None:
        self._write("book_depth", (symbol, *book.depth()))

    def _write(self, name: str, value: object) -> None:
        tape = self.tape
        tape.events.append(FeedEvent(tape.now_ms, tape.exchange, name, value))


#: virtual ms between two book_depth events of a replayed processor (a live feed's timer)
_BOOK_DEPTH_EVERY_MS = 1000


@dataclass
class ReplayPlan:
    """The built replay plus what it took to build it (for logs and tests).

    A plan reads as its records (``len``, indexing, iteration), in time order.
    """

    records: list[PriceRecord]
    start_ms: int
    end_ms: int
    frames: int = 0
    #: frames that gave no record because they failed to parse, by RecordError reason
    skipped: Counter[str] = field(default_factory=Counter)
    #: (venue, canonical symbol) -> price scale factor applied
    scale: dict[tuple[str, str], float] = field(default_factory=dict)
    #: what the frame processors counted, in time order (exported by publish_replay)
    events: list[FeedEvent] = field(default_factory=list)
    #: every arb_feed_errors_total reason counted: parse failures, sequence checks, rates
    errors: Counter[str] = field(default_factory=Counter)
    #: venues whose depth books the plan keeps (their book metrics exist from the start)
    book_venues: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[PriceRecord]:
        return iter(self.records)

    @overload
    def __getitem__(self, index: int) -> PriceRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[PriceRecord]: ...

    def __getitem__(self, index: int | slice) -> PriceRecord | list[PriceRecord]:
        return self.records[index]

    def until(self, end_ms: int) -> ReplayPlan:
        """The part before ``end_ms``: its records and feed events (the build's counts, frames,
        skipped and errors, are left empty: they describe a whole build)."""
        return ReplayPlan(
            [r for r in self.records if r.ts_ms < end_ms], self.start_ms,
            min(end_ms, self.end_ms), scale=dict(self.scale),
            events=[e for e in self.events if e.ts_ms < end_ms],
        )


@dataclass
class _Source:
    recording: Recording
    venue: Venue
    frames: tuple[Frame, ...]
    fx_to_usd: float
    scale: dict[str, float] = field(default_factory=dict)

    @property
    def first_ms(self) -> int:
        return self.frames[0].recv_ts_ms

    @property
    def span_ms(self) -> int:
        return self.frames[-1].recv_ts_ms - self.first_ms

    @property
    def period_ms(self) -> int:
        """Loop period: the span plus one mean frame gap, so a loop seam looks like a gap."""
        gap_ms = self.span_ms // max(1, len(self.frames) - 1)
        return self.span_ms + max(1, gap_ms)

    def first_mids(self) -> dict[str, float]:
        """Canonical symbol -> mid (USD) of its first valid quote in this recording."""
        mids: dict[str, float] = {}
        wanted = set(self.recording.symbol_map.values())
        scout = FrameProcessor(self.venue, self.recording.symbol_map, fx=self.fx_to_usd)
        for frame in self.frames:
            outcome = (scout.on_rest(frame.url or "", frame.raw, frame.recv_ts_ms) if frame.rest
                       else scout.process(frame.raw, frame.recv_ts_ms))
            for rec in outcome.records:
                if isinstance(rec, Quote) and rec.symbol not in mids:
                    mids[rec.symbol] = (rec.bid + rec.ask) / 2
            if wanted <= mids.keys():
                break
        return mids


def _sources(
    recordings: Sequence[Recording], fixtures_dir: Path, usdt_usd: float,
) -> list[_Source]:
    sources = []
    for rec in recordings:
        venue = get_venue(rec.venue)
        sources.append(_Source(rec, venue, venue_frames(fixtures_dir / rec.file, venue),
                               fx_to_usd_for(venue.quote_ccy, usdt_usd)))
    by_venue = {s.venue.name: s for s in sources}
    for src in sources:
        ref_name = src.recording.match_price_of
        if ref_name is None:
            continue
        if ref_name not in by_venue:
            raise ValueError(f"{src.recording.file}: match_price_of {ref_name!r} is not replayed")
        ref_mids = by_venue[ref_name].first_mids()
        for symbol, own_mid in src.first_mids().items():
            if symbol in ref_mids:
                src.scale[symbol] = ref_mids[symbol] / own_mid
    return sources


@dataclass(frozen=True)
class _Adjust:
    """Moves a parsed record onto the virtual clock (exchange time too) and the common level."""

    offset_ms: int
    scale: Mapping[str, float]
    id_suffix: str

    def __call__(self, rec: PriceRecord) -> PriceRecord:
        scale = self.scale.get(rec.symbol, 1.0)
        offset_ms = self.offset_ms
        exchange_ts_ms = None if rec.exchange_ts_ms is None else rec.exchange_ts_ms + offset_ms
        if isinstance(rec, Quote):
            if scale == 1.0:
                return replace(rec, exchange_ts_ms=exchange_ts_ms)
            return replace(
                rec, exchange_ts_ms=exchange_ts_ms, bid=rec.bid * scale, ask=rec.ask * scale,
                bid_size=None if rec.bid_size is None else rec.bid_size / scale,
                ask_size=None if rec.ask_size is None else rec.ask_size / scale,
                depth=_moved_depth(rec.depth, scale, 0.0),
            )
        return replace(
            rec, exchange_ts_ms=exchange_ts_ms, price=rec.price * scale, size=rec.size / scale,
            trade_id=rec.trade_id + self.id_suffix,
        )


def _moved_depth(depth: Ladder | None, scale: float, delta_usd: float) -> Ladder | None:
    """A ladder on the replay's price level: prices scaled (sizes were divided by the same
    factor, so each notional buys the same levels) and shifted by a shock's ``delta_usd``."""
    if depth is None:
        return None
    return tuple(DepthLevel(
        lv.notional_usd,
        None if lv.bid_px is None else lv.bid_px * scale + delta_usd,
        None if lv.ask_px is None else lv.ask_px * scale + delta_usd) for lv in depth)


def _events(
    index: int, src: _Source, start_ms: int, end_ms: int, origin_ms: int | None = None,
) -> Iterator[tuple[int, int, int, int, Frame, _Source]]:
    """(virtual time, source index, loop, offset, frame, source), looping until ``end_ms``.

    With ``origin_ms`` (recordings made together) every source keeps its own timing relative
    to that common origin and plays once."""
    loop = 0
    while True:
        first_ms = src.first_ms if origin_ms is None else origin_ms
        offset_ms = start_ms - first_ms + loop * src.period_ms
        for frame in src.frames:
            t_ms = frame.recv_ts_ms + offset_ms
            if t_ms > end_ms:
                return
            yield t_ms, index, loop, offset_ms, frame, src
        if origin_ms is not None:
            return
        loop += 1


def apply_shocks(
    records: Iterable[PriceRecord], shocks: Sequence[Shock], start_ms: int,
) -> Iterator[PriceRecord]:
    """Shift bid and ask of shocked quotes; a shock that makes a quote invalid drops it."""
    for rec in records:
        if isinstance(rec, Quote):
            delta_usd = sum(s.delta_usd for s in shocks if s.applies(rec, start_ms))
            if delta_usd:
                try:
                    rec = validate_quote(replace(
                        rec, bid=rec.bid + delta_usd, ask=rec.ask + delta_usd,
                        depth=_moved_depth(rec.depth, 1.0, delta_usd)))
                except RecordError as exc:
                    log.warning("shock_dropped_quote", reason=exc.reason, detail=exc.detail)
                    continue
        yield rec


def plan_replay(
    fixtures_dir: str | Path | None = None,
    recordings: Sequence[Recording] = DEFAULT_RECORDINGS,
    *,
    start_ms: int | None = None,
    shocks: Sequence[Shock] = (),
    refresh_ms: int = 500,
    stale_ms: int = 2000,
    usdt_usd: float = 1.0,
    aligned: bool = True,
    depth_notionals_usd: Sequence[float] = (),
    book_levels: int = 100,
) -> ReplayPlan:
    """Build one pass of the replay: every record in time order, with refreshes and shocks.

    ``aligned=False`` is for files recorded together (record mode): they keep their relative
    timing from the earliest frame of any of them, and none is looped.
    ``depth_notionals_usd`` (ARB_DEPTH_NOTIONALS_USD) and ``book_levels`` (ARB_BOOK_LEVELS):
    the venues' books and the quotes' ladders, as live; () gives top of book only."""
    fixtures = Path(fixtures_dir) if fixtures_dir is not None else default_fixtures_dir()
    start_ms = now_ts_ms() if start_ms is None else start_ms
    sources = _sources(recordings, fixtures, usdt_usd)
    origin_ms = None if aligned else min(s.first_ms for s in sources)
    if origin_ms is None:
        end_ms = start_ms + max(s.span_ms for s in sources)
    else:
        end_ms = start_ms + max(s.frames[-1].recv_ts_ms for s in sources) - origin_ms
    plan = ReplayPlan([], start_ms, end_ms)
    plan.scale = {(s.venue.name, sym): k for s in sources for sym, k in s.scale.items()}
    book = QuoteBook(refresh_ms=refresh_ms, stale_ms=stale_ms)
    out = plan.records
    # One processor per stream of frames: per source when sources play on their own (looped),
    # per venue and markets when recorded together (a venue's rotated files are one stream).
    processors: dict[Hashable, tuple[FrameProcessor, _Tape]] = {}
    loops: dict[int, int] = {}
    depth_due_ms: dict[Hashable, int] = {}  # next book_depth event of each processor

    def refresh_until(t_ms: int, *, inclusive: bool) -> None:
        while (due_ms := book.next_due_ms()) is not None and (
            due_ms < t_ms or (inclusive and due_ms == t_ms)
        ):
            out.extend(book.due(due_ms))

    streams = [_events(i, s, start_ms, end_ms, origin_ms) for i, s in enumerate(sources)]
    for t_ms, index, loop, offset_ms, frame, src in heapq.merge(*streams, key=lambda e: e[:2]):
        refresh_until(t_ms, inclusive=False)
        plan.frames += 1
        key = index if origin_ms is None else (
            src.venue.name, tuple(sorted(src.recording.symbol_map.items())))
        if key not in processors:
            tape = _Tape(src.venue.name, plan.events)
            processors[key] = (FrameProcessor(
                src.venue, src.recording.symbol_map, fx=src.fx_to_usd, book=book, counts=tape,
                depth_notionals_usd=depth_notionals_usd, book_levels=book_levels,
                book_counts=_BookTape(tape)), tape)
            if processors[key][0].depth is not None:
                plan.book_venues.add(src.venue.name)
        processor, tape = processors[key]
        if loops.get(index) != loop:  # the source starts (again): place it on the clock
            if index in loops:
                processor.restart()  # a loop starts a new numbering (and book), as a reconnect
            loops[index] = loop
            processor.adjust = _Adjust(offset_ms, src.scale, f"-L{loop}" if loop else "")
        tape.now_ms = t_ms
        outcome = (processor.on_rest(frame.url or "", frame.raw, t_ms) if frame.rest
                   else processor.process(frame.raw, t_ms))
        if outcome.errors:
            plan.errors.update(outcome.errors)
            if outcome.kind is None:
                plan.skipped[outcome.errors[0]] += 1
        out.extend(outcome.records)
        if processor.syncs and t_ms >= depth_due_ms.get(key, t_ms):
            processor.book_levels_gauges()
            depth_due_ms[key] = t_ms + _BOOK_DEPTH_EVERY_MS
    refresh_until(end_ms, inclusive=True)
    if shocks:
        plan.records = list(apply_shocks(out, shocks, start_ms))
    log.info("replay_built", frames=plan.frames, records=len(plan.records),
             span_s=(end_ms - start_ms) / 1000, skipped=dict(plan.skipped),
             errors=dict(plan.errors),
             scale={f"{v}:{s}": k for (v, s), k in plan.scale.items()})
    return plan


def recordings_in(folder: str | Path) -> tuple[Recording, ...] | None:
    """The files of a folder written by record mode (``recording.json`` beside them), each as a
    :class:`Recording` of its venue with the recorded symbol map; None for any other folder."""
    from services.producer.recorder import MANIFEST, MANIFEST_FORMAT

    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{manifest_path}: not a recording manifest")
    venues: dict[str, dict[str, str]] = manifest.get("venues", {})
    recordings = []
    for path in sorted(folder.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
        venue = json.loads(first).get("exchange") if first.strip() else None
        if venue in venues:
            recordings.append(Recording(path.name, venue, venues[venue]))
    if not recordings:
        raise ValueError(f"{folder}: a recording manifest but no recorded files")
    return tuple(recordings)


def build_replay(
    fixtures_dir: str | Path | None = None,
    recordings: Sequence[Recording] = DEFAULT_RECORDINGS,
    *,
    start_ms: int | None = None,
    shocks: Sequence[Shock] = (),
    refresh_ms: int = 500,
    stale_ms: int = 2000,
    usdt_usd: float = 1.0,
    depth_notionals_usd: Sequence[float] = (),
    book_levels: int = 100,
) -> list[PriceRecord]:
    """All records of one replay pass in time order (see :func:`plan_replay`)."""
    return plan_replay(
        fixtures_dir, recordings, start_ms=start_ms, shocks=shocks, refresh_ms=refresh_ms,
        stale_ms=stale_ms, usdt_usd=usdt_usd, depth_notionals_usd=depth_notionals_usd,
        book_levels=book_levels,
    ).records


def shift(rec: PriceRecord, offset_ms: int, id_suffix: str = "") -> PriceRecord:
    """The same record ``offset_ms`` later (every time field), trade id suffixed."""
    times = {
        "ts_ms": rec.ts_ms + offset_ms,
        "recv_ts_ms": rec.recv_ts_ms + offset_ms,
        "exchange_ts_ms": None if rec.exchange_ts_ms is None else rec.exchange_ts_ms + offset_ms,
    }
    if isinstance(rec, Trade):
        return replace(rec, trade_id=rec.trade_id + id_suffix, **times)
    return replace(rec, **times)


def iter_replay(
    plan: ReplayPlan, *, loop: bool = False, gap_ms: int = 500, start_ms: int | None = None,
    feed_events: bool = False,
) -> Iterator[PriceRecord | FeedEvent]:
    """The plan's records; with ``loop``, the whole pass again and again, shifted in time.

    Pass ``n`` starts ``n * (span + gap_ms)`` after the first, and its trade ids get ``-P<n>``.
    With ``start_ms`` every pass is moved so that the first one starts then: building a plan
    takes a moment, and a paced replay starts its clock when publishing starts, so that receive
    times are wall-clock times and latencies measured from them do not include the build.
    With ``feed_events`` the plan's :class:`FeedEvent` s come too, in time order, each before
    the records of its time (for :func:`publish_replay`).
    """
    offset_ms = 0 if start_ms is None else start_ms - plan.start_ms
    period_ms = plan.end_ms - plan.start_ms + gap_ms
    n = 0
    while n == 0 or loop:
        suffix = f"-P{n}" if n else ""
        pass_ms = offset_ms + n * period_ms
        records: Iterable[PriceRecord] = plan.records if not pass_ms else (
            shift(rec, pass_ms, suffix) for rec in plan.records)
        if feed_events and plan.events:
            events = plan.events if not pass_ms else (
                ev._replace(ts_ms=ev.ts_ms + pass_ms) for ev in plan.events)
            yield from heapq.merge(events, records, key=_timeline_key)
        else:
            yield from records
        n += 1


def _export(event: FeedEvent, metrics: ProducerMetrics) -> None:
    """One replayed count to the metrics, on the wall clock where a time is due."""
    name = event.name
    if name.startswith("book_"):
        book = metrics.book(event.exchange)
        if name == "book_status":
            book.status(event.value)  # type: ignore[arg-type]
        elif name == "book_changed":
            book.changed(str(event.value))
        else:
            symbol, n_bids, n_asks = event.value  # type: ignore[misc]
            book.depth(symbol, n_bids, n_asks)
        return
    feed = metrics.feed(event.exchange)
    getattr(feed, name)(event.value)
    if name == "message":
        feed.last_message(time.time())


def _timeline_key(item: PriceRecord | FeedEvent) -> tuple[int, bool]:
    """Time order; at equal times a frame's counts come before the records it gave."""
    return item.ts_ms, item.__class__ is not FeedEvent


def parse_speed(text: str) -> float | None:
    """``max`` -> None (no pacing); ``1``, ``10``, ``2.5`` -> that many times real time."""
    if text.strip().lower() == "max":
        return None
    speed = float(text.strip().rstrip("xX"))
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"speed {text!r} must be 'max' or a number > 0")
    return speed


def _wait_until(
    due_s: float, sink: Sink, stop: threading.Event, clock: Callable[[], float],
) -> bool:
    """Sleep until ``due_s`` on ``clock``, serving the sink's delivery callbacks meanwhile.

    Returns True when ``stop`` was set.
    """
    poll = getattr(sink, "poll", None)
    while (left_s := due_s - clock()) > 0:
        if stop.is_set():
            return True
        if poll is not None:
            poll(min(left_s, 0.05))
        else:
            stop.wait(min(left_s, 0.05))
    return stop.is_set()


def publish_replay(
    records: Iterable[PriceRecord | FeedEvent] | ReplayPlan,
    sink: Sink,
    *,
    speed: float | None = None,
    stop: threading.Event | None = None,
    metrics: ProducerMetrics | None = None,
    clock: Callable[[], float] = time.monotonic,
    origin_ms: int | None = None,
) -> int:
    """Send records in order, paced by ``ts_ms`` at ``speed`` x real time (None = max speed).

    Virtual time ``origin_ms`` (default: the first record's ``ts_ms``) is now. Returns how many
    records were handed to the sink; stops early when ``stop`` is set. A plan is published with
    its feed events (see :func:`iter_replay`): with ``metrics`` each is exported when the replay
    reaches it, so the feed metrics follow the replay as they follow a live feed; the frame
    times go to the last-message gauge on the wall clock (at 10x the virtual clock runs ahead
    of now), and each published quote to the best-price gauges.
    """
    items = iter_replay(records, feed_events=True) if isinstance(records, ReplayPlan) else records
    if metrics is not None and isinstance(records, ReplayPlan):
        for exchange in sorted(records.book_venues):
            metrics.book(exchange)
    stop = stop or threading.Event()
    sent = 0
    wall_start_s = clock()
    for item in items:
        if stop.is_set():
            break
        if speed is not None and (origin_ms is not None or item.__class__ is not FeedEvent):
            if origin_ms is None:
                origin_ms = item.ts_ms
            due_s = wall_start_s + (item.ts_ms - origin_ms) / 1000 / speed
            if _wait_until(due_s, sink, stop, clock):
                break
        if item.__class__ is FeedEvent:
            if metrics is not None:
                _export(item, metrics)
            continue
        sink.publish(item)
        sent += 1
        if metrics is not None and item.__class__ is Quote:
            metrics.feed(item.exchange).best(item)
    return sent
